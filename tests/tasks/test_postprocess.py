"""PostprocessConfig: the defaults the README states, every bad value one line, the float32 view
TFLite stores, and the class-aware score mask the TFLite graph applies (no conversion here)."""
import math
from pathlib import Path

import numpy as np
import pytest

from edgetailor.errors import SpecError
from edgetailor.latency import profiles
from edgetailor.tasks.base import Request
from edgetailor.tasks.detection.postprocess import PostprocessConfig, float32


def test_defaults():
    assert PostprocessConfig() == PostprocessConfig(max_detections=25, score_threshold=0.25, iou_threshold=0.6,
                                                    class_aware=False)


@pytest.mark.parametrize("field, value, needle", [
    ("max_detections", 0, "--max-detections must be a whole number from 1 to 1000 (got 0)"),
    ("max_detections", 1001, "(got 1001)"),
    ("max_detections", 2.5, "(got 2.5)"),
    ("max_detections", True, "(got True)"),
    ("score_threshold", 1.0, "--score-threshold must be a number with 0 <= score < 1 (got 1.0)"),
    ("score_threshold", -1e-9, "(got -1e-09)"),
    ("score_threshold", math.nan, "(got nan)"),
    ("score_threshold", "0.5", "(got '0.5')"),
    ("iou_threshold", 0.0, "--iou-threshold must be a number with 0 < IoU <= 1 (got 0.0)"),
    ("iou_threshold", math.inf, "(got inf)"),
])
def test_bad_values_are_one_line_spec_errors(field, value, needle):
    with pytest.raises(SpecError) as info:
        PostprocessConfig(**{field: value})
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_edges_that_are_allowed():
    PostprocessConfig(max_detections=1, score_threshold=0.0, iou_threshold=1.0)
    PostprocessConfig(max_detections=1000, score_threshold=0.999)


def test_from_options_is_none_without_options_and_fills_in_defaults():
    assert PostprocessConfig.from_options() is None
    assert PostprocessConfig.from_options(class_aware=False) == PostprocessConfig()
    assert PostprocessConfig.from_options(iou_threshold=0.5) == PostprocessConfig(iou_threshold=0.5)


def test_float32_view_is_what_tflite_stores():
    assert float32(0.6000000238418579) == float32(0.6) == 0.6
    assert PostprocessConfig(score_threshold=0.123456789).as_float32().score_threshold == 0.1234568
    assert float32(1e-8) == 1e-8  # "%f" formatting made this 0 in the op before


def test_only_the_detection_task_takes_postprocessing():
    pixel1 = profiles.load("pixel1")
    Request(pixel1, 10.0, Path("out"), task="detection", postprocess=PostprocessConfig())
    with pytest.raises(SpecError, match=r"apply to --task detection \(this is segmentation\)"):
        Request(pixel1, 10.0, Path("out"), task="segmentation", postprocess=PostprocessConfig())


def test_class_aware_mask_keeps_each_anchors_best_class_only():
    """TFLite's regular NMS runs per class over all boxes; Core ML's per-class NMS labels a box by
    its argmax. The mask makes the first see what the second does: one class per box."""
    import tensorflow as tf

    from edgetailor.tasks.detection.export import best_class_only

    scores = np.array([[[0.9, 0.2, 0.7, 0.1],      # background first: never a candidate
                        [0.0, 0.3, 0.3, 0.05]]], np.float32)  # a tie: the first, as argmax
    masked = best_class_only(tf.constant(scores)).numpy()
    np.testing.assert_array_equal(masked, np.float32([[[0.9, -1.0, 0.7, -1.0], [0.0, 0.3, -1.0, -1.0]]]))
