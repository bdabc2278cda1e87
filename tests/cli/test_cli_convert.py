"""``convert``, ``package`` and ``inspect`` on the command line: outputs, JSON, one-line errors."""
import json

import click
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from edgetailor.builder import network as builder
from edgetailor.arch import zoo
from edgetailor.cli.convert import convert, inspect, package

pytestmark = pytest.mark.slow  # trains or converts models

TINY = "res32 | conv_k3_s2_c8_hs | ir_k3_e3_c8_hse0.25_hs,ir_k3_s2_e3_c16_re | head:conv_k1_c64_hs,pool"
cli = click.Group("edgetailor", commands={"convert": convert, "package": package, "inspect": inspect})


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A saved 3-class model, its labels, and a folder of calibration images."""
    folder = tmp_path_factory.mktemp("inputs")
    tf.keras.utils.set_random_seed(0)
    builder.build(zoo.resolve(TINY).spec, num_classes=3, name="tiny").save(folder / "tiny.keras")
    (folder / "labels.txt").write_text("cat\ndog\nbird\n")
    (folder / "two_labels.txt").write_text("cat\ndog\n")
    images = folder / "calibration"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        pixels = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
        (images / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    (folder / "empty").mkdir()
    (folder / "corrupt.keras").write_bytes(b"PK\x03\x04 not really a zip")
    return folder


@pytest.fixture(scope="module")
def bundle_dir(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "app"
    result = run("package", files / "tiny.keras", "--arch", TINY, "--device", "pixel1",
                 "--labels", files / "labels.txt", "--out", out, "--quantize", "int8",
                 "--calibration", files / "calibration", "--budget-ms", 50, "--json")
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_package_from_a_saved_model(bundle_dir, files):
    out, manifest = bundle_dir
    assert manifest["weights"] == "saved model" and manifest["source_model"]["name"] == "tiny.keras"
    assert manifest["arch"]["spec"] == zoo.resolve(TINY).spec.encode()
    assert manifest["latency"]["within_budget"] is True and manifest["latency"]["budget_ms"] == 50
    assert manifest["tflite"]["quantize"] == "int8" and manifest["tflite"]["calibration_images"] == 4
    assert manifest["input"]["tflite"]["dtype"] == "uint8"
    assert manifest["labels"] == ["cat", "dog", "bird"] and manifest["warnings"] == []
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_inspect_bundle(bundle_dir):
    out, _ = bundle_dir
    result = run("inspect", out)
    assert result.exit_code == 0, result.output
    assert "model.mlpackage    ok" in result.stdout and "pixel1" in result.stdout
    assert "budget 50 ms (within)" in result.stdout and "None" not in result.stdout
    assert "accuracy unknown (no published figure" in result.stdout  # an inline spec's bundle
    report = json.loads(run("inspect", out, "--json").stdout)
    assert report["format"] == "bundle" and report["ok"]


def test_inspect_tflite_and_mlpackage(bundle_dir):
    out, _ = bundle_dir
    result = run("inspect", out / "model.tflite")
    assert result.exit_code == 0, result.output
    assert "input   image uint8[1, 32, 32, 3] q(scale 0.00784314" in result.stdout
    assert "3 labels (cat, dog, bird)" in result.stdout and "CONV_2D" in result.stdout
    data = json.loads(run("inspect", out / "model.tflite", "--json").stdout)
    assert data["metadata"]["normalization"] == {"mean": [127.5], "std": [127.5]}
    result = run("inspect", out / "model.mlpackage")
    assert result.exit_code == 0, result.output
    assert "input   image image 32x32 RGB" in result.stdout and "classes 3 (cat, dog, bird)" in result.stdout
    assert "cannot predict on Linux" in result.stdout
    data = json.loads(run("inspect", out / "model.mlpackage", "--json").stdout)
    assert data["metadata"]["user_defined"]["edgetailor.device"] == "pixel1-tflite-fp32-1big"


def test_convert_a_spec_to_tflite_and_core_ml(files, tmp_path):
    result = run("convert", TINY, "--labels", files / "labels.txt", "--quantize", "fp16",
                 "--out", tmp_path / "m.tflite", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["weights"] == "random" and data["details"]["quantize"] == "fp16"
    assert data["details"]["parity"]["kind"] == "max_abs_error"
    assert "converting to tflite (fp16)" in result.stderr
    result = run("convert", TINY, "--num-classes", "5", "--out", tmp_path / "m.mlpackage",
                 "--precision", "float32")
    assert result.exit_code == 0, result.output
    assert "float32" in result.stdout and "static checks passed" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mlpackage", "m.tflite"]


@pytest.mark.parametrize("args, message", [
    (["convert", "{dir}/missing.keras", "--out", "{out}/m.tflite"], "model file not found"),
    (["convert", "{dir}/corrupt.keras", "--out", "{out}/m.tflite"], "cannot load Keras model"),
    (["convert", "{dir}/tiny.keras", "--labels", "{dir}/two_labels.txt", "--out", "{out}/m.tflite"],
     "2 labels for a model with 3 classes"),
    (["convert", "{dir}/tiny.keras", "--quantize", "int8", "--out", "{out}/m.tflite"],
     "--quantize int8 needs --calibration DIR"),
    (["convert", "{dir}/tiny.keras", "--quantize", "int8", "--calibration", "{dir}/empty", "--out",
      "{out}/m.tflite"], "no .jpg or .png images"),
    (["convert", "{dir}/tiny.keras", "--format", "onnx", "--out", "{out}/m.onnx"], "'onnx' is not one of"),
    (["convert", "{dir}/tiny.keras", "--out", "{out}/m.onnx"], "cannot tell the format from m.onnx"),
    (["convert", "{dir}/tiny.keras", "--format", "coreml", "--out", "{out}/m.tflite"], "must end in .mlpackage"),
    (["convert", "{dir}/tiny.keras", "--format", "coreml", "--quantize", "int8", "--out",
      "{out}/m.mlpackage"], "--quantize applies to TFLite"),
    (["convert", "mobilenet_v9", "--out", "{out}/m.tflite"], "unknown architecture 'mobilenet_v9'"),
    (["convert", "{dir}/tiny.keras", "--resolution", "64", "--out", "{out}/m.tflite"],
     "a saved model is fixed"),
    (["package", "{dir}/tiny.keras", "--device", "pixel1", "--labels", "{dir}/two_labels.txt", "--out",
      "{out}/app"], "2 labels for a model with 3 classes"),
    (["package", "{dir}/tiny.keras", "--device", "pixel9", "--labels", "{dir}/labels.txt", "--out",
      "{out}/app"], "unknown device 'pixel9'"),
    (["package", "{dir}/tiny.keras", "--device", "pixel1", "--labels", "{dir}/labels.txt",
      "--arch", "mobilenet_v2_035", "--out", "{out}/app"], "does not match mobilenet_v2_035"),
    (["package", "{dir}/tiny.keras", "--device", "pixel1", "--labels", "{dir}/nolabels.txt", "--out",
      "{out}/app"], "labels file not found"),
    (["package", "{dir}/tiny.keras", "--device", "pixel1", "--labels", "{dir}/labels.txt",
      "--quantize", "int16x8", "--out", "{out}/app"], "--quantize int16x8 needs --calibration"),
    (["inspect", "{dir}/nothing.tflite"], "not found"),
    (["inspect", "{dir}/labels.txt"], "not a TFLite flatbuffer"),
])
def test_user_mistakes_are_one_line_errors_and_leave_nothing(files, tmp_path, args, message):
    out = tmp_path / "out"
    out.mkdir()
    result = run(*[a.format(dir=files, out=out) for a in args])
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.stderr.splitlines() if line.startswith("Error")]) == 1
    assert list(out.iterdir()) == []


def test_existing_outputs_are_refused_untouched(files, tmp_path):
    existing = tmp_path / "m.tflite"
    existing.write_bytes(b"keep me")
    result = run("convert", files / "tiny.keras", "--out", existing)
    assert result.exit_code != 0 and "already exists and is not empty" in result.output
    assert existing.read_bytes() == b"keep me"
    full = tmp_path / "app"
    full.mkdir()
    (full / "note.txt").write_text("mine")
    result = run("package", files / "tiny.keras", "--device", "pixel1", "--labels", files / "labels.txt",
                 "--out", full)
    assert result.exit_code != 0 and "already exists and is not empty" in result.output
    assert [p.name for p in full.iterdir()] == ["note.txt"]


def test_inspect_reports_a_tampered_bundle(bundle_dir, tmp_path):
    import shutil

    out, _ = bundle_dir
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "labels.txt").write_text("cat\ndog\nfish\n")
    result = run("inspect", copy)
    assert result.exit_code != 0
    assert "labels.txt         HASH MISMATCH" in result.stdout
    assert "does not match its manifest: labels.txt" in result.stderr
