"""What walking the README's commands as a new user found: each case here failed before its fix."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgetailor.data import folders, shapes

from cli_checks import assert_one_line_error, invoke

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def test_an_unbounded_number_option_shows_no_range_in_help():
    result = invoke("search", "--help")
    assert result.exit_code == 0 and "--budget-ms FLOAT RANGE" in result.output
    assert "None]" not in result.output  # click wrote an unbounded range as "[x<=None]"


@pytest.mark.parametrize("script", ["specialize_picks.py", "detection_latency.py"])
def test_benchmarks_answer_help_instead_of_running(script):
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:") and "|---|" not in done.stdout  # no table: it did not run


def test_shapes_folders_are_written_without_tensorflow(tmp_path):
    code = ("import sys; from edgetailor.data import folders, shapes; "
            f"folders.write_mask_folder({str(tmp_path / 'masks')!r}, shapes.detection(3, 32)); "
            f"folders.write_coco_folder({str(tmp_path / 'coco')!r}, shapes.detection(3, 32)); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = shapes.detection(3, 32)
    masks = folders.load_mask_folder(tmp_path / "masks", 32)  # read back by the reader specialize uses
    np.testing.assert_array_equal(masks.images, data.images)
    np.testing.assert_array_equal(masks.masks, data.masks)
    coco = folders.load_coco_folder(tmp_path / "coco", 32)
    np.testing.assert_array_equal(coco.images, data.images)


def test_shapes_shows_progress_on_stderr(tmp_path):
    result = invoke("shapes", "--format", "voc", "--images", 3, "--size", 32, "--out", tmp_path / "voc")
    assert result.exit_code == 0, result.output
    assert "drawing 3 images" in result.stderr
    assert result.stdout == f"wrote 3 32x32 shapes images (voc) to {tmp_path / 'voc'}\n"


def test_android_bench_refuses_a_model_that_is_not_tflite_before_any_adb(tmp_path):
    model, binary = tmp_path / "m.keras", tmp_path / "benchmark_model"
    model.write_bytes(b"PK\x03\x04" + bytes(60))  # a .keras file is a zip
    binary.write_bytes(b"\x7fELF")
    result = invoke("android-bench", model, "--benchmark-binary", binary)
    assert_one_line_error(result, "m.keras is a Keras model, not TFLite", "edgetailor convert")


def test_keras_download_messages_stay_off_stdout(tmp_path, monkeypatch):
    from keras.src.utils import data_utils

    real = data_utils.get_file

    def offline(fname, origin, **kwargs):  # Keras' own download, from a URL that cannot answer
        return real(fname, (tmp_path / "absent.h5").as_uri(), **{**kwargs, "cache_dir": str(tmp_path / "cache")})

    monkeypatch.setattr(data_utils, "get_file", offline)
    result = invoke("build", "mobilenet_v2_035", "--pretrained", "imagenet", "--out", tmp_path / "m.keras")
    assert result.exit_code == 1 and result.stdout == ""  # stdout is for results (--json)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Downloading data from") and lines[-1].startswith("Error: cannot download ImageNet")
    assert "Traceback" not in result.stderr and not (tmp_path / "m.keras").exists()


def test_an_int8_model_that_loses_nothing_says_plus_zero(capsys):
    from edgetailor.cli.main import _echo_quantization

    figure = {"value": 16.67}
    _echo_quantization({"quantization": {"metric": "top-1 (%)", "float": figure, "ptq": figure, "qat": None,
                                         "int8": {**figure, "method": "ptq"}, "drop_pp": 0.0}})
    assert "(+0 pp;" in capsys.readouterr().out  # was "(-0 pp;": the negated 0.0


def test_progress_lines_show_while_the_converters_capture_stderr():
    # `specialize --task detection` and `quantize-mix` convert inside the bundle writer, under
    # native_output_captured: their progress lines used to vanish into its temp file
    code = ("import click\n"
            "from edgetailor.cli.common import lasting_progress\n"
            "from edgetailor.converters.base import native_output_captured\n"
            "progress = lasting_progress('edgetailor: ')\n"
            "with native_output_captured(True):\n"
            "    click.echo('swallowed', err=True)\n"
            "    progress('converting to Core ML')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "edgetailor: converting to Core ML\n"


@pytest.mark.parametrize("args", [["build", "no_such_arch", "--out", "{tmp}/m.keras"],
                                  ["search", "--space", "no_such_space", "--device", "pixel1", "--out", "{tmp}/s"],
                                  ["supernet", "train", "--space", "ofa_proxy", "--dataset", "{tmp}/none",
                                   "--out", "{tmp}/ckpt"]],
                         ids=["build", "search", "supernet"])
def test_commands_that_import_tensorflow_hide_its_cpp_log(tmp_path, monkeypatch, args):
    # `build`, `search` and `supernet train` printed TensorFlow's "I tensorflow/core/..." lines among their own
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    result = invoke(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "2"


def test_a_weight_sharing_search_names_a_specialize_command_that_can_run(tmp_path):
    from edgetailor.cli.main import main as cli
    from edgetailor.cli.supernet_search import bundle_hint

    hint = bundle_hint("fbnet", "fbnet", "pixel1", 3.0, Path("photos"), Path("runs/fb"))
    command = hint.split("`")[1].split()
    assert command[:2] == ["edgetailor", "specialize"]
    # every option the hint needs is one specialize has (it named no --dataset, --device, --budget-ms or --out)
    known = {option for param in cli.commands["specialize"].params for option in param.opts}
    assert {"--dataset", "--device", "--budget-ms", "--out"} <= {w for w in command if w.startswith("--")} <= known
    assert "--dataset photos" in hint and "--budget-ms 3 " in hint
    # on the built-in shapes data there is no folder to pass: it says how to search on one
    assert "edgetailor shapes --out" in bundle_hint("fbnet", "fbnet", "pixel1", 3.0, None, Path("runs/fb"))
