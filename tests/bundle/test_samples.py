"""The sample integration code beside the harnesses (Kotlin for MediaPipe Tasks, Swift for Vision)
cannot be compiled here (no kotlinc, no Swift toolchain for Core ML / Vision): check that it reads
the names bundles hold, so a renamed output or manifest key fails here, not in an app."""
import ast
import re
from pathlib import Path

import pytest

from edgetailor.bundle.manifest import FILES
from edgetailor.tasks.detection.postprocess import PostprocessConfig


@pytest.fixture
def kotlin(repo_root) -> str:
    return (repo_root / "android_harness" / "samples" / "EdgetailorBundle.kt").read_text()


@pytest.fixture
def swift(repo_root) -> str:
    return (repo_root / "ios_harness" / "Samples" / "EdgetailorBundle.swift").read_text()


def constant(path: Path, name: str):
    """A module-level literal of an exporter, read without importing it (they import TensorFlow)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} not found in {path}")


def test_kotlin_loads_the_bundle_files_and_manifest_keys(kotlin):
    assert {"model.tflite", "manifest.json"} <= set(FILES)
    assert '"$folder/model.tflite"' in kotlin and '"$folder/manifest.json"' in kotlin
    read = set(re.findall(r'get(?:String|JSONArray|Int|Double)\("(\w+)"\)|optJSONObject\("(\w+)"\)', kotlin))
    keys = {key for pair in read for key in pair if key}
    assert keys == {"task", "labels", "postprocess", "max_detections", "score_threshold"}
    assert {"max_detections", "score_threshold"} <= set(PostprocessConfig().to_dict())


def test_kotlin_uses_the_three_mediapipe_tasks_with_the_manifest_options(kotlin):
    for task in ("imageclassifier.ImageClassifier", "objectdetector.ObjectDetector",
                 "imagesegmenter.ImageSegmenter"):
        assert f"import com.google.mediapipe.tasks.vision.{task}\n" in kotlin
    assert ".setMaxResults(manifest.maxDetections)" in kotlin
    assert ".setScoreThreshold(manifest.scoreThreshold)" in kotlin
    assert ".setOutputCategoryMask(true)" in kotlin
    assert "NOT COMPILED HERE" in kotlin


def test_swift_reads_the_core_ml_names_bundles_hold(swift, repo_root):
    tasks = repo_root / "sdk" / "tasks"
    iou, confidence = constant(tasks / "detection" / "coreml_pipeline.py", "THRESHOLD_INPUTS")
    assert f'"{iou}": MLFeatureValue(double: iou)' in swift
    assert f'"{confidence}": MLFeatureValue(double: confidence)' in swift
    mask = next(iter(constant(tasks / "segmentation" / "export.py", "COREML_OUTPUTS")))
    assert f'$0.featureName == "{mask}"' in swift
    for source in (tasks / "detection" / "coreml_pipeline.py", tasks / "segmentation" / "export.py"):
        assert '"labels": json.dumps(' in source.read_text()  # the user-defined key the sample reads
    assert 'metadata?["labels"]' in swift
    for observation in ("VNClassificationObservation", "VNRecognizedObjectObservation",
                        "VNCoreMLFeatureValueObservation"):
        assert f"as? [{observation}]" in swift
    assert "NOT COMPILED HERE" in swift
