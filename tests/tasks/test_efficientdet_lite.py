"""EfficientDet-Lite, BiFPN and NAS-FPN-lite (``edgetailor.tasks.detection.efficientdet``, ``neck``,
``bifpn``, ``nasfpn``): published sizes from the walk, the Keras build equal to the walk, anchors
as automl makes them, the whole detector priced, TFLite/Core ML export, and the head picker."""
import json

import numpy as np
import pytest

from edgetailor.arch import zoo
from edgetailor.latency import profiles
from edgetailor.tasks.detection import anchors, bifpn, efficientdet, heads, nasfpn, neck, ssdlite
from edgetailor.tasks.detection.task import Detection

TINY_BACKBONE = ("mobilenet_v3_small", 0.5, 96)
# a small SSDLite grid keeps the picker test cheap; the alternatives need these backbone families
PICK = {"families": ("mobilenet_v3_large", "mobilenet_v3_small", "mobilenet_v2", "efficientnet_lite"),
        "widths": (0.5, 1.0)}


def _tiny(kind="bifpn", weight_method="sum", classes=3):
    spec = zoo.resolve(TINY_BACKBONE[0], width=TINY_BACKBONE[1], resolution=TINY_BACKBONE[2]).spec
    return spec, efficientdet.EfficientDetConfig(classes, neck.NeckConfig(kind, 16, 1, weight_method), 1)


@pytest.mark.parametrize("reference", efficientdet.PUBLISHED, ids=lambda r: r.name)
def test_lite_parameters_within_5_percent_of_the_published(reference):
    params, macs = efficientdet.count(reference.spec(), reference.config(90))
    assert abs(params / 1e6 / reference.params_m - 1) < 0.05, params
    assert macs > 0


def test_bifpn_cell_is_automl_s_graph():
    nodes = bifpn.cell_nodes(3, 7)
    # fpn_configs.bifpn_config's own example (P6' .. P3" then P4" .. P7")
    assert [(n.level, n.inputs) for n in nodes] == [
        (6, (3, 4)), (5, (2, 5)), (4, (1, 6)), (3, (0, 7)),
        (4, (1, 7, 8)), (5, (2, 6, 9)), (6, (3, 5, 10)), (7, (4, 11))]
    assert {n.combine for n in bifpn.cell_nodes(3, 7, "fastattn")} == {"fastattn"}
    with pytest.raises(ValueError):
        bifpn.cell_nodes(3, 7, "softmax")


def test_nasfpn_output_blocks_add_the_unread_features_of_their_level():
    nodes = nasfpn.cell_nodes()
    assert [n.level for n in nodes] == [4, 4, 3, 4, 5, 7, 6]
    assert nodes[2].inputs == (0, 6)             # P3 is read by this block itself
    assert nodes[3].inputs == (6, 7)             # the first level-4 block (5) was read by block 1
    assert nodes[4].inputs == (7, 8, 2)          # P5 was never read: added
    assert nodes[5].inputs == (6, 9, 4)          # P7 likewise
    assert nodes[6].inputs == (9, 10)            # P6 (3) was read by block 0


def test_multilevel_anchors_match_automl_at_lite0():
    grids = neck.sides(320)
    assert grids == [40, 20, 10, 5, 3]
    config = anchors.MultilevelAnchorConfig(anchor_scale=3.0)
    a = anchors.multilevel_anchors(grids, config)
    assert len(a) == 9 * sum(g * g for g in grids) == 19206
    # level 3, cell (0, 0): octave 0 ratio 1 is anchor_scale * stride = 24 px; ratio 2 is wider
    np.testing.assert_allclose(a[0], [4 / 320, 4 / 320, 24 / 320, 24 / 320], rtol=1e-6)
    np.testing.assert_allclose(a[1, 2:], [24 / 320 / np.sqrt(2), 24 * np.sqrt(2) / 320], rtol=1e-6)
    np.testing.assert_allclose(a[3, 2:], [24 * 2 ** (1 / 3) / 320] * 2, rtol=1e-6)
    assert a[9, 1] > a[0, 1] and a[9, 0] == a[0, 0]  # next cell: same row, next column


def test_every_neck_and_head_op_is_priced():
    spec, config = efficientdet.nasfpn_lite(90)
    walked = efficientdet.layers(spec, config)
    pixel1 = profiles.load("pixel1")
    breakdown = pixel1.predict_layers(walked)
    head = [l for l in breakdown.layers if l.name.startswith(("neck.", "effdet."))]
    assert len(head) == len(efficientdet.head_layers(spec, config))
    assert all(l.latency_ms > 0 for l in head)
    kinds = {op.kind for l in walked for op in l.ops}
    assert {"maxpool", "resize", "add", "mul", "pool", "pad"} <= kinds
    # more classes, more work in the class net and the outputs
    assert pixel1.predict_layers(efficientdet.layers(spec, efficientdet.nasfpn_lite(10)[1])).total_ms \
        < breakdown.total_ms


def test_fast_fusion_adds_one_weight_per_input_and_a_multiply_each():
    spec, summed = _tiny()
    _, fast = _tiny(weight_method="fastattn")
    inputs = sum(len(n.inputs) for n in bifpn.cell_nodes())
    assert efficientdet.count(spec, fast)[0] - efficientdet.count(spec, summed)[0] == inputs
    pixel1 = profiles.load("pixel1")
    assert efficientdet.predict_latency(spec, fast, pixel1).total_ms > efficientdet.predict_latency(spec, summed, pixel1).total_ms


def test_heads_dispatch_by_config():
    spec, config = _tiny()
    assert heads.module_for(config) is efficientdet and heads.name_of(config) == "efficientdet"
    assert heads.name_of(_tiny("nasfpn")[1]) == "nasfpn"
    assert heads.name_of(ssdlite.SSDLiteConfig(3)) == "ssdlite"


@pytest.mark.parametrize("kind,weight_method", [
    ("bifpn", "fastattn"), pytest.param("nasfpn", "sum", marks=pytest.mark.slow)])  # builds: ~15 s each idle
def test_keras_build_equals_the_walk(kind, weight_method):
    spec, config = _tiny(kind, weight_method)
    model = efficientdet.build(spec, config)
    assert model.count_params() == sum(l.keras_params for l in efficientdet.layers(spec, config))
    assert model.outputs[0].shape[1:] == (efficientdet.num_anchors(spec, config), 4)
    assert model.outputs[1].shape[1:] == (efficientdet.num_anchors(spec, config), config.num_classes + 1)


def test_picker_keeps_ssdlite_under_tight_budgets_and_takes_efficientdet_where_it_fits():
    task, pixel4 = Detection(), profiles.load("pixel4")
    tight = task.pick(pixel4, 40.0, 90, **PICK)
    assert tight.best.head in (None, "ssdlite")
    roomy = task.pick(pixel4, 250.0, 90, **PICK)
    assert roomy.best.head == "efficientdet" and roomy.best.accuracy.value == 31.50  # Lite1 fits, Lite2 not
    assert any(c.head == "ssdlite" for c in roomy.runners_up)
    config = task.config_for(roomy.best, 5)
    assert isinstance(config, efficientdet.EfficientDetConfig) and config.neck.filters == 88
    # NAS-FPN-lite is the pick where it is the only alternative that fits
    lite0 = next(c for c in task.alternatives(pixel4, 90) if c.label.startswith("EfficientDet-Lite0"))
    nas = next(c for c in task.alternatives(pixel4, 90) if c.head == "nasfpn")
    if nas.latency_ms < lite0.latency_ms:
        between = task.pick(pixel4, (nas.latency_ms + lite0.latency_ms) / 2, 90, **PICK)
        assert between.best.head == "nasfpn"
    # another resolution or families without their backbones: SSDLite only
    assert task.pick(pixel4, 250.0, 90, resolution=256, **PICK).best.head in (None, "ssdlite")
    assert task.pick(pixel4, 250.0, 90, families=("mobilenet_v3_large",), widths=(1.0,)).best.head in (None, "ssdlite")


@pytest.fixture(scope="module")
def tiny_detector():
    import tensorflow as tf

    from edgetailor.tasks.detection.train import Detector

    tf.keras.utils.set_random_seed(0)
    spec, config = _tiny()
    return Detector(efficientdet.build(spec, config), spec, config, ("a", "b", "c"))


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
    assert [o["name"] for o in interpreter.get_output_details()] == list(export.OUTPUT_NAMES)
    image = np.random.default_rng(0).integers(0, 256, (1, 96, 96, 3), dtype=np.uint8)
    boxes, classes, scores = export.run_tflite(path, image)[0]
    keras = tiny_detector.predict(image, score_threshold=0.0, iou_threshold=0.6, max_detections=10)[0]
    np.testing.assert_allclose(scores[0], keras.scores[0], atol=1e-4)
    np.testing.assert_allclose(boxes[0], np.clip(keras.boxes[0], 0, 1), atol=1e-3)
    assert classes[0] == keras.classes[0]


@pytest.mark.slow
def test_coreml_pipeline_ends_in_nms(tiny_detector):
    from edgetailor.tasks.detection import export

    spec, _ = export.coreml_spec(tiny_detector)
    assert [m.WhichOneof("Type") for m in spec.pipeline.models] == ["mlProgram", "neuralNetwork",
                                                                    "nonMaximumSuppression"]
    assert tuple(spec.pipeline.models[2].nonMaximumSuppression.stringClassLabels.vector) == ("a", "b", "c")
    assert spec.description.metadata.userDefined["architecture"] == "efficientdet"
    assert json.loads(spec.description.metadata.userDefined["labels"]) == ["a", "b", "c"]
