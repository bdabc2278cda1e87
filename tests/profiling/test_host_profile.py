"""Measuring this machine: one-op TFLite models run for real; the profile is resumable."""
import json

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from edgetailor.latency import profiles
from edgetailor.cli.main import main
from edgetailor.profiling.tflite_ops import op_model
from edgetailor.arch.layers import walk
from edgetailor.arch.spec import decode

pytestmark = pytest.mark.slow  # trains or converts models

EVERY_OP = decode(
    "res32 | conv_k3_s2_c16_hs,maxpool_k3_s2 | ir_k3_e1_c16_g2_xe_re,ir_k5_s2_e3_c24_hse0.25_hs"
    " | ir_k3_e6_c24_se0.25_sw,fused_k3_e4_c24_re | ghost_k3_e2.3_c24,shuffle_s2_c48_re,shuffle_c48_re"
    " | head:conv_k1_c96_hs,pool,fc_c128_hs")


def test_every_op_kind_builds_a_runnable_tflite_model():
    ops = {(op.kind, op.groups > 1, op.act): op for layer in walk(EVERY_OP) for op in layer.ops}
    assert {"conv", "dwconv", "add", "mul", "pool", "maxpool", "concat", "split", "shuffle"} <= {k[0] for k in ops}
    for op in ops.values():
        interpreter = tf.lite.Interpreter(model_content=op_model(op))
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                               np.ones((1, *op.in_shape), np.float32))
        interpreter.invoke()
        assert tuple(interpreter.get_output_details()[0]["shape"]) == (1, *op.out_shape), op


def test_profile_measure_writes_a_usable_profile_and_resumes(tmp_path):
    out = tmp_path / "host.json"
    args = ["profile", "measure", "--space", "proxyless", "--archs", "1", "--end-to-end", "1",
            "--out", str(out), "--json"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    journal = tmp_path / "host.json.measurements.jsonl"
    lines = journal.read_text().splitlines()
    assert len(lines) == json.loads(first.output[first.output.index("{"):])["ops"]
    host = profiles.load(str(out))
    assert host.aliases == ("host",) and len(host.table) == len(lines)
    spec = decode("res224 | conv_k3_s2_c32_re6,ir_k3_e1_c16_re6 | ir_k5_s2_e3_c24_re6 | head:conv_k1_c1280_re6,pool")
    assert host.predict(spec).total_ms > 0
    scale = host.provenance[-1]["end_to_end_scale"]  # one converted model timed whole
    assert scale > 0 and len(host.calibration) == 1
    assert host.expected_error_pct is None and "end_to_end_note" in host.error  # one model: no LOO
    json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the profile"))
    second = CliRunner().invoke(main, args)  # everything is in the journal: nothing re-measured
    assert second.exit_code == 0 and journal.read_text().splitlines() == lines


def _measurements(rows, runtime=None):
    return {"schema": "edgetailor.measurements/1", "source": "android-bench",
            "device": {"name": "Pixel 4"}, "runtime": runtime or {"name": "tflite", "threads": 1},
            "measurements": rows}


def test_profile_import_transfers_the_base_with_few_rows(tmp_path):
    # Illustrative numbers for the import machinery, not phone measurements.
    path = tmp_path / "m.json"
    path.write_text(json.dumps(_measurements([
        {"model": "a.tflite", "arch": "mobilenet_v2_100", "latency_ms": 30.0},
        {"model": "b.tflite", "arch": "mnasnet_a1_100", "latency_ms": 31.0},
        {"model": "c.tflite", "arch": None, "latency_ms": 5.0}])))
    out = tmp_path / "pixel4.json"
    result = CliRunner().invoke(main, ["profile", "import", str(path), "--name", "pixel4",
                                       "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    imported = profiles.load(str(out))
    assert imported.aliases == ("pixel4",) and len(imported.calibration) == 2
    assert "models_leave_one_out" in imported.error


@pytest.mark.parametrize("document, message", [
    ({"schema": "nope"}, "not an edgetailor measurements file"),
    (_measurements([{"model": "a", "arch": None, "latency_ms": 3.0}]), "no measurement names its architecture"),
    (_measurements([{"model": "a", "arch": "mobilenet_v2_100", "latency_ms": -3}]), "latency_ms must be a positive"),
])
def test_profile_import_errors(tmp_path, document, message):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(document))
    result = CliRunner().invoke(main, ["profile", "import", str(path), "--name", "x", "--out",
                                       str(tmp_path / "x.json")])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.json").exists()
