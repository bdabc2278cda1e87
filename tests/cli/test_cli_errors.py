"""The CLI's error policy: a project error is one line and exit 1; anything else is a bug,
shown with its traceback, a request for a report and exit 70; click's own errors unchanged."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgetailor.cli.android import android_bench
from edgetailor.arch import layers, zoo
from edgetailor.cli.common import BUG_REPORT, INTERNAL_ERROR, emit_json
from edgetailor.errors import SpecError

from cli_checks import assert_one_line_error, invoke

CAPTURE = Path(__file__).parents[1] / "fixtures" / "android" / "logcat_apk.txt"


def assert_bug_report(result, exception_line):
    assert result.exit_code == INTERNAL_ERROR, result.output
    assert isinstance(result.exception, SystemExit)  # handled: not a crash of the runner
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert exception_line in lines and lines[-1] == BUG_REPORT
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("args, needle", [
    (["describe", "nosuchnet"], "unknown architecture 'nosuchnet'; did you mean"),
    (["latency", "mobilenet_v2", "--device", "nosuch"], "unknown device 'nosuch'"),
    (["scale", "nosuchnet", "--phi", "1"], "unknown architecture 'nosuchnet'"),
], ids=["describe", "device", "scale"])
def test_user_mistakes_are_one_line(args, needle):
    assert_one_line_error(invoke(*args), needle)


def test_a_project_error_from_the_library_needs_no_catch_in_the_command(tmp_path):
    # shapes' own size limit (32..224 px) is narrower than the option's range
    out = tmp_path / "shapes"
    assert_one_line_error(invoke("shapes", "--size", "16", "--images", "2", "--out", out),
                          "image size must be 32..224 px (got 16)")
    assert list(tmp_path.iterdir()) == []


def test_any_project_error_escaping_a_command_is_one_line(monkeypatch):
    def entries():
        raise SpecError("registry not available")

    monkeypatch.setattr(zoo, "entries", entries)
    assert_one_line_error(invoke("zoo"), "Error: registry not available")


def test_a_bug_shows_its_traceback_and_asks_for_a_report(monkeypatch):
    def entries():
        raise RuntimeError("boom")

    monkeypatch.setattr(zoo, "entries", entries)
    assert_bug_report(invoke("zoo", "--json"), "RuntimeError: boom")


def test_a_plain_value_error_is_a_bug_not_a_user_error(monkeypatch):
    def walk(spec, num_classes=1000):
        raise ValueError("shapes do not line up")

    monkeypatch.setattr(layers, "walk", walk)
    assert_bug_report(invoke("describe", "mobilenet_v2"), "ValueError: shapes do not line up")


def test_commands_run_on_their_own_apply_the_policy(monkeypatch):
    import edgetailor.cli.android as android_cli

    assert_one_line_error(invoke("--parse", CAPTURE, "--arch", "nosuchnet", command=android_bench),
                          "--arch: unknown architecture")

    def parse_file(path):
        raise KeyError("delegate")

    monkeypatch.setattr(android_cli, "parse_file", parse_file)
    assert_bug_report(invoke("--parse", CAPTURE, command=android_bench), "KeyError: 'delegate'")
    # ... and the same through the group, reported once
    result = invoke("android-bench", "--parse", CAPTURE)
    assert_bug_report(result, "KeyError: 'delegate'")
    assert result.stderr.count(BUG_REPORT) == 1 and result.stderr.count("Traceback") == 1


def test_a_bug_in_a_sub_group_command(monkeypatch, tmp_path):
    from edgetailor.profiling import ingest

    def profile_from_measurements(paths, base, name):
        raise AttributeError("'NoneType' object has no attribute 'spec'")

    monkeypatch.setattr(ingest, "profile_from_measurements", profile_from_measurements)
    measurements = tmp_path / "m.json"
    measurements.write_text("{}")
    result = invoke("profile", "import", measurements, "--name", "x", "--out", tmp_path / "p.json")
    assert_bug_report(result, "AttributeError: 'NoneType' object has no attribute 'spec'")


def test_click_keeps_its_own_errors_and_ctrl_c(monkeypatch):
    result = invoke("describe")
    assert result.exit_code == 2 and "Missing argument 'ARCH'" in result.output
    assert "Traceback" not in result.output and BUG_REPORT not in result.output

    def entries():
        raise KeyboardInterrupt

    monkeypatch.setattr(zoo, "entries", entries)
    result = invoke("zoo")
    assert result.exit_code == 1 and "Aborted!" in result.output and "Traceback" not in result.output


def test_profile_import_of_a_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"schema": "edgetailor.measurements/1", "measurements": "none"}))
    result = invoke("profile", "import", bad, "--name", "x", "--out", tmp_path / "p.json")
    assert_one_line_error(result, "'measurements' must be a list of objects")


def test_emit_json_writes_numpy_values_as_numbers_and_refuses_the_unknown(capsys):
    emit_json({"scale": np.float32(0.5), "shape": np.array([1, 2]), "path": Path("a/b")})
    assert json.loads(capsys.readouterr().out) == {"scale": 0.5, "shape": [1, 2], "path": "a/b"}
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        emit_json({"x": object()})


def _edgetailor() -> list[str]:
    script = Path(sys.executable).parent / "edgetailor"
    return [str(script)] if script.exists() else [sys.executable, "-m", "edgetailor"]


def test_what_a_user_sees_in_a_terminal():
    done = subprocess.run(_edgetailor() + ["describe", "nosuchnet"], capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("Error: unknown architecture 'nosuchnet'")
    assert len(done.stderr.strip().splitlines()) == 1

    code = ("import sys; from edgetailor.arch import zoo; zoo.entries = lambda: 1 / 0; "
            "from edgetailor.cli.main import main; sys.argv = ['edgetailor', 'zoo']; main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == INTERNAL_ERROR
    lines = done.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):" and "ZeroDivisionError: division by zero" in lines
    assert lines[-1] == BUG_REPORT
