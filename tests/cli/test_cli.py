"""The command line: answers, JSON, one-line errors, atomic output, no TensorFlow for look-ups."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgetailor.cli.main import main


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_zoo_json_lists_published_figures_and_sources():
    result = run("zoo", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    row = rows["mobilenet_v2_100"]
    assert row["published_params_m"] == 3.47 and row["params_m"] == pytest.approx(3.505, abs=1e-3)
    assert row["top1"] == 71.8 and "slim" in row["source"]


def test_zoo_table():
    result = run("zoo")
    assert result.exit_code == 0 and "efficientnet_b7" in result.output


def test_describe_json_has_layers():
    result = run("describe", "mobilenet_v2", "--width", "0.6", "--resolution", "176", "--json")
    data = json.loads(result.output)
    assert data["resolution"] == 176 and data["spec"].startswith("res176_w0.6 |")
    assert data["params"] == sum(layer["params"] for layer in data["layers"])
    assert data["layers"][-1]["name"] == "classifier"


def test_describe_inline_spec():
    result = run("describe", "res64 | conv_k3_s2_c16_re | ir_r2_k3_s2_e6_c24_re | head:pool")
    assert result.exit_code == 0 and "stage1.1" in result.output


@pytest.mark.parametrize("args, message", [
    (["describe", "mobilenet_v5"], "unknown architecture 'mobilenet_v5'; did you mean"),
    (["describe", "res64 | conv_k3_c16 | ir_k3_e6x_c16 | head:pool"], "unknown token 'e6x'"),
    (["describe", "mobilenet_v2", "--resolution", "8"], "8 is not in the range"),
])
def test_user_mistakes_are_one_line_errors(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_build_saves_a_loadable_model(tmp_path):
    out = tmp_path / "tiny.keras"
    result = run("build", "mobilenet_v3_small_075", "--resolution", "64", "--num-classes", "5",
                 "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["weights"] == "random"
    import tensorflow as tf

    model = tf.keras.models.load_model(out)
    assert model.output_shape == (None, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.keras"]


def test_build_refuses_bad_output_and_leaves_nothing(tmp_path):
    result = CliRunner().invoke(main, ["build", "mobilenet_v2_035", "--out", str(tmp_path / "m.tflite")])
    assert result.exit_code != 0 and "must end in .keras" in result.output
    result = CliRunner().invoke(main, ["build", "nosuchnet", "--out", str(tmp_path / "m.keras")])
    assert result.exit_code != 0 and "unknown architecture" in result.output
    assert list(tmp_path.iterdir()) == []


def test_lookups_do_not_import_tensorflow():
    code = ("import sys; from click.testing import CliRunner; from edgetailor.cli.main import main; "
            "r = CliRunner().invoke(main, ['zoo', '--json']); "
            "r2 = CliRunner().invoke(main, ['describe', 'efficientnet_b3']); "
            "r3 = CliRunner().invoke(main, ['latency', 'mobilenet_v2', '--device', 'pixel1']); "
            "assert r.exit_code == 0 and r2.exit_code == 0 and r3.exit_code == 0; "
            "import edgetailor.arch.spec, edgetailor.arch.layers, edgetailor.arch.scaling, edgetailor.arch.features; "
            "from edgetailor import pick, profiles, tasks; p = profiles.load('pixel1'); "
            "pick.pick(p, 20.0, families=('mobilenet_v2',)); "
            "tasks.DENSE['detection'].pick(p, 60.0, 90, families=('mobilenet_v3_small',)); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
