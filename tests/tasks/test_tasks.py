"""Detection and segmentation in the specializer: backbones, pricing, picks (no TensorFlow)."""
import pytest

from edgetailor.arch import layers
from edgetailor.latency import profiles
from edgetailor.tasks.detection import ssdlite
from edgetailor import tasks
from edgetailor.tasks.detection.task import published_reference
from edgetailor.arch.spec import SpecError


@pytest.fixture(scope="module")
def pixel1():
    return profiles.load("pixel1")


# MobileNetV3 paper (Howard et al. 2019) Table 6, SSDLite at 320 px on COCO: params (M), MAdds (B).
@pytest.mark.parametrize("family, reduced, params_m, madds_b", [
    ("mobilenet_v3_large", True, 3.22, 0.51), ("mobilenet_v3_large", False, 4.97, 0.62),
    ("mobilenet_v3_small", True, 1.77, 0.16), ("mobilenet_v3_small", False, 2.49, 0.21)])
def test_ssdlite_mobilenet_v3_matches_the_paper(family, reduced, params_m, madds_b):
    reference = next(r for r in ssdlite.PUBLISHED if r.family == family and r.reduced_tail == reduced)
    params, macs = ssdlite.count(reference.spec(), ssdlite.SSDLiteConfig(num_classes=90))
    assert params / 1e6 == pytest.approx(params_m, rel=0.02)
    assert macs / 1e9 == pytest.approx(madds_b, abs=0.01)  # quoted to 0.01 B


def test_reduced_tail_halves_the_last_stage_and_head_conv():
    full = ssdlite.detection_backbone("mobilenet_v2")                 # not a V3: unchanged
    assert full == tasks.DENSE["segmentation"].backbone("mobilenet_v2", 1.0, 320)
    reduced = ssdlite.detection_backbone("mobilenet_v3_large")
    assert [b.channels for b in reduced.stages[-1]] == [80, 80]
    assert reduced.head[0].channels == 480
    assert reduced.stages[:-1] == ssdlite.reduce_tail(reduced).stages[:-1]


def test_detection_pick_fits_the_budget_and_ranks_by_backbone_top1(pixel1):
    result = tasks.DENSE["detection"].pick(pixel1, 60.0, num_labels=90)
    best = result.best
    assert best.latency_ms <= 60.0 and best.resolution == 320
    assert all(c.top1 <= best.top1 for c in result.runners_up)
    config = ssdlite.SSDLiteConfig(num_classes=90)
    walked = ssdlite.layers(best.spec, config)
    assert best.latency_ms == pytest.approx(ssdlite.predict_latency(best.spec, config, pixel1).total_ms)
    assert (best.params, best.macs) == layers.totals(walked)
    # the Pareto front is ordered by latency with strictly rising top-1
    front = result.pareto
    assert all(a.latency_ms <= b.latency_ms and a.top1 < b.top1
               for a, b in zip(front, front[1:]))


def test_published_detectors_are_shown_with_our_prediction(pixel1):
    refs = tasks.DENSE["detection"].pick(pixel1, 200.0, num_labels=3).references
    by_name = {r["name"]: r for r in refs}
    large = by_name["SSDLite MobileNetV3-Large (reduced tail)"]
    assert (large["published_pixel1_ms"], large["published_coco_map"]) == (119.0, 22.6)
    assert "tf1_detection_zoo" in large["source"]
    assert large["predicted_ms"] < large["predicted_ms_90_classes"]   # 3 classes, smaller heads
    assert published_reference(ssdlite.detection_backbone("mobilenet_v3_large")).pixel1_ms == 119.0
    assert published_reference(ssdlite.detection_backbone("mobilenet_v2")) is None


def test_segmentation_pick_at_a_chosen_resolution(pixel1):
    result = tasks.DENSE["segmentation"].pick(pixel1, 40.0, num_labels=21, resolution=192)
    assert result.best.resolution == 192 and result.best.latency_ms <= 40.0
    assert result.references == ()


def test_impossible_budget_names_the_fastest(pixel1):
    with pytest.raises(SpecError, match=r"no detection candidate meets 1 ms .* the fastest is .* ms"):
        tasks.DENSE["detection"].pick(pixel1, 1.0, num_labels=90)


def test_unknown_task():
    with pytest.raises(SpecError, match="unknown task 'pose'"):
        tasks.get("pose")


def test_latency_command_prices_a_backbone_with_its_head(pixel1):
    import json

    from click.testing import CliRunner

    from edgetailor.cli.main import main

    result = CliRunner().invoke(main, ["latency", "mobilenet_v3_large", "--device", "pixel1",
                                       "--task", "detection", "--json"])
    assert result.exit_code == 0, result.output
    priced = json.loads(result.output)
    reference = next(r for r in ssdlite.PUBLISHED if r.name.startswith("SSDLite MobileNetV3-Large (reduced"))
    expected = ssdlite.predict_latency(reference.spec(), ssdlite.SSDLiteConfig(num_classes=90), pixel1)
    assert priced["spec"] == reference.spec().encode()          # 320 px, reduced tail
    assert priced["latency_ms"] == pytest.approx(expected.total_ms, abs=1e-3)
    bad = CliRunner().invoke(main, ["latency", "mobilenet_v2", "--device", "pixel1", "--task",
                                    "segmentation", "--num-classes", "1"])
    assert bad.exit_code != 0 and "background plus at least one class" in bad.output
    assert "Traceback" not in bad.output
