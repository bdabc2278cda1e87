"""Bundles: contents, manifest, hashes, inspection, and atomic writes (nothing half written)."""
import hashlib
import json
import shutil

import pytest
import tensorflow as tf

import edgetailor.converters as converters
from edgetailor.builder import network as builder
from edgetailor.bundle import writer as bundle
from edgetailor.bundle.inspect import inspect_bundle
from edgetailor.latency import profiles
from edgetailor.arch import zoo
from edgetailor.choose.candidate import Accuracy
from edgetailor.errors import BundleError, OutputError, SpecError
from edgetailor.converters import Artifact, ConversionError
from edgetailor.converters.metadata import read_metadata

pytestmark = pytest.mark.slow  # trains or converts models

TINY = "res32 | conv_k3_s2_c8_hs | ir_k3_e3_c8_hse0.25_hs,ir_k3_s2_e3_c16_re | head:conv_k1_c64_hs,pool"
LABELS = ["cat", "dog", "bird"]


@pytest.fixture(scope="module")
def resolved():
    return zoo.resolve(TINY)


@pytest.fixture(scope="module")
def model(resolved):
    tf.keras.utils.set_random_seed(0)
    return builder.build(resolved.spec, num_classes=len(LABELS), name="tiny")


@pytest.fixture(scope="module")
def made(model, resolved, tmp_path_factory):
    """One real bundle, and the artifacts its conversions returned (reused by the failure tests)."""
    folder = tmp_path_factory.mktemp("bundles")
    artifacts = {}
    real = converters.convert

    def recording(model, target, options=None, calibration=None):
        artifacts[target] = real(model, target, options, calibration)
        return artifacts[target]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(converters, "convert", recording)
        manifest = bundle.package(model, folder / "app", labels=LABELS, profile=profiles.load("pixel1"),
                                  arch=resolved, budget_ms=1.0)
    return folder / "app", manifest, artifacts


def test_bundle_holds_the_four_files(made):
    out, _, _ = made
    assert sorted(p.name for p in out.iterdir()) == sorted(bundle.FILES)
    assert (out / "labels.txt").read_text() == "cat\ndog\nbird\n"
    assert read_metadata((out / "model.tflite").read_bytes())["labels"] == LABELS
    assert (out / "model.mlpackage" / "Manifest.json").is_file()
    assert [p.name for p in out.parent.iterdir()] == ["app"]  # no temp folder left


def test_manifest_records_what_the_issue_asks(made, resolved):
    out, manifest, _ = made
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["schema"] == "edgetailor.bundle/1" and manifest["task"] == "classification"
    assert manifest["arch"] == {"name": "custom", "spec": resolved.spec.encode(), "resolution": 32, "width": 1.0}
    profile = profiles.load("pixel1")
    assert manifest["device"]["profile"] == profile.name and manifest["device"]["version"] == profile.version
    assert manifest["device"]["setting"] == profile.setting
    latency = manifest["latency"]
    assert latency["predicted_ms"] == pytest.approx(profile.predict(resolved.spec, 3).total_ms, abs=1e-3)
    assert latency["expected_error_pct"] == profile.expected_error_pct
    assert latency["budget_ms"] == 1.0 and latency["within_budget"] is False
    assert any("exceeds the 1 ms budget" in w for w in manifest["warnings"])
    assert manifest["weights"] == "random" and any("random weights" in w for w in manifest["warnings"])
    assert manifest["accuracy"]["value"] is None and "no published figure" in manifest["accuracy"]["note"]
    assert manifest["input"]["shape"] == [1, 32, 32, 3]
    assert manifest["input"]["normalization"]["mean"] == [127.5] * 3
    assert manifest["input"]["normalization"]["std"] == [127.5] * 3
    assert manifest["labels"] == LABELS
    assert manifest["tflite"]["parity"]["passed"] and manifest["tflite"]["quantize"] == "none"
    assert "class_labels" in manifest["coreml"]["verified"]
    assert {"edgetailor", "tensorflow-cpu", "tflite-support", "coremltools", "numpy"} <= set(manifest["tools"])


def test_manifest_hashes_match_the_files(made):
    out, manifest, _ = made
    files = manifest["files"]
    assert set(files) == {"model.tflite", "model.mlpackage", "labels.txt"}
    assert files["model.tflite"]["sha256"] == hashlib.sha256((out / "model.tflite").read_bytes()).hexdigest()
    package = out / "model.mlpackage"
    listed = files["model.mlpackage"]["files"]
    assert list(listed) == sorted(p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file())
    lines = "".join(f"{name}\0{sha}\n" for name, sha in listed.items())
    assert files["model.mlpackage"]["sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    assert all(hashlib.sha256((package / n).read_bytes()).hexdigest() == sha for n, sha in listed.items())


def test_inspect_rechecks_hashes_and_names_the_changed_file(made, tmp_path):
    out, _, _ = made
    report = inspect_bundle(out)
    assert report["ok"] and report["unlisted"] == []
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    weights = copy / "model.mlpackage" / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x01")
    (copy / "extra.txt").write_text("?")
    report = inspect_bundle(copy)
    assert not report["ok"] and report["unlisted"] == ["extra.txt"]
    assert report["files"]["model.mlpackage"]["changed"] == ["Data/com.apple.CoreML/weights/weight.bin"]
    assert report["files"]["model.tflite"]["sha256_ok"]
    with pytest.raises(BundleError, match="not a bundle"):
        inspect_bundle(tmp_path)


@pytest.fixture
def reuse(made, monkeypatch):
    """Skip the conversions: package() gets the artifacts the real bundle was made from."""
    artifacts = made[2]
    monkeypatch.setattr(converters, "convert", lambda model, target, *a, **k: artifacts[target])
    return artifacts


def _package(model, resolved, out):
    return bundle.package(model, out, labels=LABELS, profile=profiles.load("pixel1"), arch=resolved)


def test_ctrl_c_while_writing_leaves_nothing(model, resolved, reuse, tmp_path, monkeypatch):
    original = Artifact.save

    def save_then_interrupt(self, path):
        original(self, path)
        if self.target == "coreml":
            raise KeyboardInterrupt

    monkeypatch.setattr(Artifact, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _package(model, resolved, tmp_path / "app")
    assert list(tmp_path.iterdir()) == []


def test_failed_static_check_leaves_nothing(model, resolved, reuse, tmp_path, monkeypatch):
    def failing(path):
        raise ConversionError("model.mlpackage failed static checks: class_labels")

    monkeypatch.setattr(reuse["coreml"], "verify", failing)
    with pytest.raises(BundleError, match="failed static checks"):
        _package(model, resolved, tmp_path / "app")
    assert list(tmp_path.iterdir()) == []


def test_failed_conversion_leaves_nothing(model, resolved, tmp_path, monkeypatch):
    def failing(model, target, *args, **kwargs):
        raise ConversionError(f"{target} conversion failed: boom")

    monkeypatch.setattr(converters, "convert", failing)
    with pytest.raises(BundleError, match="tflite conversion failed: boom"):
        _package(model, resolved, tmp_path / "app")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_existing_folder_is_used_and_a_full_one_refused(model, resolved, reuse, tmp_path):
    (tmp_path / "empty").mkdir()
    _package(model, resolved, tmp_path / "empty")
    assert (tmp_path / "empty" / "manifest.json").is_file()
    with pytest.raises(OutputError, match="already exists and is not empty"):
        _package(model, resolved, tmp_path / "empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_label_count_must_match_the_classes(model, resolved, tmp_path):
    with pytest.raises(BundleError, match="2 labels for a model with 3 classes"):
        bundle.package(model, tmp_path / "app", labels=["a", "b"], profile=profiles.load("pixel1"), arch=resolved)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text, message", [
    ("", "one non-empty label per line"),
    ("a\n\nb\n", "one non-empty label per line"),
    ("a\nb\na\n", "repeats a label"),
])
def test_label_files_are_checked(tmp_path, text, message):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(BundleError, match=message):
        bundle.read_labels(path)
    with pytest.raises(BundleError, match="labels file not found"):
        bundle.read_labels(tmp_path / "missing.txt")


def test_published_accuracy_only_for_the_published_model():
    entry = zoo.resolve("mobilenet_v2_100")
    accuracy = bundle.published_accuracy(entry, random_weights=True)
    assert (accuracy.value, accuracy.kind) == (71.8, "published") and "slim" in accuracy.source
    assert "random" in accuracy.note
    assert bundle.published_accuracy(zoo.resolve("mobilenet_v2_100", resolution=160), False).value is None
    with pytest.raises(SpecError, match="accuracy kind"):
        Accuracy(70.0, "guessed", "me")


def test_saved_models_are_matched_to_their_architecture(model, resolved):
    assert bundle.identify_arch(model, TINY).spec == resolved.spec
    assert bundle.identify_arch(model, None) is None  # named "tiny": not a zoo name
    with pytest.raises(BundleError, match="does not match mobilenet_v2_035 at 32 px"):
        bundle.identify_arch(model, "mobilenet_v2_035")
    with pytest.raises(BundleError, match="--arch: unknown architecture"):
        bundle.identify_arch(model, "nosuchnet")


def test_bundle_module_imports_without_tensorflow():
    import subprocess
    import sys

    code = "import sys, edgetailor.bundle.writer; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
