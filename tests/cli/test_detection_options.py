"""specialize --task detection's post-processing options: a bad value is one line (exit 1,
nothing written); good values reach both models of the bundle, and the manifest lists every
output with its real shape, dtype and meaning."""
import json

import pytest

from edgetailor.tasks.detection.export import OUTPUT_NAMES

from cli_checks import assert_one_line_error, invoke

LABELS = ["cat, small", "dog", "bird"]  # a comma inside a label survives every format
MAX_DETECTIONS, SCORE, IOU = 7, 0.3, 0.5


@pytest.mark.parametrize("args, needle", [
    (["--max-detections", "0"], "--max-detections must be a whole number from 1 to 1000 (got 0)"),
    (["--max-detections", "1001"], "--max-detections must be a whole number from 1 to 1000 (got 1001)"),
    (["--score-threshold", "1"], "--score-threshold must be a number with 0 <= score < 1 (got 1.0)"),
    (["--score-threshold", "-0.1"], "--score-threshold must be a number with 0 <= score < 1 (got -0.1)"),
    (["--score-threshold", "nan"], "--score-threshold must be a number with 0 <= score < 1 (got nan)"),
    (["--iou-threshold", "0"], "--iou-threshold must be a number with 0 < IoU <= 1 (got 0.0)"),
    (["--iou-threshold", "1.5"], "--iou-threshold must be a number with 0 < IoU <= 1 (got 1.5)"),
    (["--iou-threshold", "inf"], "--iou-threshold must be a number with 0 < IoU <= 1 (got inf)"),
], ids=["max-0", "max-1001", "score-1", "score-negative", "score-nan", "iou-0", "iou-1.5", "iou-inf"])
def test_bad_values_are_one_line_and_write_nothing(tmp_path, args, needle):
    out = tmp_path / "new" / "det"
    result = invoke("specialize", "--task", "detection", "--device", "pixel1", "--budget-ms", "20",
                    "--out", out, *args)
    assert_one_line_error(result, needle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_the_options_are_for_detection_only(tmp_path, task):
    result = invoke("specialize", "--task", task, "--device", "pixel1", "--budget-ms", "20",
                    "--class-aware-nms", "--out", tmp_path / "b")
    assert_one_line_error(result, f"apply to --task detection (this is {task})")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A detection bundle trained one epoch on a COCO folder (the fastest candidates at 64 px)
    with every option set; the folder's category names are LABELS."""
    from edgetailor.data import folders, shapes

    folder = tmp_path_factory.mktemp("cli_det")
    data = shapes.detection(12, 64, seed=1, max_objects=2, classes=("circle", "square", "triangle"))
    dataset = folders.write_coco_folder(folder / "coco", data)
    annotations = dataset / "labels.json"
    doc = json.loads(annotations.read_text())
    for category, label in zip(doc["categories"][1:], LABELS):  # [0] is the background
        category["name"] = label
    annotations.write_text(json.dumps(doc))
    out = folder / "det"
    result = invoke("specialize", "--task", "detection", "--device", "pixel1", "--budget-ms", "2.7",
                    "--resolution", "64", "--dataset", dataset, "--epochs", "1",
                    "--max-detections", MAX_DETECTIONS, "--score-threshold", SCORE, "--iou-threshold", IOU,
                    "--class-aware-nms", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout), data


@pytest.fixture(scope="module")
def manifest(bundle):
    return json.loads((bundle[0] / "manifest.json").read_text())


@pytest.mark.slow
def test_specialize_trains_on_a_coco_folder_and_bundles(bundle, manifest):
    from edgetailor.bundle.inspect import inspect_bundle
    from edgetailor.tasks.detection import export as detection_export

    out, summary, data = bundle
    assert summary["task"] == "detection" and summary["chosen"]["latency_ms"] <= 2.7
    assert manifest["task"] == "detection" and manifest["arch"]["head"] == "ssdlite"
    assert manifest["accuracy"]["kind"] == "measured" and "mAP" in manifest["accuracy"]["metric"]
    assert manifest["tflite"]["ops"].get("CUSTOM:TFLite_Detection_PostProcess") == 1
    assert manifest["coreml"]["type"] == "pipeline"
    assert inspect_bundle(out)["ok"]
    boxes, classes, scores = detection_export.run_tflite(out / "model.tflite", data.images[:1])[0]
    assert boxes.shape[1] == 4 and len(classes) == len(scores) <= MAX_DETECTIONS


@pytest.mark.slow
def test_the_options_reach_both_models_and_the_manifest(manifest):
    wanted = {"max_detections": MAX_DETECTIONS, "score_threshold": SCORE, "iou_threshold": IOU, "class_aware": True}
    assert manifest["postprocess"] == wanted
    assert manifest["tflite"]["postprocess"] == wanted    # read back from the op's options
    assert manifest["coreml"]["postprocess"] == wanted    # read back from the NMS model


@pytest.mark.slow
def test_manifest_lists_every_output_with_shape_dtype_and_meaning(manifest):
    tflite, coreml = manifest["tflite"], manifest["coreml"]
    assert [i["name"] for i in tflite["inputs"]] == ["image"]
    assert [(o["name"], o["shape"], o["dtype"]) for o in tflite["outputs"]] == [
        ("location", [1, MAX_DETECTIONS, 4], "float32"), ("category", [1, MAX_DETECTIONS], "float32"),
        ("score", [1, MAX_DETECTIONS], "float32"), ("number of detections", [1], "float32")]
    assert [o["name"] for o in tflite["outputs"]] == list(OUTPUT_NAMES)
    assert [(o["name"], o["shape"], o["shape_range"], o["dtype"]) for o in coreml["outputs"]] == [
        ("confidence", [-1, len(LABELS)], [[0, MAX_DETECTIONS], [len(LABELS)] * 2], "float32"),
        ("coordinates", [-1, 4], [[0, MAX_DETECTIONS], [4, 4]], "float32")]
    assert all(o["description"] for o in tflite["outputs"] + coreml["outputs"])
    assert "ymin, xmin, ymax, xmax" in tflite["outputs"][0]["description"]
    assert "x_center, y_center, width, height" in coreml["outputs"][1]["description"]


@pytest.mark.slow
def test_bundle_carries_the_real_labels_and_optional_thresholds(manifest):
    assert manifest["labels"] == manifest["coreml"]["labels"] == manifest["tflite"]["metadata_labels"] == LABELS
    inputs = {i["name"]: i for i in manifest["coreml"]["inputs"]}
    assert inputs["iouThreshold"]["optional"] and inputs["confidenceThreshold"]["optional"]
    assert "optional" not in inputs["image"]
