"""The converter interface shared by TFLite and Core ML (no TensorFlow or coremltools here).

``convert(model, target, options, calibration) -> Artifact``: ``target`` is a registry name
(``tflite``, ``coreml``), ``options`` one ``ConvertOptions``, and ``calibration`` the
representative images for full-integer quantization, always passed in, never global. Images
everywhere in the converters are RGB pixels in 0..255, shaped ``[H, W, 3]``; the options'
``Normalization`` turns them into what the model takes.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import numpy as np
from edgetailor.errors import ConversionError

QUANTIZE_MODES = ("none", "fp16", "dynamic", "int8", "int16x8")
FLOAT_MODES = ("none", "fp16")  # parity is a max-abs-error bound; the others report top-1 agreement
IO_TYPES = ("uint8", "int8", "float32")  # full-integer int8 models' input/output type
PRECISIONS = ("float16", "float32")  # Core ML compute precision
COMPRESSIONS = ("none", "linear8", "palettize4", "palettize6", "palettize8")  # Core ML weights
TASKS = ("classification",)  # detection and segmentation arrive with their heads


class ParityError(ConversionError):
    """The converted model's outputs differ from the Keras model's by more than the tolerance."""


@dataclass(frozen=True)
class Normalization:
    """``model_input = (pixel - mean) / std`` per RGB channel, in 0..255 pixel units.

    The builder's models take MobileNet-style [-1, 1] input: mean 127.5, std 127.5. Models that
    carry their own Rescaling/Normalization layers take raw pixels: mean 0, std 1.
    """

    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, (int, float)):
                value = (float(value),) * 3
            value = tuple(float(v) for v in value)
            if len(value) != 3:
                raise ConversionError(f"normalization {name} needs 1 or 3 values (got {len(value)})")
            object.__setattr__(self, name, value)
        if min(self.std) <= 0:
            raise ConversionError("normalization std must be positive")

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels (0..255) -> float32 model input."""
        return ((np.asarray(pixels, np.float32) - np.float32(self.mean)) / np.float32(self.std))

    def coreml_scale_bias(self) -> tuple[float, list[float]]:
        """Core ML's ``y = x * scale + bias``: one global scale, per-channel bias.

        Exact when the three stds are equal; otherwise the scale uses their mean (the usual
        approximation for torchvision's per-channel std) and the bias stays exact per channel.
        """
        scale = 1.0 / (sum(self.std) / 3)
        return scale, [-m / s for m, s in zip(self.mean, self.std)]

    @property
    def exact_in_coreml(self) -> bool:
        return len(set(self.std)) == 1

    def compact(self) -> tuple[list[float], list[float]]:
        """Mean and std as one value when the channels agree (TFLite metadata style)."""
        mean = [self.mean[0]] if len(set(self.mean)) == 1 else list(self.mean)
        std = [self.std[0]] if len(set(self.std)) == 1 else list(self.std)
        return mean, std

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "pixel_range": [0, 255],
                "formula": "(pixel - mean) / std"}


MOBILENET = Normalization()
RAW_PIXELS = Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


@dataclass(frozen=True)
class ModelInfo:
    """Descriptive metadata written into both artifacts (strings only in ``extra``)."""

    name: str = "edgetailor model"
    version: str = "1"
    author: str = "edgetailor"
    description: str = "Image classifier built with edgetailor."
    extra: tuple[tuple[str, str], ...] = ()  # Core ML user-defined metadata, e.g. predicted latency


@dataclass(frozen=True)
class ConvertOptions:
    """Everything a conversion needs besides the model and the calibration images.

    TFLite reads ``quantize`` (and ``io_type`` for int8); Core ML reads ``precision`` and
    ``compress``. ``labels`` name the classes (``None``: class indices). ``tolerance`` bounds
    the float parity error of the logits relative to the largest Keras logit (default 1e-3 for
    none; 5e-2 for fp16, whose rounded weights move logits by ~1e-2 of their size). Broken
    conversions (layout, normalisation, a dropped op) differ by O(1) of it.
    """

    quantize: str = "none"
    io_type: str = "uint8"
    precision: str = "float16"
    compress: str = "none"
    task: str = "classification"
    labels: tuple[str, ...] | None = None
    normalization: Normalization = MOBILENET
    info: ModelInfo = ModelInfo()
    parity: bool = True
    tolerance: float | None = None
    parity_samples: int = 8
    quiet: bool = False  # capture TensorFlow's native log lines while converting

    def __post_init__(self) -> None:
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
        for name, allowed in (("quantize", QUANTIZE_MODES), ("io_type", IO_TYPES),
                              ("precision", PRECISIONS), ("compress", COMPRESSIONS),
                              ("task", TASKS)):
            value = getattr(self, name)
            if value not in allowed:
                raise ConversionError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")

    def replace(self, **changes: Any) -> "ConvertOptions":
        return replace(self, **changes)

    def float_tolerance(self) -> float:
        if self.tolerance is not None:
            return self.tolerance
        return 1e-3 if self.quantize == "none" else 5e-2


@dataclass
class Artifact:
    """A converted model: ``payload`` is TFLite bytes or a coremltools ``MLModel``.

    ``details`` holds what the conversion found out (mode, seconds, parity, ops, checks);
    ``save`` writes ``.tflite`` bytes to a file or the Core ML program to a ``.mlpackage`` folder.
    """

    target: str
    payload: Any
    details: dict[str, Any] = field(default_factory=dict)
    verify: Callable[[Path], list[str]] | None = None  # static checks of the saved file

    def save(self, path: str | Path) -> Path:
        """Write the artifact to ``path`` and run its static checks (``details["verified"]``)."""
        path = Path(path)
        if self.target == "tflite":
            path.write_bytes(self.payload)
        else:
            self.payload.save(str(path))
        if self.verify is not None:
            self.details["verified"] = self.verify(path)
        return path


class Converter(Protocol):
    """One target: a name, the suffix of what it writes, and the conversion itself."""

    target: str
    suffix: str

    def convert(self, model: Any, options: ConvertOptions,
                calibration: Iterable[np.ndarray] | np.ndarray | None = None) -> Artifact: ...


# target -> (module, class); imported on first use so the registry itself needs no TensorFlow.
_REGISTRY = {"tflite": ("edgetailor.converters.tflite", "TFLiteConverter", ".tflite"),
             "coreml": ("edgetailor.converters.coreml", "CoreMLConverter", ".mlpackage")}


def targets() -> list[str]:
    return list(_REGISTRY)


def suffix(target: str) -> str:
    _check_target(target)
    return _REGISTRY[target][2]


def _check_target(target: str) -> None:
    if target not in _REGISTRY:
        raise ConversionError(f"unknown format {target!r}; choose one of {', '.join(_REGISTRY)}")


def get(target: str) -> Converter:
    """The converter registered for ``target``."""
    _check_target(target)
    module, name, _ = _REGISTRY[target]
    return getattr(importlib.import_module(module), name)()


def convert(model: Any, target: str, options: ConvertOptions | None = None,
            calibration: Iterable[np.ndarray] | np.ndarray | None = None) -> Artifact:
    """Convert a tf.keras ``model`` for ``target`` (``tflite`` or ``coreml``).

    ``calibration``: representative images (pixels 0..255, ``[H, W, 3]`` each, or one
    ``[N, H, W, 3]`` array) for ``quantize="int8"``/``"int16x8"``; an error when missing.
    """
    return get(target).convert(model, options or ConvertOptions(), calibration)


def calibration_array(calibration: Iterable[np.ndarray] | np.ndarray | None,
                      size: tuple[int, int], mode: str) -> np.ndarray:
    """Calibration images as one float32 ``[N, H, W, 3]`` pixel array, checked against ``size``."""
    if calibration is None:
        raise ConversionError(f"--quantize {mode} needs calibration images (a representative "
                              f"dataset); pass --calibration DIR")
    images = [np.asarray(image, np.float32) for image in calibration]
    if images and images[0].ndim == 4:  # an [N, H, W, 3] array arrives as one item per row already
        images = [row for batch in images for row in batch]
    if not images:
        raise ConversionError(f"--quantize {mode} needs calibration images; none were given")
    for i, image in enumerate(images):
        if image.shape != (*size, 3):
            raise ConversionError(f"calibration image {i} has shape {image.shape}; the model "
                                  f"takes {(*size, 3)} pixels")
    return np.stack(images)


@contextlib.contextmanager
def native_output_captured(enabled: bool = True):
    """Send file descriptor 2 (TensorFlow's C++ log lines, MLIR summaries) to a temp file.

    Used by the CLI, whose own progress and error lines should be all a pipeline sees.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


class Stopwatch:
    """Seconds per named step, in order."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = round(time.perf_counter() - started, 3)


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (converters print pages)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
