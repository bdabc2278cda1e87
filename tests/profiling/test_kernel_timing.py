"""One-kernel TFLite models run for real; kernel timings resume from their journal."""
import json

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from edgetailor.arch import spaces
from edgetailor.arch.layers import Op, dwconv_op, walk
from edgetailor.arch.spec import decode
from edgetailor.cli.main import main
from edgetailor.latency import profiles
from edgetailor.latency.kernel_predictor import detect_kernels
from edgetailor.profiling import kernels_fit
from edgetailor.profiling.host import read_journal
from edgetailor.profiling.kernels import _padded_dwconv_model, fused, kernel_model, make_kernel, neighbours
from edgetailor.profiling.kernels_fit import measure_kernels
from edgetailor.profiling.tflite_ops import op_model

SPEC = decode("res32 | conv_k3_s2_c16_hs | ir_k5_s2_e3_c24_hse0.25_hs,ir_k3_e6_c24_se0.25_sw"
              " | head:conv_k1_c96_re,pool,fc_c128_hs")


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    interpreter = tf.lite.Interpreter(model_content=model)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_every_kernel_of_a_network_builds_a_model_of_its_shape():
    kernels = {k.key: k for k in detect_kernels(walk(SPEC))}
    assert {"se", "dwconv", "swish", "hswish"} <= {k.type for k in kernels.values()}
    for kernel in kernels.values():
        out = _run(kernel_model(kernel), np.ones((1, *kernel.op.in_shape), np.float32))
        assert out.shape == (1, *kernel.op.out_shape), kernel.key


def test_pad_then_valid_depthwise_computes_what_same_padding_does():
    op = dwconv_op((15, 15, 8), 5, 2)
    x = np.random.default_rng(0).normal(size=(1, 15, 15, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(_padded_dwconv_model(op), x), _run(op_model(op), x), atol=1e-5)


def test_kernel_timings_resume_from_the_journal(tmp_path):
    journal = tmp_path / "k.jsonl"
    kernels = [make_kernel("add", 4, 8, 8, (1, 1, "linear", False)),
               make_kernel("hswish", 4, 8, 8, (1, 1, "hswish", False)),
               make_kernel("pool", 4, 8, 8, (1, 1, "linear", False))]
    done = measure_kernels(kernels, journal, 1, {})
    assert set(done) == {k.key for k in kernels} and all(ms > 0 for ms in done.values())
    lines = journal.read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == [k.key for k in kernels]
    measure_kernels(kernels, journal, 1, read_journal(journal, 1))  # nothing new to time
    assert journal.read_text().splitlines() == lines
    journal.write_text("\n".join(lines[:2]) + "\n" + lines[2][:15])  # a run killed mid-write
    said = []
    resumed = read_journal(journal, 1, said.append)
    assert set(resumed) == {kernels[0].key, kernels[1].key} and "cut-off" in said[0]
    measure_kernels(kernels, journal, 1, resumed)
    assert [json.loads(line)["key"] for line in journal.read_text().splitlines()] == [k.key for k in kernels]


def test_neighbours_keep_the_kernels_choices_and_stay_near():
    kernel = make_kernel("dwconv", 28, 96, 96, (5, 2, "relu6", True))
    around = neighbours(kernel, 20, np.random.default_rng(0))
    assert len(around) == 20
    assert all((k.op.kernel, k.op.stride, k.op.act, k.padded) == (5, 2, "relu6", True) for k in around)
    assert all(0.4 < k.op.in_shape[0] / 28 < 2.5 and k.op.in_shape[2] % 4 == 0 for k in around)
    assert neighbours(make_kernel("add", 4, 8, 8, (1, 1, "linear", False)), 3, np.random.default_rng(0))
    assert neighbours(type(kernel)("matmul", Op("matmul", (4, 4, 8), (4, 4, 2), kernel=8)), 3,
                      np.random.default_rng(0)) == []


def test_the_fusion_rule_is_nn_meters():
    assert fused([0.2754, 0.0497], 0.2832)      # conv + relu, measured: one kernel
    assert not fused([0.2817, 0.0507], 0.3309)  # conv + hard-swish, measured: two


def test_kernels_with_int8_is_refused_in_one_line(tmp_path):
    result = CliRunner().invoke(main, ["profile", "measure", "--kernels", "--precision", "int8",
                                       "--out", str(tmp_path / "host.json")])
    assert result.exit_code == 1 and "drop --kernels or --precision int8" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # times ~150 kernels and a few dozen ops (about half a minute)
def test_profile_measure_kernels_builds_a_predictor_the_profile_uses_and_resumes(tmp_path, monkeypatch):
    for name, value in {"OBSERVED_PER_TYPE": 2, "SOBOL": {}, "SOBOL_OTHER": 2, "ROUNDS": 1, "ROUND_FRESH": 24,
                        "ROUND_CAP": 5, "HELD_OUT": 24,
                        "POOL_NETWORKS": {"train": 1, "check": 1, "held_out": 1},
                        "TREES": {"random_forest": 8, "gradient_boosting": 20}}.items():
        monkeypatch.setattr(kernels_fit, name, value)
    out = tmp_path / "host.json"
    args = ["profile", "measure", "--space", "proxyless", "--archs", "1", "--end-to-end", "0", "--kernels",
            "--out", str(out), "--json"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    entry = json.loads(out.read_text())["kernel_predictor"]
    assert entry["file"] == "host.json.kernels.npz" and entry["kernels_measured"] > 50
    spec = spaces.get("proxyless").decode(spaces.get("proxyless").sample(np.random.default_rng(3))[0])
    breakdown = profiles.load_file(out).predict(spec)
    assert {layer.source for layer in breakdown.layers} == {"kernels"} and breakdown.total_ms > 0
    lines = (tmp_path / "host.json.kernels.jsonl").read_text()
    again = CliRunner().invoke(main, args)  # everything measured: nothing timed again
    assert again.exit_code == 0, again.output
    assert (tmp_path / "host.json.kernels.jsonl").read_text() == lines
    assert profiles.load_file(out).predict(spec).total_ms == breakdown.total_ms
