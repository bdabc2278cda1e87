"""``search --task detection``: NSGA-II over backbones with a detection head priced whole, every
candidate weight-mapped from one parent trained on a COCO folder and scored by held-out mAP.

Tiny throughout: a four-stage space (depth 1/2, width 0.5/1, kernel 3/5 x expand 3/6, strides to 32)
registered for this module, 16 shapes images at 64 px, width x0.35, one epoch, 1 + 1 trials.
"""
import json

import numpy as np
import optuna
import pytest

from cli_checks import assert_one_line_error, invoke
from edgetailor.arch import spaces
from edgetailor.arch.spaces import Space, StageDef
from edgetailor.latency import profiles
from edgetailor.tasks.detection import ssdlite, yolox
from edgetailor.tasks.detection.search_space import DetectionSearch, parent_choices

OPS = ("ir_k3_e3_re", "ir_k5_e3_re", "ir_k3_e6_re", "ir_k5_e6_re")
TINY = Space("det_tiny", "test space: four stride-2 stages, depth 1/2, width 0.5/1, kernel 3/5 x expand 3/6",
             "conv_k3_s2_c16_re", tuple(StageDef(c, 2, (1, 2), OPS, widths=(0.5, 1.0)) for c in (16, 24, 32, 48)),
             "conv_k1_c64_re,pool", resolutions=(160,))
PROXY = ("--resolution", 64, "--proxy-width", 0.35, "--epochs", 1, "--parent-epochs", 1)


@pytest.fixture(scope="module", autouse=True)
def tiny_space():
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(spaces.SPACES, TINY.name, TINY)
        yield TINY


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    from edgetailor.data import folders, shapes

    data = shapes.detection(16, 64, seed=1, max_objects=2, classes=("circle", "square", "triangle"))
    return folders.write_coco_folder(tmp_path_factory.mktemp("det_search") / "coco", data)


def _search(coco, out, *extra):
    return invoke("search", "--task", "detection", "--space", "det_tiny", "--device", "pixel1", "--dataset", coco,
                  "--out", out, *PROXY, *extra)


@pytest.mark.parametrize("head", ["ssdlite", "yolox"])
def test_priced_latency_is_the_detection_tasks_whole_pricing(coco, head):
    from edgetailor.supernet.detection_search import ParentMapped, Recipe

    from edgetailor.choose.search.engine import SearchConfig

    evaluator = ParentMapped(Recipe(str(coco), "det_tiny", head=head, resolution=64, width=0.35))
    profile = profiles.load("pixel1")
    search = DetectionSearch(SearchConfig("det_tiny", "pixel1", objective="pareto"), evaluator, head,
                             profile=profile, open_study=False)
    rows = TINY.sample(np.random.default_rng(3), 4)
    for row, ms in zip(rows, search.predictor.predict(rows)):
        spec = TINY.decode(row)
        # the task's pricing of each head: the head module's whole-detector walk (task.py prices with it)
        module, config = (ssdlite, ssdlite.SSDLiteConfig(3)) if head == "ssdlite" else (yolox, yolox.YOLOXConfig(3))
        whole = module.predict_latency(spec, config, profile).total_ms
        backbone_only = profile.predict(spec, 3).total_ms
        assert ms == pytest.approx(whole, rel=1e-12) and ms != pytest.approx(backbone_only, rel=1e-3)
    assert search.fastest_ms <= min(search.predictor.predict(rows)) and search.slowest_ms > search.fastest_ms


def test_the_parent_is_the_largest_network_of_the_space():
    spec = TINY.decode(parent_choices(TINY))
    assert [len(stage) for stage in spec.stages] == [2, 2, 2, 2]
    assert {(b.kernel, b.expand) for stage in spec.stages for b in stage} == {(5, 6)}
    assert [stage[0].channels for stage in spec.stages] == [16, 24, 32, 48]


@pytest.mark.parametrize("args, needles", [
    (("--head", "retina"), ["unknown detection head 'retina'", "ssdlite, yolox"]),
    (("--budget-ms", 0.01), ["no candidate of space 'det_tiny' meets 0.01 ms", "the fastest is"]),
    (("--strategy", "tpe"), ["--strategy", "do not apply to --task detection"]),
])
def test_one_line_errors_leave_no_output(coco, tmp_path, args, needles):
    out = tmp_path / "out"
    assert_one_line_error(_search(coco, out, *args), *needles)
    assert not out.exists()


def test_a_folder_that_is_not_coco_and_a_space_without_features(coco, tmp_path):
    (tmp_path / "plain").mkdir()
    assert_one_line_error(_search(tmp_path / "plain", tmp_path / "a"), "is not a COCO folder", "labels.json")
    result = invoke("search", "--task", "detection", "--space", "ofa_proxy", "--device", "pixel1", "--dataset", coco,
                    "--out", tmp_path / "b", *PROXY)
    assert_one_line_error(result, "space 'ofa_proxy' has no detection features for the ssdlite head", "stride")
    result = invoke("search", "--task", "detection", "--space", "det_tiny", "--device", "pixel1",
                    "--out", tmp_path / "d")
    assert_one_line_error(result, "--task detection needs --dataset COCO_DIR")
    assert not any((tmp_path / name).exists() for name in "abd")


def test_classification_search_refuses_the_detection_options(tmp_path):
    result = invoke("search", "--device", "pixel1", "--head", "yolox", "--out", tmp_path / "c")
    assert_one_line_error(result, "--head and --parent-epochs apply to --task detection")
    assert_one_line_error(invoke("search", "--task", "segmentation", "--device", "pixel1", "--out", tmp_path / "c"),
                          "unknown task 'segmentation'")
    assert not (tmp_path / "c").exists()


@pytest.fixture(scope="module")
def searched(coco, tmp_path_factory):
    """One trial, then a rerun asking for two: the study resumes and the parent is reused."""
    out = tmp_path_factory.mktemp("det_search_out") / "run"
    first = _search(coco, out, "--trials", 1, "--budget-ms", 1000)
    assert first.exit_code == 0, first.output
    weights = (out / "parent" / "weights.npz").read_bytes()
    second = _search(coco, out, "--trials", 2, "--budget-ms", 1000, "--json")
    assert second.exit_code == 0, second.output
    return out, first, second, weights


@pytest.mark.slow
def test_the_parent_is_trained_once_and_reused_on_rerun(searched):
    out, first, second, weights = searched
    assert "training the parent" in first.stderr and "training the parent" not in second.stderr
    assert "parent reused from" in second.stderr and "resuming study 'search': 1 of 2" in second.stderr
    assert (out / "parent" / "weights.npz").read_bytes() == weights
    lines = [line for run in (first, second) for line in run.stderr.splitlines() if line.startswith("trial ")]
    assert len(lines) == 2 and all("ms (backbone + head), mAP" in line for line in lines)
    summary = json.loads(second.stdout)
    assert summary["trials"]["complete"] == 2 and summary["new_trials"] == 1
    assert summary["metric"].startswith("COCO mAP") and summary["head"] == "ssdlite"
    for name in ("pareto.json", "pareto.png", "best.json", "best_spec.txt"):
        assert (out / name).is_file()


@pytest.mark.slow
def test_trials_have_both_objectives_priced_whole_and_the_front_is_non_dominated(searched):
    out = searched[0]
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    profile = profiles.load("pixel1")
    points = []
    for trial in trials:
        mAP, ms = trial.values
        attrs = trial.user_attrs["candidate"]
        assert 0 <= mAP <= 100 and attrs["accuracy_kind"] == "measured" and "held-out" in attrs["accuracy_source"]
        spec = TINY.decode(attrs["choices"])
        assert ms == pytest.approx(ssdlite.predict_latency(spec, ssdlite.SSDLiteConfig(3), profile).total_ms,
                                   abs=1e-4)
        points.append((mAP, attrs["latency_ms"]))  # as the report rounds it
    front = json.loads((out / "pareto.json").read_text())["front"]
    assert front
    for f in front:
        assert not any(a >= f["accuracy"] and t <= f["latency_ms"] and (a, t) != (f["accuracy"], f["latency_ms"])
                       for a, t in points)
    best = json.loads((out / "best.json").read_text())
    assert best["latency_ms"] <= 1000 and (out / "best_spec.txt").read_text().strip() == best["spec"]


@pytest.mark.slow
def test_an_inherited_candidate_holds_exactly_the_parents_slices(searched, coco):
    from edgetailor.supernet.detection_search import ParentMapped, Recipe
    from edgetailor.supernet.inherit import parent_slice, weights_by_layer

    out = searched[0]
    evaluator = ParentMapped(Recipe(str(coco.resolve()), "det_tiny", head="ssdlite", resolution=64, width=0.35,
                                    parent_epochs=1, epochs=1))
    evaluator.prepare(out / "parent")
    # stage 1 shallow and narrow with k3 e3, the rest at their largest
    choice = parent_choices(TINY)
    choice[1:1 + 4] = [0, 0, 0, 0]
    model, mapped = evaluator.build_inherited(TINY.decode(choice))
    assert not mapped.fresh and len(mapped.inherited) > 50
    parent = evaluator.parent
    for name, arrays in weights_by_layer(model).items():
        for own, source in zip(arrays, parent[name]):
            assert np.array_equal(own, parent_slice(source, own.shape))
    assert not any(name.startswith("stage1_1") for name in weights_by_layer(model))  # depth 1: first block only
    dw, big = weights_by_layer(model)["stage1_0_dw"][0], parent["stage1_0_dw"][0]
    assert dw.shape[:2] == (3, 3) and big.shape[:2] == (5, 5)
    assert np.array_equal(dw, big[1:4, 1:4, :dw.shape[2]]) and dw.shape[2] < big.shape[2]  # centre, first channels


@pytest.mark.slow
def test_a_parent_trained_with_other_settings_is_refused(searched, coco):
    from edgetailor.errors import SearchError
    from edgetailor.supernet.detection_search import ParentMapped, Recipe

    evaluator = ParentMapped(Recipe(str(coco.resolve()), "det_tiny", head="ssdlite", resolution=64, width=0.5,
                                    parent_epochs=1, epochs=1))
    with pytest.raises(SearchError, match="trained with other settings"):
        evaluator.prepare(searched[0] / "parent")
