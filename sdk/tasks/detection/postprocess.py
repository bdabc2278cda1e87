"""What a detector returns, set once and applied the same way on Android and iOS.

The bundle's TFLite model ends in ``TFLite_Detection_PostProcess`` and its Core ML pipeline in a
``NonMaximumSuppression`` model; both get these four settings (``export`` maps them):

========================  ======================================  =====================================
setting                   TFLite_Detection_PostProcess            Core ML NonMaximumSuppression
========================  ======================================  =====================================
``max_detections``        ``max_detections`` (output size N)      upper bound of the outputs' row range
``score_threshold``       ``nms_score_threshold`` (keep >=)       ``confidenceThreshold`` (optional input)
``iou_threshold``         ``nms_iou_threshold`` (suppress >)      ``iouThreshold`` (optional input)
``class_aware``           ``use_regular_nms`` on scores masked    ``pickTop.perClass``
                          to each box's best class
========================  ======================================  =====================================

Both rank a box by its best class score and suppress greedily in falling score order. Core ML's
per-class suppression compares boxes "with the same label (argmax of the confidence)"
(NonMaximumSuppression.proto); TFLite's regular NMS runs per class over every box, so the
exported graph sets each box's other classes below any threshold first, and one box yields at
most one detection on both platforms. Pure Python: the CLI validates options without TensorFlow.
"""
from __future__ import annotations

import math
import struct
from dataclasses import asdict, dataclass, replace

from edgetailor.errors import SpecError

# A cap on the fixed-size TFLite outputs [1, N, 4]: 10, the TF OD API's mobile export default,
# clips crowded scenes; 100, COCO evaluation's maxDets, makes every frame carry 100 rows an app
# draws none of. 25 keeps a crowded frame and a short list.
DEFAULT_MAX_DETECTIONS = 25
# Create ML's and Turi Create's Core ML detectors default to confidence 0.25. The SSD configs'
# 1e-8 is an evaluation setting: every frame returns N boxes, most of them noise. On TFLite the
# model's threshold is a floor an app can only raise (MediaPipe's score_threshold).
DEFAULT_SCORE_THRESHOLD = 0.25
# The IoU of ssdlite_mobilenet_v3_large_320x320_coco.config's NMS, the head this follows: the
# setting its published COCO mAP was measured with.
DEFAULT_IOU_THRESHOLD = 0.6
MAX_DETECTIONS_LIMIT = 1000  # both NMS implementations are quadratic in the boxes they keep


@dataclass(frozen=True)
class PostprocessConfig:
    """Detections per image, score floor (0-1), IoU above which a box is suppressed (0-1], and
    whether only boxes of the same best class suppress each other (default: across classes, as
    TFLite's fast NMS does, so one object never carries two labels)."""

    max_detections: int = DEFAULT_MAX_DETECTIONS
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    iou_threshold: float = DEFAULT_IOU_THRESHOLD
    class_aware: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.max_detections, bool) or not isinstance(self.max_detections, int) \
                or not 1 <= self.max_detections <= MAX_DETECTIONS_LIMIT:
            raise SpecError(f"--max-detections must be a whole number from 1 to {MAX_DETECTIONS_LIMIT} "
                            f"(got {self.max_detections!r})")
        _check_fraction("--score-threshold", self.score_threshold, "0 <= score < 1",
                        lambda v: 0.0 <= v < 1.0)
        _check_fraction("--iou-threshold", self.iou_threshold, "0 < IoU <= 1", lambda v: 0.0 < v <= 1.0)

    @classmethod
    def from_options(cls, max_detections: int | None = None, score_threshold: float | None = None,
                     iou_threshold: float | None = None,
                     class_aware: bool | None = None) -> PostprocessConfig | None:
        """The settings the given options ask for (defaults for the rest), or None if none is given."""
        given = {"max_detections": max_detections, "score_threshold": score_threshold,
                 "iou_threshold": iou_threshold, "class_aware": class_aware}
        given = {name: value for name, value in given.items() if value is not None}
        return cls(**given) if given else None

    def as_float32(self) -> PostprocessConfig:
        """These settings as TFLite's op options store them: thresholds in float32 (7 digits)."""
        return replace(self, score_threshold=float32(self.score_threshold),
                       iou_threshold=float32(self.iou_threshold))

    def to_dict(self) -> dict:
        return asdict(self)


def float32(value: float) -> float:
    """``value`` stored as a float32, shown with the 7 significant digits a float32 holds."""
    (stored,) = struct.unpack("<f", struct.pack("<f", float(value)))
    return float(f"{stored:.7g}")


def _check_fraction(option: str, value, bounds: str, ok) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not ok(float(value)):
        raise SpecError(f"{option} must be a number with {bounds} (got {value!r})")
