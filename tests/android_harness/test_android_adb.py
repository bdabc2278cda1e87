"""The phone run, with a recording stand-in ``adb`` first on PATH: the exact adb calls,
device selection errors, clean-up after failures, one-line CLI errors."""
import json
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgetailor.android_harness import adb
from edgetailor.android_harness.adb import BenchConfig, measure, parse_devices, select_device
from edgetailor.cli.android import android_bench
from edgetailor.android_harness.errors import AdbError, HarnessError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "android"
SERIAL = "FA6A10301234"

# Logs its argv as one JSON line, answers `devices`, `getprop`, `push`, `shell ...`.
FAKE_ADB = r'''
import json, os, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if args == ["devices"]:
    sys.stdout.write(os.environ["FAKE_ADB_DEVICES"])
    sys.exit(0)
if args[:1] == ["-s"]:
    args = args[2:]
if args[0] == os.environ.get("FAKE_ADB_FAIL"):
    sys.stderr.write("adb: error: failed to copy 'benchmark_model' to "
                     "'/data/local/tmp/benchmark_model': remote couldn't create file: "
                     "Permission denied\n")
    sys.exit(1)
if args[:2] == ["shell", "getprop"]:
    print({"ro.product.model": "Pixel 1", "ro.build.version.release": "10"}[args[2]])
elif args[0] == "shell" and any(a.startswith("--graph=") for a in args):
    time.sleep(float(os.environ.get("FAKE_ADB_SLEEP", "0")))
    with open(os.environ["FAKE_ADB_OUTPUT"]) as out:
        sys.stdout.write(out.read())
    sys.exit(int(os.environ.get("FAKE_ADB_STATUS", "0")))
elif args[0] == "push":
    print(f"{args[1]}: 1 file pushed, 0 skipped. 41.3 MB/s (1234567 bytes in 0.028s)")
'''


class FakeAdb:
    def __init__(self, folder: Path, monkeypatch):
        self.log = folder / "adb_calls.jsonl"
        bin_dir = folder / "bin"
        bin_dir.mkdir()
        script = bin_dir / "adb"
        script.write_text(f"#!{sys.executable} -S\n{FAKE_ADB}")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", str(bin_dir))
        monkeypatch.setenv("FAKE_ADB_LOG", str(self.log))
        self.monkeypatch = monkeypatch
        self.devices(f"{SERIAL}\tdevice")
        self.output("tf215_cpu_op_profiling.txt")

    def devices(self, *rows: str) -> None:
        text = "List of devices attached\n" + "".join(row + "\n" for row in rows) + "\n"
        self.monkeypatch.setenv("FAKE_ADB_DEVICES", text)

    def output(self, fixture: str) -> None:
        self.monkeypatch.setenv("FAKE_ADB_OUTPUT", str(FIXTURES / fixture))

    def set(self, name: str, value: str) -> None:
        self.monkeypatch.setenv(name, value)

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    return FakeAdb(tmp_path, monkeypatch)


@pytest.fixture
def files(tmp_path):
    binary = tmp_path / "android_aarch64_benchmark_model"
    binary.write_bytes(b"\x7fELF")
    model = tmp_path / "mobilenet_v2_100.tflite"
    model.write_bytes(b"TFL3")
    return binary, model


def invoke(*args):
    return CliRunner().invoke(android_bench, [str(a) for a in args])


def one_line_error(result, *needles):
    """Exit 1, no traceback, stdout empty; stderr: progress lines, then one error line."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    *progress, error = result.stderr.strip().splitlines()
    assert error.startswith("Error: ")
    assert all(line.startswith("[android-bench] ") for line in progress), result.stderr
    for needle in needles:
        assert needle in error
    return error


def s(*args):
    return ["-s", SERIAL, *args]


def test_full_run_makes_exactly_these_adb_calls(fake_adb, files, tmp_path):
    binary, model = files
    out = tmp_path / "results.json"
    result = invoke(model, "--benchmark-binary", binary, "--serial", SERIAL, "--threads", 4,
                    "--cpu-mask", "f0", "--op-profiling", "--arch", "mobilenet_v2_100",
                    "--out", out)
    assert result.exit_code == 0, result.output
    remote_model = "/data/local/tmp/mobilenet_v2_100.tflite"
    assert fake_adb.calls() == [
        ["devices"],
        s("shell", "getprop", "ro.product.model"),
        s("shell", "getprop", "ro.build.version.release"),
        s("push", str(binary), "/data/local/tmp/benchmark_model"),
        s("shell", "chmod", "+x", "/data/local/tmp/benchmark_model"),
        s("push", str(model), remote_model),
        s("shell", "taskset", "f0", "/data/local/tmp/benchmark_model",
          f"--graph={remote_model}", "--num_threads=4", "--warmup_runs=1", "--num_runs=50",
          "--enable_op_profiling=true"),
        s("shell", "rm", "-f", "/data/local/tmp/benchmark_model", remote_model),
    ]
    doc = json.loads(out.read_text())
    assert doc["device"] == {"name": "Pixel 1", "serial": SERIAL, "os": "Android 10"}
    assert doc["runtime"] == {"name": "tflite", "version": None, "threads": 4,
                              "delegate": "cpu", "cpu_mask": "f0"}
    (m,) = doc["measurements"]
    assert (m["model"], m["arch"], m["latency_ms"], m["count"]) == (
        "mobilenet_v2_100.tflite", "mobilenet_v2_100", 6.15943, 60)
    assert len(m["ops"]) == 16
    assert "latency     6.16 ms" in result.stdout and f"saved       {out}" in result.stdout
    assert not list(tmp_path.glob(".results.json.*"))  # no temp file left behind


def test_single_device_is_picked_and_defaults_apply(fake_adb, files):
    binary, model = files
    fake_adb.devices("emulator-5554\toffline", f"{SERIAL}\tdevice")
    result = invoke(model, "--benchmark-binary", binary, "--json")
    assert result.exit_code == 0, result.output
    run_call = fake_adb.calls()[6]
    assert run_call == s("shell", "/data/local/tmp/benchmark_model",
                         "--graph=/data/local/tmp/mobilenet_v2_100.tflite", "--num_threads=1",
                         "--warmup_runs=1", "--num_runs=50")
    doc = json.loads(result.stdout)
    assert doc["runtime"]["threads"] == 1 and "cpu_mask" not in doc["runtime"]
    assert result.stderr.splitlines() == [
        f"[android-bench] Pixel 1 (Android 10), serial {SERIAL}",
        "[android-bench] pushing android_aarch64_benchmark_model and mobilenet_v2_100.tflite "
        "to /data/local/tmp",
        "[android-bench] running benchmark_model, 1 thread(s) (allowing up to 600 s)"]


def test_warmup_and_run_counts_and_unsafe_model_names(fake_adb, tmp_path, files):
    binary, _ = files
    model = tmp_path / "my model (v2).tflite"
    model.write_bytes(b"TFL3")
    result = invoke(model, "--benchmark-binary", binary, "--warmup-runs", 0,
                    "--num-runs", 200, "--json")
    assert result.exit_code == 0, result.output
    calls = fake_adb.calls()
    assert calls[5] == s("push", str(model), "/data/local/tmp/my_model__v2_.tflite")
    assert calls[6][-3:] == ["--num_threads=1", "--warmup_runs=0", "--num_runs=200"]
    assert json.loads(result.stdout)["measurements"][0]["model"] == "my model (v2).tflite"


@pytest.mark.parametrize("rows, message", [
    ((), "no Android device attached"),
    (("FA6A1\tdevice", "R58M2\tdevice"), "several devices attached (FA6A1, R58M2); choose one with --serial"),
    ((f"{SERIAL}\tunauthorized",), f"device {SERIAL} is unauthorized"),
    ((f"{SERIAL}\toffline",), f"device {SERIAL} is offline"),
], ids=["none", "several", "unauthorized", "offline"])
def test_device_selection_errors(fake_adb, files, rows, message):
    binary, model = files
    fake_adb.devices(*rows)
    one_line_error(invoke(model, "--benchmark-binary", binary), message)
    assert fake_adb.calls() == [["devices"]]


def test_serial_that_is_not_attached(fake_adb, files):
    binary, model = files
    one_line_error(invoke(model, "--benchmark-binary", binary, "--serial", "XYZ"),
                   f"device XYZ is not attached (attached: {SERIAL})")


def test_parse_devices_skips_daemon_chatter():
    listing = ("* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
               "List of devices attached\nFA6A1\tdevice\n0123\tno permissions (user in plugdev "
               "group; are your udev rules wrong?)\n\n")
    devices = parse_devices(listing)
    assert devices == [("FA6A1", "device"), ("0123", "no permissions (user in plugdev group; "
                                                      "are your udev rules wrong?)")]
    assert select_device(devices, None) == "FA6A1"
    with pytest.raises(AdbError, match="no permission to use device 0123"):
        select_device(devices, "0123")


def test_adb_missing_from_path(tmp_path, monkeypatch, files):
    binary, model = files
    monkeypatch.setenv("PATH", str(tmp_path))
    one_line_error(invoke(model, "--benchmark-binary", binary), "adb not found on PATH")


def test_benchmark_binary_missing_is_checked_before_adb(fake_adb, tmp_path, files):
    _, model = files
    one_line_error(invoke(model, "--benchmark-binary", tmp_path / "nope"),
                   "benchmark binary not found", "android_aarch64_benchmark_model")
    assert fake_adb.calls() == []


def test_model_missing(fake_adb, tmp_path, files):
    binary, _ = files
    one_line_error(invoke(tmp_path / "gone.tflite", "--benchmark-binary", binary),
                   "model not found")
    assert fake_adb.calls() == []


def test_bad_cpu_mask_is_rejected_before_adb(fake_adb, files):
    binary, model = files
    one_line_error(invoke(model, "--benchmark-binary", binary, "--cpu-mask", "big"),
                   "--cpu-mask must be a non-zero hex core mask")
    assert fake_adb.calls() == []


def test_unparsable_output_is_one_line_and_the_phone_is_cleaned(fake_adb, files, tmp_path):
    binary, model = files
    fake_adb.output("failed_run.txt")
    fake_adb.set("FAKE_ADB_STATUS", "1")
    raw = tmp_path / "raw.txt"
    out = tmp_path / "results.json"
    result = invoke(model, "--benchmark-binary", binary, "--save-output", raw, "--out", out)
    one_line_error(result, "benchmark_model output, line 7: no timing summary",
                   "FULLY_CONNECTED")
    assert fake_adb.calls()[-1][2:4] == ["shell", "rm"]
    assert raw.read_text() == (FIXTURES / "failed_run.txt").read_text()
    assert not out.exists()


def test_failed_push_still_cleans_up(fake_adb, files):
    binary, model = files
    fake_adb.set("FAKE_ADB_FAIL", "push")
    one_line_error(invoke(model, "--benchmark-binary", binary),
                   "adb push", "remote couldn't create file: Permission denied")
    calls = fake_adb.calls()
    assert [c[2] for c in calls[1:]] == ["shell", "shell", "push", "shell"]
    assert calls[-1][2:4] == ["shell", "rm"]


def test_benchmark_timeout_is_bounded_and_cleans_up(fake_adb, files):
    binary, model = files
    fake_adb.set("FAKE_ADB_SLEEP", "20")
    with pytest.raises(AdbError, match="timed out after 0.5 s"):
        measure(model, binary, BenchConfig(timeout_s=0.5))
    assert fake_adb.calls()[-1][2:4] == ["shell", "rm"]


def test_measure_returns_the_raw_capture(fake_adb, files):
    binary, model = files
    fake_adb.output("multi_subgraph_xnnpack.txt")
    run = measure(model, binary, BenchConfig(threads=2, op_profiling=True), SERIAL)
    assert run.exit_status == 0 and run.device.name == "Pixel 1"
    assert run.command[0] == adb.REMOTE_BINARY and "--enable_op_profiling=true" in run.command
    assert run.parse().delegate == "xnnpack"


def test_check_cpu_mask():
    assert adb.check_cpu_mask("0xF0") == "F0" and adb.check_cpu_mask("c") == "c"
    for bad in ("0", "g0", "", "0x"):
        with pytest.raises(HarnessError):
            adb.check_cpu_mask(bad)


def test_blocks_times_each_op_model_and_imports_as_a_profile(fake_adb, files, tmp_path):
    """--blocks: one push of the binary, then push + run per op; the file imports as a profile."""
    from edgetailor.cli.main import main
    from edgetailor.latency import profiles

    binary, _ = files
    out = tmp_path / "ops.json"
    result = invoke("--blocks", "proxyless", "--archs", 1, "--benchmark-binary", binary,
                    "--out", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    rows = doc["measurements"]
    assert rows and all(r["op"] and r["latency_ms"] == 6.15943 for r in rows)
    calls = fake_adb.calls()
    assert calls[3] == s("push", str(binary), "/data/local/tmp/benchmark_model")
    runs = [c for c in calls if any(a.startswith("--graph=") for a in c)]
    assert len(runs) == len(rows)
    assert calls[-1] == s("shell", "rm", "-f", "/data/local/tmp/benchmark_model",
                          "/data/local/tmp/edgetailor_op.tflite")
    imported = tmp_path / "phone.json"
    result = CliRunner().invoke(main, ["profile", "import", str(out), "--name", "phone",
                                       "--out", str(imported)])
    assert result.exit_code == 0, result.output
    assert len(profiles.load(str(imported)).table) == len(rows)


def test_blocks_needs_out_and_no_model(fake_adb, files):
    binary, model = files
    one_line_error(invoke("--blocks", "proxyless", "--benchmark-binary", binary), "--blocks needs --out")
    one_line_error(invoke(model, "--blocks", "proxyless", "--benchmark-binary", binary, "--out", "x.json"),
                   "drop MODEL")


def _base_with_kernels(tmp_path) -> Path:
    """A shipped profile with a small kernel predictor beside it (five kernel types, baselines only)."""
    import hashlib
    from importlib import resources

    import numpy as np

    from edgetailor.latency.kernel_predictor import KernelPredictor, TreeEnsemble

    one = np.array([-1], np.int32)
    leaf = TreeEnsemble(np.zeros(1, np.int32), np.zeros(1), one, one, np.zeros(1), np.zeros(1, np.int32), 0.0, 1.0, 1.0)
    kinds = ("pwconv", "dwconv", "add", "pool", "fc")
    predictor = KernelPredictor({k: leaf for k in kinds}, {k: np.array([0.01, 0.2, 0.0, 0.001]) for k in kinds},
                                0.002, {"threads": 1})
    data = predictor.to_npz_bytes()
    (tmp_path / "base.json.kernels.npz").write_bytes(data)
    document = json.loads(resources.files("edgetailor.device_profiles").joinpath("pixel1.json").read_text())
    document["kernel_predictor"] = {"file": "base.json.kernels.npz", "sha256": hashlib.sha256(data).hexdigest()}
    (tmp_path / "base.json").write_text(json.dumps(document))
    return tmp_path / "base.json"


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_kernels_times_the_kernels_profile_adapt_needs_and_resumes(fake_adb, files, tmp_path, precision):
    """--kernels: the binary once, then push + run per kernel model, each appended to the adapt
    journal with its type and features (int8: and the input conversion at three sizes); a rerun
    times nothing; profile adapt reads the file."""
    from edgetailor.cli.main import main
    from edgetailor.profiling import adapt

    binary, _ = files
    base, out = _base_with_kernels(tmp_path), tmp_path / "phone.jsonl"
    result = invoke("--kernels", base, "--max-kernels", 20, "--precision", precision,
                    "--benchmark-binary", binary, "--out", out)
    assert result.exit_code == 0, result.output
    measured = adapt.read(out)
    assert measured.setting == (1, precision) and measured.empty_ms == 6.15943
    assert 10 <= len(measured.kernels) <= 20 and {t for t, _, _ in measured.kernels.values()} <= {
        "pwconv", "dwconv", "add", "pool", "fc"}
    assert len(measured.inputs) == (3 if precision == "int8" else 0)
    runs = [c for c in fake_adb.calls() if any(a.startswith("--graph=") for a in c)]
    assert len(runs) == 1 + len(measured.kernels) + len(measured.inputs)
    assert fake_adb.calls()[-1] == s("shell", "rm", "-f", "/data/local/tmp/benchmark_model",
                                     "/data/local/tmp/edgetailor_op.tflite")
    before = len(fake_adb.calls())
    again = invoke("--kernels", base, "--max-kernels", 20, "--precision", precision,
                   "--benchmark-binary", binary, "--out", out)
    assert again.exit_code == 0 and "timed 0 kernel models" in again.output
    assert len(fake_adb.calls()) == before  # nothing left to time: the phone is not touched
    adapted = CliRunner().invoke(main, ["profile", "adapt", "--base", str(base), "--measurements", str(out),
                                        "--name", "phone", "--out", str(tmp_path / "phone.json")])
    assert adapted.exit_code == 0, adapted.output


def test_kernels_mistakes_are_one_line(fake_adb, files, tmp_path):
    binary, model = files
    base = _base_with_kernels(tmp_path)
    one_line_error(invoke("--kernels", base, "--benchmark-binary", binary), "--kernels needs --out")
    one_line_error(invoke("--kernels", base, "--blocks", "proxyless", "--benchmark-binary", binary,
                          "--out", tmp_path / "k.jsonl"), "two modes")
    one_line_error(invoke("--kernels", "pixel1", "--benchmark-binary", binary, "--out", tmp_path / "k.jsonl"),
                   "no kernel predictor")
    assert fake_adb.calls() == []
