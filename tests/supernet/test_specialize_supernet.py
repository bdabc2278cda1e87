"""From a trained supernet to bundles: measured sub-networks, the predictor, specialize --supernet,
--targets with the index and selectors, and their bad input.

One small supernet (``test_supernet.TINY``: two stages at 32-40 px) is trained once for the module
on a shapes classes folder; its space travels in the checkpoint, so the command line loads it too.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgetailor.data import shapes
from edgetailor.errors import SupernetError
from edgetailor.latency import profiles

from test_supernet import TINY, fast

pytestmark = pytest.mark.slow  # trains a supernet and converts bundles

PIXEL1 = profiles.load("pixel1")


@pytest.fixture(scope="module")
def supernet(tmp_path_factory):
    """A trained TINY supernet with 6 measured sub-networks and its predictor; (folder, train result)."""
    from edgetailor.supernet import measured
    from edgetailor.supernet.train import train

    root = tmp_path_factory.mktemp("supernet")
    shapes.write_folder(root / "data", 48, size=48, seed=5)
    result = train(TINY, root / "data", root / "ckpt", fast(batch_size=8))
    done = measured.measure(root / "ckpt", result.net, result.state, result.source, 6)
    measured.fit_predictor(root / "ckpt", result.net.elastic, result.state, done)
    return root / "ckpt", result


def budget_for(folder: Path, profile, factor: float = 1.3) -> float:
    """A budget ``factor`` times the fastest sub-network's latency on ``profile``."""
    from edgetailor.supernet.specialize import FromSupernet

    task = FromSupernet(folder)
    with pytest.raises(SupernetError, match=r"the fastest, (.*) is predicted at") as caught:
        task.check_target(profile, 1e-3)
    fastest_ms = float(str(caught.value).rsplit(" at ", 1)[1].split()[0])
    return round(fastest_ms * factor, 2)


def test_the_checkpoint_records_its_space_and_dataset(supernet):
    from edgetailor.supernet import checkpoint

    folder, result = supernet
    state = checkpoint.read_state(folder)
    assert checkpoint.space_of(state) == TINY
    source = checkpoint.open_data(state, folder)
    assert source.classes == result.source.classes
    np.testing.assert_array_equal(source.val_labels, result.source.val_labels)


def test_measurements_resume_and_belong_to_one_set_of_weights(supernet, tmp_path):
    import dataclasses
    import shutil

    from edgetailor.supernet import measured

    folder, result = supernet
    copy = tmp_path / "ckpt"
    shutil.copytree(folder, copy)
    first = measured.read(copy, result.state)
    assert len(first) == 6 and first[0].subnet == result.net.elastic.largest(40)
    calls = []
    more = measured.measure(copy, result.net, result.state, result.source, 7,
                            progress=lambda done, total, m: calls.append(done))
    assert more[:6] == first and calls == [6, 7]  # only the new one was measured
    retrained = dataclasses.replace(result.state, weights="weights-7")
    assert measured.read(copy, retrained) == []
    with pytest.raises(SupernetError, match="has no accuracy predictor|fitted for another"):
        measured.load_predictor(copy, result.net.elastic, retrained)
    (copy / measured.MEASURED).write_text("{not json")
    with pytest.raises(SupernetError, match="measured.json is damaged"):
        measured.read(copy, result.state)


def test_specialize_from_the_supernet_ships_the_inherited_weights_and_their_measured_accuracy(supernet, tmp_path):
    from edgetailor.specialize import Request, specialize
    from edgetailor.supernet import checkpoint
    from edgetailor.supernet.evaluate import evaluate
    from edgetailor.supernet.subnet import Subnet

    folder, result = supernet
    budget = budget_for(folder, PIXEL1)
    lines = []
    summary = specialize(Request(profile=PIXEL1, budget_ms=budget, out_dir=tmp_path / "bundle", supernet=folder,
                                 finetune=1), progress=lines.append, quiet=True)
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    chosen = Subnet(**summary["supernet"]["choices"])
    spec = result.net.elastic.spec(chosen)
    assert manifest["arch"]["spec"] == spec.encode()
    assert manifest["latency"]["predicted_ms"] == pytest.approx(PIXEL1.predict(spec, 3).total_ms, abs=0.01)
    assert manifest["latency"]["predicted_ms"] <= budget
    assert manifest["weights"].startswith(f"inherited from supernet {folder}")
    assert manifest["accuracy"]["kind"] == "measured" and "fine-tuned 1 epoch" in manifest["accuracy"]["source"]
    assert manifest["labels"] == list(result.source.classes)
    inherited = evaluate(checkpoint.load(folder)[0], chosen, result.source).top1
    assert f"inherited top-1 {inherited} %" in manifest["accuracy"]["source"]
    assert any("sub-networks in" in line for line in lines)


def test_specialize_targets_writes_a_bundle_per_phone_an_index_and_selectors(supernet, tmp_path):
    from edgetailor.bundle import targets
    from edgetailor.cli.main import main

    folder, _ = supernet
    iphone = profiles.load("iphone_x")
    spec = f"pixel1:{budget_for(folder, PIXEL1)},iphone_x:{budget_for(folder, iphone)}"
    out = tmp_path / "phones"
    result = CliRunner().invoke(main, ["specialize", "--supernet", str(folder), "--targets", spec,
                                       "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # a sub-network two phones chose is extracted and recalibrated once (both choose it here)
    chosen = [variant["supernet"]["subnet"] for variant in summary["variants"]]
    assert (chosen[0] == chosen[1]) == ("extracted for an earlier target" in result.stderr), result.stderr
    index = targets.read_index(out)
    folders = [v["folder"] for v in index["variants"]]
    assert folders == [f"{t.variant}" for t in targets.parse_targets(spec)]
    for variant, entry in zip(summary["variants"], index["variants"]):
        manifest = json.loads((out / entry["folder"] / "manifest.json").read_text())
        assert entry["predicted_ms"] == manifest["latency"]["predicted_ms"] <= entry["budget_ms"]
        assert entry["accuracy"] == manifest["accuracy"] and manifest["accuracy"]["kind"] == "measured"
        assert variant["out"] == str(out / entry["folder"])
    assert (out / index["platforms"]["android"]["selector"]).is_file()
    assert (out / index["platforms"]["ios"]["selector"]).is_file()
    assert targets.select_variant(index, "android", brand="google", device="sailfish") == folders[0]
    assert targets.select_variant(index, "ios", machine="iPhone10,3") == folders[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phones"]  # no temp folder left


@pytest.mark.parametrize("args, message", [
    (["--targets", "pixel1:40"], "--targets needs --supernet"),
    (["--supernet", "{ckpt}", "--targets", "pixel1"], "pixel1"),
    (["--supernet", "{ckpt}", "--targets", "nokia3310:40"], "nokia3310"),
    (["--supernet", "{ckpt}", "--targets", "pixel1:0.01,iphone_x:5"], "no sub-network of .* meets 0.01 ms on"),
    (["--supernet", "{ckpt}", "--targets", "pixel1:40", "--device", "pixel1"], "drop --device"),
    (["--supernet", "{ckpt}", "--targets", "pixel1:40", "--iou-threshold", "0.5"], "detection options do not apply"),
    (["--supernet", "{ckpt}", "--device", "pixel1", "--budget-ms", "0.01"], "the fastest, r32 d2,2"),
    (["--supernet", "{ckpt}", "--device", "pixel1", "--budget-ms", "40", "--task", "detection"],
     "specializes classifiers"),
    (["--device", "pixel1", "--budget-ms", "40", "--finetune", "2"], "--finetune applies to --supernet"),
    (["--supernet", "{ckpt}"], "needs --device and --budget-ms"),
])
def test_bad_supernet_requests_are_one_line_errors_that_write_nothing(supernet, tmp_path, args, message):
    import re

    from edgetailor.cli.main import main

    folder, _ = supernet
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["specialize", *[a.format(ckpt=folder) for a in args], "--out", str(out)])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error:") and re.search(message, last), result.output
    assert not out.exists()


def test_a_checkpoint_without_a_predictor_says_how_to_make_one(supernet, tmp_path):
    import shutil

    from edgetailor.cli.main import main
    from edgetailor.supernet import measured

    folder, _ = supernet
    copy = tmp_path / "ckpt"
    shutil.copytree(folder, copy)
    (copy / measured.PREDICTOR).unlink()
    result = CliRunner().invoke(main, ["specialize", "--supernet", str(copy), "--device", "pixel1",
                                       "--budget-ms", "40", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert f"run `edgetailor supernet predictor {copy}` first" in result.output
    rerun = CliRunner().invoke(main, ["supernet", "predictor", str(copy), "--subnets", "6", "--json"])
    assert rerun.exit_code == 0, rerun.output
    summary = json.loads(rerun.stdout)
    assert len(summary["measured"]) == 6 and (copy / measured.PREDICTOR).is_file()
