"""SSDLite head, anchors, box coder and target assignment (no training)."""
import math

import numpy as np
import pytest

from edgetailor.tasks.detection import anchors, box_coder, coco_eval, ssdlite
from edgetailor.latency import profiles
from edgetailor.arch import zoo
from edgetailor.arch.spec import SpecError


def _spec(name="mobilenet_v3_large", width=1.0, resolution=320):
    return zoo.resolve(name, width, resolution).spec


def test_anchor_boxes_follow_the_od_api_config():
    config = anchors.AnchorConfig()
    scales = config.scales(6)
    np.testing.assert_allclose(scales, [0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 1.0])
    specs = config.box_specs(6)
    assert specs[0] == [(0.1, 1.0), (0.2, 2.0), (0.2, 0.5)]
    assert [s[1] for s in specs[1][:5]] == [1.0, 2.0, 0.5, 3.0, 0.3333]
    assert specs[1][5] == (pytest.approx(math.sqrt(0.35 * 0.5)), 1.0)
    assert specs[5][5] == (pytest.approx(math.sqrt(0.95 * 1.0)), 1.0)
    assert config.boxes_per_location(6) == [3, 6, 6, 6, 6, 6]


def test_anchor_grid_order_and_geometry():
    a = anchors.ssd_anchors([2, 1])
    assert a.shape == (2 * 2 * 3 + 6, 4)
    np.testing.assert_allclose(a[:3, :2], [[0.25, 0.25]] * 3)   # row 0, column 0: three boxes
    np.testing.assert_allclose(a[3, :2], [0.25, 0.75])          # then column 1
    np.testing.assert_allclose(a[6, :2], [0.75, 0.25])          # then row 1
    np.testing.assert_allclose(a[1, 2:], [0.2 / math.sqrt(2), 0.2 * math.sqrt(2)], rtol=1e-6)  # h, w
    np.testing.assert_allclose(a[12:, :2], [[0.5, 0.5]] * 6)


def test_ssdlite_mobilenet_v3_large_320_has_the_published_maps_and_anchors():
    spec = _spec()
    config = ssdlite.SSDLiteConfig(num_classes=90)
    low, high = ssdlite.endpoints(spec)
    assert (low.kind, low.stride, low.channels) == ("expansion", 16, 672)   # layer_14/expansion_output
    assert (high.stride, high.channels) == (32, 960)                         # layer_17
    assert [s[:2] for s in ssdlite.map_shapes(spec, config)] == [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    assert [s[2] for s in ssdlite.map_shapes(spec, config)][2:] == [512, 256, 256, 128]
    assert ssdlite.num_anchors(spec, config) == 2034 == len(ssdlite.anchors(spec, config))


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v1", "mnasnet_a1", "shufflenet_v2"])
def test_head_attaches_to_any_backbone(name):
    spec = _spec(name, 1.0, 320)
    config = ssdlite.SSDLiteConfig(num_classes=3)
    low, high = ssdlite.endpoints(spec)
    assert low.stride == 16 and high.stride == 32
    assert ssdlite.count(spec, config)[1] > 0


def test_head_cost_matches_keras_and_prices_on_a_profile():
    spec = _spec("mobilenet_v3_small", 0.5, 160)
    config = ssdlite.SSDLiteConfig(num_classes=6)
    model = ssdlite.build(spec, config)
    assert model.count_params() == sum(l.keras_params for l in ssdlite.layers(spec, config))
    assert model.outputs[0].shape[1:] == (ssdlite.num_anchors(spec, config), 4)
    assert model.outputs[1].shape[1:] == (ssdlite.num_anchors(spec, config), 7)
    pixel1 = profiles.load("pixel1")
    total = ssdlite.predict_latency(spec, config, pixel1)
    head_names = {l.name for l in ssdlite.head_layers(spec, config)}
    head_ms = sum(l.latency_ms for l in total.layers if l.name in head_names)
    assert 0 < head_ms < total.total_ms
    assert all(l.latency_ms > 0 for l in total.layers if l.name in head_names)


def test_extra_depths_scale_with_width_with_a_floor():
    assert ssdlite.SSDLiteConfig(3).depths(_spec("mobilenet_v3_small", 0.5, 160)) == (256, 128, 128, 64)
    assert ssdlite.SSDLiteConfig(3).depths(_spec("mobilenet_v3_small", 0.02, 160)) == (16, 16, 16, 16)
    assert ssdlite.SSDLiteConfig(3, extra_depths=(64, 32, 32, 16)).depths(_spec()) == (64, 32, 32, 16)
    with pytest.raises(SpecError, match="at least one class"):
        ssdlite.SSDLiteConfig(0)


def test_box_coder_round_trip_and_scales():
    rng = np.random.default_rng(0)
    anchor = np.array([[0.5, 0.5, 0.2, 0.4]], np.float32)
    box = np.array([[0.45, 0.35, 0.65, 0.7]], np.float32)
    code = box_coder.encode(box, anchor)
    np.testing.assert_allclose(code[0, :2], [10 * (0.55 - 0.5) / 0.2, 10 * (0.525 - 0.5) / 0.4], rtol=1e-5)
    np.testing.assert_allclose(code[0, 2:], [5 * np.log(0.2 / 0.2), 5 * np.log(0.35 / 0.4)], rtol=1e-5, atol=1e-6)
    y0, x0 = rng.uniform(0, 0.6, (2, 50))
    h, w = rng.uniform(0.05, 0.4, (2, 50))
    boxes = np.stack([y0, x0, y0 + h, x0 + w], axis=1).astype(np.float32)
    grid = anchors.ssd_anchors([5, 3])[:50]
    np.testing.assert_allclose(box_coder.decode(box_coder.encode(boxes, grid), grid), boxes, atol=1e-5)


def test_assignment_matches_at_iou_half_and_forces_a_match_per_box():
    grid = anchors.ssd_anchors([4, 2, 1])
    corners = box_coder.corners(grid)
    exact = corners[10:11]  # a box equal to one anchor: matched with code zero
    tiny = np.array([[0.01, 0.01, 0.03, 0.03]], np.float32)  # IoU < 0.5 with everything
    cls, box = box_coder.assign(np.concatenate([exact, tiny]), np.array([2, 0]), grid)
    assert cls[10] == 3 and np.allclose(box[10], 0, atol=1e-5)
    assert (cls == 1).sum() == 1  # the tiny box still owns its best anchor
    ious = box_coder.iou(exact, corners)[0]
    assert set(np.nonzero(cls == 3)[0]) == set(np.nonzero(ious >= 0.5)[0])
    assert (box[cls == 0] == 0).all()
    empty_cls, _ = box_coder.assign(np.zeros((0, 4)), np.zeros(0), grid)
    assert not empty_cls.any()


def test_coco_eval_uses_pycocotools_and_scores_a_perfect_detector():
    boxes = [np.array([[0.1, 0.1, 0.5, 0.4], [0.6, 0.5, 0.9, 0.95]], np.float32), np.zeros((0, 4))]
    labels = [np.array([0, 1]), np.zeros(0, np.int64)]
    perfect = coco_eval.evaluate(boxes, labels, boxes, [np.ones(2), np.zeros(0)], labels, ("a", "b"), (100, 100))
    assert perfect["AP"] == pytest.approx(1.0) and perfect["AP50"] == pytest.approx(1.0)
    wrong_class = coco_eval.evaluate(boxes, labels, boxes, [np.ones(2), np.zeros(0)],
                                     [np.array([1, 0]), labels[1]], ("a", "b"), (100, 100))
    assert wrong_class["AP"] == 0.0
    nothing = coco_eval.evaluate(boxes, labels, [np.zeros((0, 4))] * 2, [np.zeros(0)] * 2,
                                 [np.zeros(0)] * 2, ("a", "b"), (100, 100))
    assert nothing["AP"] == 0.0


def test_a_long_epoch_reports_its_steps_and_keeps_them_out_of_the_history(monkeypatch):
    from edgetailor.tasks.detection import train

    class Step:  # a training step that only counts: the loop, not the model
        def __init__(self):
            self.calls = 0

        def __call__(self, images):
            self.calls += 1
            return (float(self.calls),)

        python_function = property(lambda self: self)

    monkeypatch.setattr(train, "STEP_REPORT_S", 0.0)
    said = []
    history = train.run_epochs(Step(), lambda idx: (idx,), n=12, batch_size=4, epochs=2, flip=False, seed=0,
                               names=("loss_a",), progress=said.append)
    lines = [train.epoch_line(record, 2) for record in said]
    assert [line.split(" (")[0] for line in lines] == [
        "epoch 1/2: step 1/3", "epoch 1/2: step 2/3", "epoch 1/2: loss 2.000",
        "epoch 2/2: step 1/3", "epoch 2/2: step 2/3", "epoch 2/2: loss 5.000"]
    assert [record["epoch"] for record in history] == [1, 2] and "step" not in history[0]
