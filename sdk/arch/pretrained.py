"""Which architectures have a pretrained start: the ImageNet weights Keras Applications publishes.

Pure data, no TensorFlow: the chooser asks it to keep only candidates that can start pretrained,
the builder (``edgetailor.builder.pretrained``) asks it which Keras model to load. A candidate
of a family at width ``w`` starts from that family's smallest published width ``>= w`` at the same
depth; its channels are then chosen by importance (``builder.pretrained``).
Widths read from keras 2.15.0 (the pinned TF 2.15.1's Keras): keras/src/applications/mobilenet.py
(alpha 0.25/0.5/0.75/1.0, ImageNet weights at 128-224 px), mobilenet_v2.py (0.35/0.5/0.75/1.0/1.3/1.4),
mobilenet_v3.py ``WEIGHTS_HASHES`` (large and small 0.75/1.0, minimalistic 1.0), efficientnet.py
(B0-B7, their own width and depth).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KerasSource:
    """A Keras Applications constructor with ImageNet weights, and the family point it builds."""

    family: str
    width: float
    depth: float
    constructor: str
    kwargs: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"Keras {self.constructor}({arguments})"


def _alphas(family: str, constructor: str, widths: tuple[float, ...], **kwargs) -> list[KerasSource]:
    return [KerasSource(family, w, 1.0, constructor, {**kwargs, "alpha": w}) for w in widths]


_EFFICIENTNET = {"B0": (1.0, 1.0), "B1": (1.0, 1.1), "B2": (1.1, 1.2), "B3": (1.2, 1.4),
                 "B4": (1.4, 1.8), "B5": (1.6, 2.2), "B6": (1.8, 2.6), "B7": (2.0, 3.1)}

SOURCES: tuple[KerasSource, ...] = (
    *_alphas("mobilenet_v1", "MobileNet", (0.25, 0.5, 0.75, 1.0)),
    *_alphas("mobilenet_v2", "MobileNetV2", (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)),
    *_alphas("mobilenet_v3_large", "MobileNetV3Large", (0.75, 1.0)),
    *_alphas("mobilenet_v3_small", "MobileNetV3Small", (0.75, 1.0)),
    *_alphas("mobilenet_v3_large_minimal", "MobileNetV3Large", (1.0,), minimalistic=True),
    *_alphas("mobilenet_v3_small_minimal", "MobileNetV3Small", (1.0,), minimalistic=True),
    *(KerasSource("efficientnet", w, d, f"EfficientNet{b}") for b, (w, d) in _EFFICIENTNET.items()),
)
FAMILIES = tuple(dict.fromkeys(s.family for s in SOURCES))
IMAGENET = "imagenet"  # --pretrained imagenet: Keras' own download and cache


def source_for(family: str | None, width: float, depth: float = 1.0) -> KerasSource | None:
    """The published weights a family point starts from: same family and depth, the smallest
    width at least ``width`` (channels are dropped, never invented); None when there is none."""
    fitting = [s for s in SOURCES if s.family == family and s.depth == depth and s.width >= width - 1e-9]
    return min(fitting, key=lambda s: s.width, default=None)


def has_start(family: str | None, width: float, depth: float = 1.0, max_width: float | None = None) -> bool:
    """A family point with published weights to start from (no wider than ``max_width``: a file's)."""
    return source_for(family, width, depth) is not None and (max_width is None or width <= max_width + 1e-9)
