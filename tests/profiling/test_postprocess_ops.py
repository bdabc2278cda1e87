"""TFLite_Detection_PostProcess as a one-op model: it runs in the interpreter and is timed for real."""
import numpy as np
import tensorflow as tf

from edgetailor.converters.tflite import custom_options
from edgetailor.profiling import postprocess_ops
from edgetailor.profiling.postprocess_ops import PostprocessShape


def _run(shape: PostprocessShape) -> list[np.ndarray]:
    interpreter = tf.lite.Interpreter(model_content=postprocess_ops.postprocess_model(shape))
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), postprocess_ops.timing_inputs(shape)):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def test_the_one_op_model_runs_with_every_anchor_a_candidate():
    shape = PostprocessShape(anchors=300, classes=7, max_detections=12)
    boxes, classes, scores, count = _run(shape)
    assert boxes.shape == (1, 12, 4) and classes.shape == scores.shape == (1, 12)
    assert count[0] == 12  # 300 candidates, the output full: the timed case is the crowded one
    assert np.all(np.diff(scores[0]) <= 0) and 0 <= classes.min() and classes.max() < 7
    options = custom_options(postprocess_ops.postprocess_model(shape))[postprocess_ops.OP_NAME]
    assert (options["num_classes"], options["max_detections"], options["use_regular_nms"]) == (7, 12, False)


def test_measure_times_each_shape_above_zero():
    shapes = [PostprocessShape(256, 1, 10), PostprocessShape(2048, 20, 10)]
    measured, reference_ms = postprocess_ops.measure(shapes, rounds=1)
    assert set(measured) == set(shapes) and reference_ms is None
    assert measured[shapes[1]] > measured[shapes[0]] > 0  # 8x the anchors, 20x the scores
