"""`edgetailor search` and `edgetailor scale`, and proxy training (datasets, recipe, one real run)."""
import json
import math
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

from edgetailor.arch import layers, scaling, zoo
from edgetailor.tasks.classification import train as proxy_train
from edgetailor.data import shapes
from edgetailor.cli.search import scale_command, search_command


def toy(spec):
    macs = layers.count(spec)[1]
    return round(40 + 8 * math.log10(macs / 1e7) + zlib.crc32(spec.encode().encode()) % 100 / 100, 3), \
        "estimated", "toy MACs curve"


def invoke(args, evaluator=toy, command=search_command):
    return CliRunner().invoke(command, [str(a) for a in args], obj={"evaluator": evaluator} if evaluator else None)


def one_line_error(result, fragment):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and fragment in errors[0], result.output


def test_search_writes_outputs_and_resumes(tmp_path):
    out = tmp_path / "out"
    args = ["--device", "pixel1", "--budget-ms", 50, "--strategy", "rl", "--trials", 4, "--out", out]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    assert "rl search of mnasnet on pixel1-tflite-fp32-1big (soft objective, budget 50 ms): 4 trials" in result.stdout
    assert "best (trial" in result.stdout and "Pareto front" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [".report.lock", "best.json", "best_spec.txt", "pareto.json",
                                                      "pareto.png", "study.db"]
    result = invoke(args[:-4] + ["--trials", 6, "--out", out, "--json"])
    assert result.exit_code == 0, result.output
    assert "resuming study 'search': 4 of 6 trials complete" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["trials"] == {"complete": 6} and summary["new_trials"] == 2
    assert summary["storage"].startswith("sqlite:///") and summary["best"]["accuracy_kind"] == "estimated"


@pytest.mark.parametrize("args, fragment", [
    (["--space", "darts"], "unknown search space 'darts'"),
    (["--strategy", "evolution"], "unknown strategy 'evolution'; strategies: random, nsga2, tpe, rl"),
    (["--device", "pixel99"], "unknown device 'pixel99'"),
    (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot open study storage postgresql://nobody@127.0.0.1:1/none"),
    (["--budget-ms", 1], "no candidate of space 'mnasnet' meets 1 ms on pixel1-tflite-fp32-1big: the fastest is"),
    (["--space", "proxyless", "--objective", "hard", "--budget-ms", 68, "--trials", 2],
     "no candidate found under 68 ms; the fastest found is"),
])
def test_search_errors_are_one_line(tmp_path, args, fragment):
    options = {"--device": "pixel1", "--budget-ms": 60, "--trials": 1} | dict(zip(args[::2], args[1::2]))
    flat = [item for pair in options.items() for item in pair]
    result = invoke(flat + ["--out", tmp_path / "out"])
    one_line_error(result, fragment)


def test_ctrl_c_is_one_line_and_the_study_resumes(tmp_path):
    calls = []

    def interrupted(spec):
        calls.append(spec)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return toy(spec)

    args = ["--device", "pixel1", "--budget-ms", 60, "--trials", 3, "--out", tmp_path / "out"]
    result = invoke(args, interrupted)
    one_line_error(result, "interrupted: 1 of 3 trials complete in study 'search'")
    assert not (tmp_path / "out" / "pareto.json").exists()
    result = invoke(args + ["--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["trials"] == {"complete": 3, "fail": 1}


def test_dataset_errors_are_one_line(tmp_path):
    base = ["--device", "pixel1", "--budget-ms", 60, "--trials", 1, "--out", tmp_path / "out"]
    one_line_error(invoke(base + ["--dataset", tmp_path / "missing"], None), "dataset folder not found")
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    one_line_error(invoke(base + ["--dataset", tmp_path / "empty"], None), "no images in dataset folder")
    shapes.write_folder(tmp_path / "one", 3, 32, classes=("circle", "ring"))
    for extra in (tmp_path / "one" / "ring").iterdir():
        extra.rename(tmp_path / "one" / "circle" / f"r{extra.name}")
    one_line_error(invoke(base + ["--dataset", tmp_path / "one"], None), "has a single class ('circle')")
    one_line_error(invoke(base + ["--dataset", tmp_path / "one", "--accuracy", "estimated"], None),
                   "--dataset needs --accuracy proxy")


def test_estimated_accuracy_needs_no_training(tmp_path):
    result = invoke(["--device", "pixel1", "--objective", "pareto", "--strategy", "nsga2", "--trials", 5,
                     "--accuracy", "estimated", "--out", tmp_path / "out", "--json"], None)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["objective"] == "pareto" and summary["best"]["accuracy_kind"] == "estimated"
    assert "best.json" in " ".join(summary["files"])


def test_proxy_training_search_on_a_folder_dataset(tmp_path):
    """The real thing, tiny: two trials, each candidate trained 1 epoch at 32 px, width x0.25."""
    shapes.write_folder(tmp_path / "data", 60, 32, seed=1, classes=("circle", "square", "triangle"))
    result = invoke(["--device", "pixel1", "--budget-ms", 60, "--strategy", "random", "--trials", 2,
                     "--dataset", tmp_path / "data", "--epochs", 1, "--resolution", 32, "--images", 40,
                     "--proxy-width", 0.25, "--out", tmp_path / "out", "--json"], None)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    best = summary["best"]
    assert best["accuracy_kind"] == "measured" and 0 <= best["accuracy"] <= 100
    assert "proxy training on" in best["accuracy_source"] and "1 epoch at 32 px, width x0.25" in best["accuracy_source"]
    assert summary["num_classes"] == 3
    assert summary["evaluator"]["recipe"]["dataset"] == str(tmp_path / "data")


def test_folder_split_is_deterministic_and_keeps_every_class(tmp_path):
    shapes.write_folder(tmp_path / "data", 40, 32, seed=0, classes=("circle", "ring", "cross"))
    first = proxy_train.split_folder(tmp_path / "data", 0.25, seed=0)
    assert first == proxy_train.split_folder(tmp_path / "data", 0.25, seed=0)
    train, val, classes = first
    assert classes == ("circle", "cross", "ring")
    assert len(train) + len(val) == 40 and not {p for p, _ in train} & {p for p, _ in val}
    assert {label for _, label in val} == {0, 1, 2}
    assert proxy_train.split_folder(tmp_path / "data", 0.25, seed=1)[1] != val


def test_shapes_dataset_for_proxy_training():
    recipe = proxy_train.Recipe(resolution=32, train_images=30, val_images=10)
    data = proxy_train.load_dataset(recipe)
    assert data.x_train.shape == (30, 32, 32, 3) and data.x_val.shape == (10, 32, 32, 3)
    np.testing.assert_array_equal(data.x_val, shapes.classification(40, 32).images[30:])
    trainer = proxy_train.ProxyTrainer(recipe)
    assert trainer.num_classes == len(shapes.CLASSES)
    spec = proxy_train.proxy_spec(zoo.resolve("mobilenet_v2_100").spec, recipe.__class__(width=0.5, resolution=48))
    assert spec.resolution == 48 and spec.width == 0.5
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        proxy_train.Recipe(epochs=0)


def test_scale_table_and_json():
    result = invoke(["efficientnet_b0", "--phi", 2, "--device", "pixel1"], None, scale_command)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("efficientnet_b0: compound scaling") and len(lines) == 5
    result = invoke(["efficientnet_b0", "--phi", 2, "--device", "pixel1", "--json"], None, scale_command)
    rows = json.loads(result.stdout)["rows"]
    resolved = zoo.resolve("efficientnet_b0")
    assert rows[0]["params"] == layers.count(resolved.spec)[0] and rows[0]["resolution"] == 224
    assert [r["resolution"] for r in rows] == [224, 256, 296]
    assert rows[2]["spec"] == scaling.compound_scale(resolved.spec, 2, resolved.family.rule).encode()
    assert rows[0]["macs"] < rows[1]["macs"] < rows[2]["macs"]
    assert rows[0]["latency_ms"] < rows[1]["latency_ms"] < rows[2]["latency_ms"]
    one_line_error(invoke(["efficientnet_b9", "--phi", 1], None, scale_command), "unknown architecture 'efficientnet_b9'")
    inline = invoke(["res96 | conv_k3_s2_c16_re | ir_k3_s2_e3_c24_re | head:pool", "--phi", 1], None, scale_command)
    assert inline.exit_code == 0 and "custom" in inline.stdout
