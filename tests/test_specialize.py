"""specialize: pick under the budget, train on a dataset, and write an app bundle."""
import json

import pytest

from click.testing import CliRunner

from edgetailor.data import shapes
from edgetailor.cli.main import main
from edgetailor.latency import profiles
from edgetailor.specialize import Request, SearchRequest, specialize

pytestmark = pytest.mark.slow  # trains or converts models


def test_specialize_trains_on_a_dataset_and_bundles(tmp_path):
    dataset = shapes.write_folder(tmp_path / "data", 24, size=64, classes=("circle", "square"))
    out = tmp_path / "bundle"
    summary = specialize(Request(profiles.load("pixel1"), 4.0, out, dataset=dataset, epochs=1,
                                 families=("mobilenet_v3_small",)))
    chosen = summary["chosen"]
    assert chosen["family"] == "mobilenet_v3_small" and chosen["latency_ms"] <= 4.0
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
    result = CliRunner().invoke(main, ["specialize", "--device", "pixel1", "--budget-ms", "2.9",
                                       "--search", "ofa_proxy", "--trials", "4", "--strategy",
                                       "random", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["mode"] == "search" and summary["chosen"]["latency_ms"] <= 2.9
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["arch"]["spec"] == summary["chosen"]["spec"]
    assert manifest["accuracy"]["kind"] == "estimated"
    assert (tmp_path / "searched.study.db").exists()  # the study, for resuming


def test_specialize_search_with_a_dataset_proxy_trains_then_trains_the_winner(tmp_path):
    dataset = shapes.write_folder(tmp_path / "data", 16, size=32, classes=("circle", "square"))
    out = tmp_path / "searched"
    summary = specialize(Request(profiles.load("pixel1"), 2.9, out, dataset=dataset, epochs=1,
                                 search=SearchRequest("ofa_proxy", trials=2, strategy="random")))
    best = summary["search"]["best"]
    assert best["accuracy_kind"] == "measured"  # proxy-trained on the dataset
    assert "proxy training on" in best["accuracy_source"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accuracy"]["kind"] == "measured" and manifest["labels"] == ["circle", "square"]
    assert manifest["arch"]["spec"] == summary["chosen"]["spec"]


def test_specialize_segmentation_without_a_dataset_from_the_cli(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("background\nperson\npet\n")
    out = tmp_path / "segmenter"
    result = CliRunner().invoke(main, ["specialize", "--task", "segmentation", "--device", "galaxy_s8",
                                       "--budget-ms", "8", "--resolution", "64", "--labels",
                                       str(labels), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["task"] == "segmentation" and summary["chosen"]["resolution"] == 64
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["weights"] == "random" and manifest["warnings"]
    assert manifest["accuracy"]["metric"] == "backbone ImageNet top-1 (%)"
    assert manifest["accuracy"]["kind"] in ("published", "estimated")
    assert manifest["labels"] == ["background", "person", "pet"]
    assert manifest["tflite"]["outputs"][0]["shape"] == [1, 64, 64, 3]
    assert [o["name"] for o in manifest["coreml"]["outputs"]] == ["mask", "probabilities"]
    assert abs(manifest["latency"]["predicted_ms"] - summary["chosen"]["latency_ms"]) < 0.01
    assert_segmentation_ml_program(out / "model.mlpackage", 64, ["background", "person", "pet"])


def assert_segmentation_ml_program(path, resolution: int, labels: list[str]) -> None:
    """The segmenter's Core ML package (the one conversion of an LR-ASPP in the suite): an ML
    Program from an ``image`` input to ``mask`` and ``probabilities``, labels as a JSON list,
    weights beside it and nothing half written left next to it."""
    import coremltools as ct

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    (image,) = spec.description.input
    assert image.name == "image" and image.type.imageType.width == resolution
    mask, probabilities = spec.description.output
    assert mask.name == "mask" and list(mask.type.multiArrayType.shape) == [1, resolution, resolution]
    assert probabilities.name == "probabilities"
    assert list(probabilities.type.multiArrayType.shape) == [1, resolution, resolution, len(labels)]
    assert json.loads(spec.description.metadata.userDefined["labels"]) == labels  # a list, not a joined string
    assert mask.shortDescription and probabilities.shortDescription
    assert (path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").is_file()
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]  # no staged leftovers


@pytest.mark.parametrize("args, message", [
    (["--task", "detection", "--search", "mnasnet"], "--search re-searches classification"),
    (["--resolution", "128"], "--resolution applies to detection and segmentation"),
    (["--task", "detection", "--budget-ms", "1"], "no detection candidate meets 1 ms"),
])
def test_task_option_errors_are_one_line(tmp_path, args, message):
    out = tmp_path / "b"
    base = ["specialize", "--device", "pixel1", "--out", str(out)]
    if "--budget-ms" not in args:
        base += ["--budget-ms", "50"]
    result = CliRunner().invoke(main, base + args)
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_detection_dataset_that_is_not_a_detection_folder(tmp_path):
    folder = shapes.write_folder(tmp_path / "data", 4, size=32, classes=("circle", "square"))
    result = CliRunner().invoke(main, ["specialize", "--task", "detection", "--device", "pixel1",
                                       "--budget-ms", "50", "--dataset", str(folder), "--out",
                                       str(tmp_path / "b")])
    assert result.exit_code != 0 and "not a detection folder" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "b").exists()


@pytest.mark.parametrize("layout", ["classes", "coco", "voc", "masks"])
def test_shapes_command_writes_folders_the_loaders_read(tmp_path, layout):
    from edgetailor.data import folders as datasets_det
    from edgetailor.tasks.classification.train import folder_classes

    out = tmp_path / layout
    result = CliRunner().invoke(main, ["shapes", "--format", layout, "--images", "4", "--size", "32",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    if layout == "classes":
        assert len(folder_classes(out)) >= 2
    elif layout == "masks":
        assert len(datasets_det.load_mask_folder(out, size=32).images) == 4
    else:
        assert len(datasets_det.load_detection_folder(out, size=32).images) == 4
    again = CliRunner().invoke(main, ["shapes", "--format", layout, "--out", str(out)])
    assert again.exit_code != 0 and "already exists" in again.output
