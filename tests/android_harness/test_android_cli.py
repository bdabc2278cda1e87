"""`android-bench --parse`, the measurement JSON, atomic writes and option errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgetailor.cli.android import android_bench
from edgetailor._io import write_json
from edgetailor.android_harness.measurements import SCHEMA, Device, to_measurements
from edgetailor.android_harness.parser import parse_file

FIXTURES = Path(__file__).parents[1] / "fixtures" / "android"
CAPTURES = ["tf215_cpu_op_profiling.txt", "tf23_unprefixed_2020.txt", "contrib_2018_stderr.txt",
            "logcat_apk.txt", "multi_subgraph_xnnpack.txt"]


def invoke(*args):
    return CliRunner().invoke(android_bench, [str(a) for a in args])


def one_line_error(result, needle):
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and needle in result.output, result.output


def test_measurement_document_for_tf215():
    result = parse_file(FIXTURES / "tf215_cpu_op_profiling.txt")
    doc = to_measurements(result, model="ssd.tflite", device=Device("Pixel 1", "FA6A", "Android 10"),
                          arch="mobilenet_v2_100", cpu_mask="f0")
    assert doc["schema"] == SCHEMA == "edgetailor.measurements/1" and doc["source"] == "android-bench"
    assert doc["device"] == {"name": "Pixel 1", "serial": "FA6A", "os": "Android 10"}
    assert doc["runtime"] == {"name": "tflite", "version": None, "threads": 4, "delegate": "cpu",
                              "cpu_mask": "f0"}
    (m,) = doc["measurements"]
    ops = m.pop("ops")
    assert m == {"model": "ssd.tflite", "arch": "mobilenet_v2_100", "latency_ms": 6.15943,
                 "std_ms": 0.257, "min_ms": 6.018, "max_ms": 8.101, "count": 60,
                 "init_ms": 9.817, "first_ms": 11.462, "warmup_ms": 6.2451, "memory_mb": 13.5078}
    assert len(ops) == 16 and ops[0] == {
        "type": "CONV_2D", "name": "[MobilenetV2/Conv/Relu6;MobilenetV2/Conv/BatchNorm/"
        "FusedBatchNormV3;MobilenetV2/Conv/Conv2D]:0", "first_ms": 0.807, "avg_ms": 0.614,
        "percent": 10.274, "calls": 1}


def test_unknown_values_are_left_out_not_zeroed():
    doc = to_measurements(parse_file(FIXTURES / "contrib_2018_stderr.txt"), model="m.tflite",
                          device=Device("unknown"))
    (m,) = doc["measurements"]
    assert "memory_mb" not in m and m["arch"] is None and m["warmup_ms"] == 154.325
    assert doc["device"] == {"name": "unknown"} and "cpu_mask" not in doc["runtime"]


@pytest.mark.parametrize("name", CAPTURES)
def test_parse_every_capture_to_valid_json(name):
    result = invoke("--parse", FIXTURES / name, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    json.dumps(doc, allow_nan=False)
    m = doc["measurements"][0]
    assert m["latency_ms"] > 0 and m["model"].endswith(".tflite")  # from "Graph: [...]"
    assert doc["device"]["name"] == "unknown"


def test_parse_records_model_device_arch_and_mask(tmp_path):
    out = tmp_path / "m.json"
    result = invoke("mobilenet_v2_100.tflite", "--parse", FIXTURES / "logcat_apk.txt",
                    "--device", "Pixel 4a", "--arch", "mobilenet_v2_100", "--cpu-mask", "f0",
                    "--out", out, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc == json.loads(result.output)
    assert doc["device"] == {"name": "Pixel 4a"}
    assert doc["runtime"] == {"name": "tflite", "version": None, "threads": 4,
                              "delegate": "xnnpack", "cpu_mask": "f0"}
    assert doc["measurements"][0]["model"] == "mobilenet_v2_100.tflite"
    assert doc["measurements"][0]["arch"] == "mobilenet_v2_100"


def test_inline_spec_is_accepted_as_arch():
    spec = "res64 | conv_k3_s2_c16_re | ir_r2_k3_s2_e6_c24_re | head:pool"
    result = invoke("--parse", FIXTURES / "tf215_cpu_op_profiling.txt", "--arch", spec, "--json")
    assert json.loads(result.output)["measurements"][0]["arch"] == spec


def test_human_summary():
    result = invoke("--parse", FIXTURES / "multi_subgraph_xnnpack.txt")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "model       seq_decoder.tflite"
    assert lines[2] == "runtime     tflite xnnpack, 2 threads"
    assert lines[3].startswith("latency     5.18 ms  (std 0.13, min 4.99, max 5.40, 97 runs)")
    assert "3 profiled; slowest:" in result.output and "WHILE" in result.output


def test_profile_csv_supplies_the_ops(tmp_path):
    capture = (FIXTURES / "tf215_cpu_op_profiling.txt").read_text()
    plain = tmp_path / "run.txt"
    plain.write_text(capture[:capture.index("INFO: Profiling Info")])
    result = invoke("--parse", plain, "--profile-csv", FIXTURES / "profile.csv", "--json")
    assert result.exit_code == 0, result.output
    ops = json.loads(result.output)["measurements"][0]["ops"]
    assert [op["name"] for op in ops][-1] == "[logits, logits_aux]:5"
    one_line_error(invoke("--parse", FIXTURES / "tf215_cpu_op_profiling.txt", "--profile-csv",
                          FIXTURES / "profile.csv"), "already holds an op profile")


@pytest.mark.parametrize("args, message", [
    (["--parse", FIXTURES / "failed_run.txt"], "failed_run.txt, line 7: no timing summary"),
    (["--parse", FIXTURES / "profile.csv"], "pass it as --profile-csv"),
    (["--parse", FIXTURES / "logcat_apk.txt", "--serial", "X"], "--serial does nothing with --parse"),
    (["--parse", FIXTURES / "logcat_apk.txt", "--op-profiling"], "--op-profiling does nothing"),
    (["--parse", FIXTURES / "logcat_apk.txt", "--timeout", "60"], "--timeout does nothing"),
    (["m.tflite", "--device", "Pixel"], "--device does nothing without --parse"),
    ([], "give MODEL.tflite to measure on a phone, or --parse CAPTURE.txt"),
    (["m.tflite"], "--benchmark-binary is required"),
    (["--parse", FIXTURES / "logcat_apk.txt", "--arch", "mobilenet_v9"], "--arch: unknown architecture"),
    (["--parse", FIXTURES / "logcat_apk.txt", "--cpu-mask", "zz"], "--cpu-mask must be"),
    (["--parse", FIXTURES / "logcat_apk.txt", "--out", "/no/such/dir/x.json"], "--out: folder does not exist"),
], ids=["failed-run", "csv-only", "serial", "profiling", "timeout", "device", "nothing",
        "no-binary", "arch", "mask", "out-folder"])
def test_one_line_errors(args, message):
    one_line_error(invoke(*args), message)


def test_write_json_is_atomic(tmp_path):
    out = tmp_path / "m.json"
    write_json(out, {"a": 1})
    with pytest.raises(TypeError):
        write_json(out, {"a": object()})
    assert json.loads(out.read_text()) == {"a": 1}  # the old file survives a failed write
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
    with pytest.raises(ValueError):
        write_json(out, {"a": float("nan")})  # never write invalid JSON


def test_cli_import_stays_light():
    code = ("import sys; import edgetailor.android_harness.cli; "
            "print('tensorflow' in sys.modules, 'coremltools' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
