"""Export LR-ASPP segmenters: TFLite with ImageSegmenter metadata, Core ML ML Program.

TFLite (CONVENTIONS §2): input float32 ``[1, R, R, 3]`` normalized with mean/std 127.5 (in the
metadata), output ``segmentation_masks`` float32 ``[1, R, R, classes]`` per-class softmax scores
(the Task Library takes the argmax for the category mask and the channels as confidence masks);
labels (background first) as ``TENSOR_AXIS_LABELS``.

Core ML: an ML Program with an RGB image input (scale 1/127.5, bias -1) and two outputs,
``mask`` (int32 ``[1, R, R]`` class index per pixel) and ``probabilities`` (float32
``[1, R, R, classes]``); labels in the model's user-defined metadata as a JSON list (``labels``:
a label may hold a comma). Saved with ``skip_model_load`` (Core ML cannot load models on Linux)
and checked statically.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from edgetailor import _io as atomic
from edgetailor.tasks.segmentation import lraspp
from edgetailor.converters.coreml import image_program, save_package
from edgetailor.errors import ConversionError

# the TFLite output, by its name in the metadata: what it holds
OUTPUTS = {"segmentation_masks": "per-class softmax scores (0-1) per pixel, one channel per label "
                                 "(background first); the argmax is the pixel's class"}
COREML_OUTPUTS = {"mask": "class index per pixel (0 = background)",
                  "probabilities": "per-class softmax scores (0-1) per pixel, one channel per label"}


def _serving(segmenter):
    model = segmenter.model
    r = segmenter.resolution

    @tf.function(input_signature=[tf.TensorSpec([1, r, r, 3], tf.float32, name="image")])
    def serve(image):
        return tf.nn.softmax(model(image, training=False), axis=-1)

    return serve.get_concrete_function()


def to_tflite(segmenter, calibration: np.ndarray | None = None) -> bytes:
    """A TFLite flatbuffer (no metadata), builtin ops only: float32, or with ``calibration`` pixels
    ``[N, R, R, 3]`` full-integer int8 taking uint8 pixels (scale 1/127.5, zero point 127.5) and
    returning float32 scores (one DEQUANTIZE after the softmax)."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([_serving(segmenter)], segmenter.model)
    # Freeze the function directly: the SavedModel round trip costs minutes with the pinned
    # pure-Python protobuf and yields the same flatbuffer.
    converter.experimental_lower_to_saved_model = False
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if calibration is not None:
        from edgetailor.converters.base import Normalization
        from edgetailor.converters.tflite import full_integer

        full_integer(converter, calibration, Normalization(lraspp.NORM_MEAN, lraspp.NORM_STD), "uint8", "float32")
    return converter.convert()


def with_metadata(tflite_model: bytes, labels) -> bytes:
    """Add ImageSegmenter metadata (normalization 127.5/127.5, labels, background first)."""
    from tensorflow_lite_support.metadata.python.metadata_writers import image_segmenter

    from edgetailor.converters.metadata import add_inference_metadata

    if len(labels) < 2:
        raise ConversionError(f"a segmenter needs the background and at least one class (got {list(labels)})")
    return add_inference_metadata(tflite_model, image_segmenter, lraspp.NORM_MEAN, lraspp.NORM_STD, labels)


def export_tflite(segmenter, path: str | Path, calibration: np.ndarray | None = None) -> Path:
    """Write a Task-Library-ready segmenter ``.tflite`` (metadata + labels), atomically; int8 when
    ``calibration`` pixels are given (``to_tflite``)."""
    labels = list(segmenter.labels)
    if len(labels) != segmenter.config.num_classes:
        raise ConversionError(f"{len(labels)} labels for a {segmenter.config.num_classes}-class segmenter")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, with_metadata(to_tflite(segmenter, calibration), labels))
    return Path(path)


def run_tflite(model: bytes | str | Path, images: np.ndarray) -> np.ndarray:
    """Class-index masks uint8 ``[n, R, R]`` from a segmentation .tflite on uint8 images."""
    from edgetailor.converters.parity import quantize_input

    content = Path(model).read_bytes() if isinstance(model, (str, Path)) else model
    interpreter = tf.lite.Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    h, w = inp["shape"][1:3]
    masks = []
    for image in images:
        x = image[None].astype(np.float32)
        if image.shape[:2] != (h, w):
            x = tf.image.resize(x, (h, w)).numpy()
        interpreter.set_tensor(inp["index"], quantize_input((x - lraspp.NORM_MEAN) / lraspp.NORM_STD, inp))
        interpreter.invoke()
        masks.append(interpreter.get_tensor(out["index"])[0].argmax(-1).astype(np.uint8))
    return np.stack(masks)


def evaluate_tflite(model: bytes | str | Path, data) -> dict[str, float]:
    """``{"miou", "pixel_accuracy"}`` of a segmentation .tflite on mask ``data``, run in the interpreter."""
    from edgetailor.tasks.segmentation.train import mean_iou, resize_masks

    content = Path(model).read_bytes() if isinstance(model, (str, Path)) else model
    predicted = run_tflite(content, data.images)
    truth = resize_masks(data.masks, predicted.shape[1])
    classes = int(tf.lite.Interpreter(model_content=content).get_output_details()[0]["shape"][-1])
    return {"miou": mean_iou(truth, predicted, classes)[0], "pixel_accuracy": float((truth == predicted).mean())}


def coreml_spec(segmenter):
    """(spec, weights folder) of the Core ML ML Program (``mask`` + ``probabilities`` outputs)."""
    import coremltools as ct

    r = segmenter.resolution
    model = segmenter.model

    @tf.function(input_signature=[tf.TensorSpec([1, r, r, 3], tf.float32, name="image")])
    def serve(image):
        probabilities = tf.nn.softmax(model(image, training=False), axis=-1)
        return tf.argmax(probabilities, axis=-1, output_type=tf.int32), probabilities

    spec, weights_dir = image_program(serve.get_concrete_function(), r, lraspp.NORM_MEAN, lraspp.NORM_STD)
    for out, name in zip(list(spec.description.output), ("mask", "probabilities")):
        ct.utils.rename_feature(spec, out.name, name)
    for out in spec.description.output:
        out.shortDescription = COREML_OUTPUTS[out.name]
    spec.description.metadata.userDefined.update({
        "labels": json.dumps(list(segmenter.labels)), "architecture": "lraspp",
        "backbone": segmenter.spec.encode()})
    return spec, weights_dir


def export_coreml(segmenter, path: str | Path) -> Path:
    """Write the ``.mlpackage`` (a temp dir, then rename: nothing half written)."""
    spec, weights_dir = coreml_spec(segmenter)
    return atomic.write_atomically(path, lambda staged: save_package(spec, weights_dir, staged), replace=True)
