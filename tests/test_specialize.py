"""specialize: pick under the budget, train on a dataset, and write an app bundle."""
import json

from click.testing import CliRunner

from edgetailor import shapes
from edgetailor.cli import main
from edgetailor.specialize import specialize


def test_specialize_trains_on_a_dataset_and_bundles(tmp_path):
    dataset = shapes.write_folder(tmp_path / "data", 24, size=64, classes=("circle", "square"))
    out = tmp_path / "bundle"
    summary = specialize("pixel1", 6.0, out, dataset=dataset, epochs=1,
                         families=("mobilenet_v3_small",))
    chosen = summary["chosen"]
    assert chosen["family"] == "mobilenet_v3_small" and chosen["latency_ms"] <= 6.0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accuracy"]["kind"] == "measured"
    assert manifest["labels"] == ["circle", "square"]
    assert manifest["latency"]["within_budget"] and manifest["weights"].startswith("trained on")
    assert {p.name for p in out.iterdir()} >= {"model.tflite", "model.mlpackage", "labels.txt"}


def test_impossible_budget_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "bundle"
    result = CliRunner().invoke(main, ["specialize", "--device", "pixel1", "--budget-ms", "0.2",
                                       "--out", str(out)])
    assert result.exit_code != 0 and "no candidate meets 0.2 ms" in result.output
    assert "the fastest is" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_single_class_dataset_is_refused(tmp_path):
    dataset = shapes.write_folder(tmp_path / "data", 6, size=32, classes=("circle", "square"))
    for image in (dataset / "square").iterdir():
        image.unlink()
    (dataset / "square").rmdir()
    result = CliRunner().invoke(main, ["specialize", "--device", "pixel1", "--budget-ms", "20",
                                       "--dataset", str(dataset), "--out", str(tmp_path / "b")])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "class" in result.output
    assert not (tmp_path / "b").exists()


def test_specialize_search_mode_bundles_the_searched_spec(tmp_path):
    out = tmp_path / "searched"
    result = CliRunner().invoke(main, ["specialize", "--device", "pixel1", "--budget-ms", "120",
                                       "--search", "proxyless", "--trials", "4", "--strategy",
                                       "random", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["mode"] == "search" and summary["chosen"]["latency_ms"] <= 120
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["arch"]["spec"] == summary["chosen"]["spec"]
    assert manifest["accuracy"]["kind"] == "estimated"
    assert (tmp_path / "searched.study.db").exists()  # the study, for resuming
