"""What the converters are given: saved Keras models, calibration image folders, normalisation.

Images are decoded and resized with ``tf.image`` (Pillow is not a dependency).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from edgetailor.converters.base import MOBILENET, RAW_PIXELS, ConversionError, Normalization, first_line

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_PREPROCESSING = (tf.keras.layers.Rescaling, tf.keras.layers.Normalization)


def load_keras(path: str | Path) -> tf.keras.Model:
    """A saved Keras model (.keras or .h5); ConversionError naming the file when it cannot load."""
    import edgetailor.builder.keras_layers  # noqa: F401  registers our custom layers for deserialisation

    path = Path(path)
    if not path.exists():
        raise ConversionError(f"model file not found: {path}")
    if path.is_dir():
        raise ConversionError(f"{path} is a folder; give a saved Keras model file (.keras or .h5)")
    try:
        return tf.keras.models.load_model(path, compile=False)
    except Exception as exc:  # zip, h5py and Keras config errors all mean "not a model we can read"
        raise ConversionError(f"cannot load Keras model {path}: {first_line(exc)}{_hint(exc)}") from None


def _hint(exc: Exception) -> str:
    """Why an unknown custom layer fails. Keras 2.15 finds a custom layer class only once the
    module that registers it has been imported (it never imports the module named in the file),
    and then calls the bare class name: "'str' object is not callable"."""
    text = str(exc)
    if "Unknown layer" in text or (isinstance(exc, TypeError) and "object is not callable" in text):
        return ("; it holds a custom layer nothing imported here registers (edgetailor's own are "
                "registered; import the module that defines any other before loading)")
    return ""


def normalization_of(model: tf.keras.Model) -> Normalization:
    """Raw pixels when the model starts with Rescaling/Normalization layers, else MobileNet [-1, 1]."""
    for layer in model.layers[1:3]:
        if isinstance(layer, _PREPROCESSING):
            return RAW_PIXELS
    return MOBILENET


def load_images(folder: str | Path, size: tuple[int, int], limit: int = 200) -> np.ndarray:
    """Up to ``limit`` .jpg/.png images of ``folder`` (sorted by name) as ``[N, H, W, 3]`` pixels.

    Images are resized (bilinear, aspect ratio not kept) to the model input, as a representative
    dataset for full-integer quantization.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConversionError(f"calibration folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ConversionError(f"no .jpg or .png images in calibration folder {folder}")
    images = []
    for path in files[:limit]:
        try:
            image = tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, ValueError) as exc:
            raise ConversionError(f"cannot read calibration image {path}: {first_line(exc)}") from None
        resized = tf.image.resize(tf.cast(image, tf.float32), size, antialias=True)
        images.append(np.clip(resized.numpy(), 0, 255))
    return np.stack(images).astype(np.float32)
