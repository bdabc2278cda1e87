"""YOLOX-lite (``edgetailor.tasks.detection.yolox``): the grid anchors + coder scales decode exactly
as YOLOX does, the walk equals the Keras build, the centre-prior assignment, the TFLite export
(one TFLite_Detection_PostProcess op, objectness x class scores) and the Core ML NMS pipeline."""
import json

import numpy as np
import pytest

from edgetailor.arch import zoo
from edgetailor.arch.spec import SpecError
from edgetailor.latency import profiles
from edgetailor.tasks.detection import box_coder, heads, yolox

TINY_BACKBONE = ("mobilenet_v3_small", 0.5, 96)


def _tiny(classes=3, depthwise=True, width=0.125):
    spec = zoo.resolve(TINY_BACKBONE[0], width=TINY_BACKBONE[1], resolution=TINY_BACKBONE[2]).spec
    return spec, yolox.YOLOXConfig(classes, width=width, depthwise=depthwise)


def _yolox_decode(offsets, gx, gy, stride, resolution):
    """YOLOX's ``decode_outputs``, written out: corners (ymin, xmin, ymax, xmax) normalized."""
    dx, dy, dw, dh = offsets.T.astype(np.float64)
    x, y = (dx + gx) * stride, (dy + gy) * stride
    w, h = np.exp(dw) * stride, np.exp(dh) * stride
    return np.stack([y - h / 2, x - w / 2, y + h / 2, x + w / 2], axis=1) / resolution


def test_the_op_decode_with_grid_anchors_is_yolox_decode():
    spec, config = _tiny()
    gx, gy, stride = yolox.grid_points(spec, config)
    offsets = np.random.default_rng(0).normal(0, 1.5, (len(gx), 4)).astype(np.float32)
    # box_coder.decode is the TFLite op's decode (centre-size, scales 10/10/5/5)
    ours = box_coder.decode(yolox.offsets_to_codes(offsets), yolox.anchors(spec, config))
    np.testing.assert_allclose(ours, _yolox_decode(offsets, gx, gy, stride, spec.resolution), atol=1e-5)
    assert len(gx) == yolox.num_anchors(spec, config) == 12 * 12 + 6 * 6 + 3 * 3


def test_anchors_are_cell_corners_one_stride_wide():
    spec, config = _tiny()
    a = yolox.anchors(spec, config)
    np.testing.assert_allclose(a[1], [0, 8 / 96, 8 / 96, 8 / 96])        # stride 8, row 0, column 1
    np.testing.assert_allclose(a[12], [8 / 96, 0, 8 / 96, 8 / 96])       # row 1, column 0
    np.testing.assert_allclose(a[144], [0, 0, 16 / 96, 16 / 96])         # first stride-16 point


@pytest.mark.slow  # builds a backbone and head: ~30 s on a loaded 2-core host
@pytest.mark.parametrize("depthwise", [True, False])
def test_keras_build_equals_the_walk(depthwise):
    spec, config = _tiny(depthwise=depthwise)
    model = yolox.build(spec, config)
    assert model.count_params() == sum(l.keras_params for l in yolox.layers(spec, config))
    assert model.outputs[0].shape[1:] == (yolox.num_anchors(spec, config), 4)
    assert model.outputs[1].shape[1:] == (yolox.num_anchors(spec, config), config.num_classes + 1)


def test_nano_head_width_and_pricing():
    spec, config = _tiny(classes=80, width=0.25)
    assert config.hidden == 64  # yolox_nano: int(256 * 0.25)
    pixel1 = profiles.load("pixel1")
    breakdown = yolox.predict_latency(spec, config, pixel1)
    head = [l for l in breakdown.layers if l.name.startswith("yolox.")]
    assert len(head) == len(yolox.head_layers(spec, config)) and all(l.latency_ms > 0 for l in head)
    full = yolox.YOLOXConfig(80, width=0.25, depthwise=False)
    assert yolox.count(spec, full)[1] > yolox.count(spec, config)[1]  # 3x3 convs cost more MACs
    assert heads.module_for(config) is yolox and heads.name_of(config) == "yolox"


def test_config_mistakes_are_spec_errors():
    for bad in ({"strides": (16, 8)}, {"strides": (4, 8)}, {"width": 0.001}, {"act": "gelu"}):
        with pytest.raises(SpecError):
            yolox.YOLOXConfig(3, **bad)


def test_centre_prior_assignment():
    spec, config = _tiny()
    a = yolox.anchors(spec, config)
    _, _, stride = yolox.grid_points(spec, config)
    big = np.array([[0.1, 0.1, 0.9, 0.9]])
    cls, box = yolox.assign(big, [2], a)
    pos = cls > 0
    assert set(cls[pos]) == {3}
    centres = a[pos, :2] + a[pos, 2:] / 2
    assert np.all(np.abs(centres - 0.5) < 2.5 * stride[pos, None] / 96)  # within 2.5 strides
    assert set(stride[pos]) == {8.0, 16.0, 32.0}
    np.testing.assert_allclose(box_coder.decode(box[pos], a[pos]), np.repeat(big, pos.sum(), 0), atol=1e-5)
    # a box smaller than a cell still gets positives; an overlap goes to the smaller box
    tiny = np.array([[0.5, 0.5, 0.52, 0.52]])
    assert (yolox.assign(tiny, [0], a)[0] > 0).sum() == 1
    both, _ = yolox.assign(np.concatenate([big, tiny]), [2, 0], a)
    assert (both == 1).any() and (both == 3).any()
    assert not yolox.assign(np.zeros((0, 4)), [], a)[0].any()


def test_coreml_decoder_scores_objectness_times_class_and_decodes_yolox_boxes():
    import tensorflow as tf

    from edgetailor.tasks.detection import coreml_pipeline

    spec, config = _tiny()
    gx, gy, stride = yolox.grid_points(spec, config)
    rng = np.random.default_rng(2)
    offsets = rng.normal(0, 1, (len(gx), 4)).astype(np.float32)
    logits = rng.normal(0, 2, (1, len(gx), 4)).astype(np.float32)
    confidence, xywh = coreml_pipeline.decode(tf.constant(yolox.offsets_to_codes(offsets)[None]),
                                              tf.constant(logits), yolox.anchors(spec, config), 80, config)
    sigmoid = 1 / (1 + np.exp(-logits[0]))
    np.testing.assert_allclose(confidence.numpy()[:, :3], sigmoid[:, :1] * sigmoid[:, 1:], rtol=1e-5)
    y0, x0, y1, x1 = _yolox_decode(offsets, gx, gy, stride, spec.resolution).T
    np.testing.assert_allclose(xywh.numpy(), np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], 1),
                               rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_detector():
    import tensorflow as tf

    from edgetailor.tasks.detection.train import Detector

    tf.keras.utils.set_random_seed(0)
    spec, config = _tiny(depthwise=False)  # half the head's layers of DWConv: a faster conversion
    model = yolox.build(spec, config)
    # spread the scores apart: the prior bias makes every untrained score ~1e-4
    for level in range(len(config.strides)):
        for label in (f"yolox_obj{level}", f"yolox_cls{level}"):
            kernel, bias = model.get_layer(label).get_weights()
            model.get_layer(label).set_weights([kernel * 20, np.zeros_like(bias)])
    return Detector(model, spec, config, ("a", "b", "c"))


@pytest.mark.slow
def test_keras_scores_are_objectness_times_class(tiny_detector):
    import tensorflow as tf

    image = np.random.default_rng(1).integers(0, 256, (1, 96, 96, 3), dtype=np.uint8)
    codes, logits = tiny_detector.model(((image - 127.5) / 127.5).astype(np.float32))
    expected = tf.sigmoid(logits[..., :1]) * tf.sigmoid(logits[..., 1:])
    np.testing.assert_allclose(heads.scores(tiny_detector.config, logits)[..., 1:], expected, rtol=1e-6)
    best = tiny_detector.predict(image, score_threshold=0.0, max_detections=1)[0]
    np.testing.assert_allclose(best.scores[0], float(tf.reduce_max(expected)), rtol=1e-5)


@pytest.mark.slow
def test_tflite_ends_in_the_postprocess_op_and_matches_keras(tiny_detector, tmp_path):
    import tensorflow as tf

    from edgetailor.tasks.detection import export
    from edgetailor.tasks.detection.postprocess import PostprocessConfig

    path = export.export_tflite(tiny_detector, tmp_path / "model.tflite", PostprocessConfig(10, 0.0))
    interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    assert ops.count("TFLite_Detection_PostProcess") == 1
    image = np.random.default_rng(0).integers(0, 256, (1, 96, 96, 3), dtype=np.uint8)
    boxes, classes, scores = export.run_tflite(path, image)[0]
    keras = tiny_detector.predict(image, score_threshold=0.0, iou_threshold=0.6, max_detections=10)[0]
    assert len(scores) == len(keras.scores) == 10
    np.testing.assert_allclose(scores[:3], keras.scores[:3], atol=1e-4)
    # the op leaves boxes unclipped (corner grid points put untrained boxes across the border)
    np.testing.assert_allclose(np.clip(boxes[:3], 0, 1), np.clip(keras.boxes[:3], 0, 1), atol=1e-3)
    np.testing.assert_array_equal(classes[:3], keras.classes[:3])


@pytest.mark.slow
def test_coreml_pipeline_ends_in_nms(tiny_detector):
    from edgetailor.tasks.detection import export

    spec, _ = export.coreml_spec(tiny_detector)
    assert [m.WhichOneof("Type") for m in spec.pipeline.models] == ["mlProgram", "neuralNetwork",
                                                                    "nonMaximumSuppression"]
    assert spec.description.metadata.userDefined["architecture"] == "yolox"
    assert json.loads(spec.description.metadata.userDefined["labels"]) == ["a", "b", "c"]


@pytest.mark.slow
def test_detector_trainer_trains_yolox_and_the_loss_falls():
    from edgetailor.data import shapes
    from edgetailor.tasks.detection import train

    data = shapes.detection(32, size=96, seed=0)
    spec, config = _tiny(classes=len(data.classes))
    detector = train.train(data, spec, config, epochs=2, batch_size=16, learning_rate=0.01)
    losses = [h["loss"] for h in detector.history]
    assert losses[-1] < losses[0], losses
    assert isinstance(detector.config, yolox.YOLOXConfig) and len(detector.predict(data.images[:2])) == 2
