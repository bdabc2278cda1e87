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
from edgetailor.latency.kernel_predictor import IDENTITY_NETWORK, NETWORK_TERMS, Kernel, detect_kernels, network_terms
from edgetailor.profiling import kernels as kernel_space
from edgetailor.profiling import kernels_fit
from edgetailor.profiling.host import read_journal
from edgetailor.profiling.kernels import _padded_dwconv_model, fused, kernel_model, make_kernel, neighbours
from edgetailor.profiling.kernels_fit import measure_kernels
from edgetailor.profiling.tflite_ops import op_model
from edgetailor.profiling.timing import interleaved_best_ms

SPEC = decode("res32 | conv_k3_s2_c16_hs | ir_k5_s2_e3_c24_hse0.25_hs,ir_k3_e6_c24_se0.25_sw"
              " | head:conv_k1_c96_re,pool,fc_c128_hs")


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    """``model`` on ``x``; a second input (a residual add's skip) gets 0.5 everywhere."""
    interpreter = tf.lite.Interpreter(model_content=model)
    interpreter.allocate_tensors()
    first, *others = interpreter.get_input_details()
    interpreter.set_tensor(first["index"], x)
    for other in others:
        interpreter.set_tensor(other["index"], np.full(other["shape"], 0.5, np.float32))
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


def test_interleaved_timing_gives_each_model_its_own_best_of():
    small = make_kernel("add", 4, 8, 8, (1, 1, "linear", False))
    large = make_kernel("conv", 48, 32, 64, (3, 1, "relu", False))
    two_inputs = kernel_model(Kernel("concat", Op("concat", (8, 8, 12), (8, 8, 32))))  # 12 + 12 + 8 channels
    models = [kernel_model(small), kernel_model(large), kernel_model(small), two_inputs]
    timed = interleaved_best_ms(models, 1, passes=3, window_s=0.005)
    assert len(timed) == 4 and 0 < timed[0] < timed[1] and 0 < timed[2] < timed[1] and 0 < timed[3] < timed[1]
    concat = tf.lite.Interpreter(model_content=two_inputs)
    concat.allocate_tensors()
    assert tuple(concat.get_output_details()[0]["shape"]) == (1, 8, 8, 32)  # the width the op claims


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
                        "TREES": {"random_forest": 8, "gradient_boosting": 20},
                        "NETWORKS_PER_SPACE": 1, "NETWORK_CAP": 4, "NETWORK_MIN": 3,
                        "NETWORK_MAX_MS": 60.0}.items():
        monkeypatch.setattr(kernels_fit, name, value)
    monkeypatch.setitem(kernels_fit.NETWORK_TIMING, "min_span_s", 0.0)  # the mechanism, not the timing's quality
    out = tmp_path / "host.json"
    args = ["profile", "measure", "--space", "proxyless", "--archs", "1", "--end-to-end", "0", "--kernels",
            "--out", str(out), "--json"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    entry = json.loads(out.read_text())["kernel_predictor"]
    assert entry["file"] == "host.json.kernels.npz" and entry["kernels_measured"] > 50
    assert entry["in_network"]["networks"] >= 3 and "leave_one_out_mape_pct" in entry["in_network"]
    assert json.loads(out.read_text())["expected_error_pct"] == entry["in_network"]["leave_one_out_mape_pct"]
    spec = spaces.get("proxyless").decode(spaces.get("proxyless").sample(np.random.default_rng(3))[0])
    breakdown = profiles.load_file(out).predict(spec)
    assert {layer.source for layer in breakdown.layers} == {"kernels"} and breakdown.total_ms > 0
    lines = (tmp_path / "host.json.kernels.jsonl").read_text()
    again = CliRunner().invoke(main, args)  # everything measured: nothing timed again
    assert again.exit_code == 0, again.output
    assert (tmp_path / "host.json.kernels.jsonl").read_text() == lines
    assert profiles.load_file(out).predict(spec).total_ms == breakdown.total_ms


def test_a_network_model_runs_its_kernels_in_order():
    kernels = detect_kernels(walk(SPEC))
    x = np.random.default_rng(0).normal(size=(1, *kernels[0].op.in_shape)).astype(np.float32)
    expected = x
    for kernel in kernels:  # each kernel's own model, fed what the one before wrote
        expected = _run(kernel_model(kernel), expected)
    np.testing.assert_allclose(_run(kernel_space.network_model(kernels), x), expected, rtol=1e-4, atol=1e-5)


def test_in_network_terms_are_fitted_on_whole_networks_and_scored_without_each():
    predictor = kernels_fit._fit_all(*_synthetic_kernels())
    rng = np.random.default_rng(0)
    checked = {"conv": 1.3, "dwconv": 1.1, "elementwise": 0.9, "conv_x_log_weights": 0.05, "weight_mb": 0.02}
    truth = np.array([{**checked, "kernel": 0.001}.get(term, 1.0 if term in ("se", "pool", "attention") else 0.0)
                      for term in NETWORK_TERMS])
    networks = []
    for _ in range(20):
        kernels = list(rng.choice(_synthetic_kernels()[0], 12, replace=False))
        terms = network_terms(kernels, predictor.kernel_ms(kernels)).sum(axis=0)
        networks.append((kernels, predictor.overhead_ms + terms @ truth))
    coefficients, report = kernels_fit.fit_network(predictor, networks)
    fitted = dict(zip(NETWORK_TERMS, coefficients))
    assert all(fitted[term] == pytest.approx(value, rel=1e-3) for term, value in checked.items()), fitted
    assert report["networks"] == 20 and report["leave_one_out_mape_pct"] < 0.5
    assert report["plain_sum_mape_pct"] > 5
    identity, few = kernels_fit.fit_network(predictor, networks[:5])
    assert np.array_equal(identity, IDENTITY_NETWORK) and "fewer than" in few["note"]


def _synthetic_kernels():
    kernels = [make_kernel("pwconv", hw, c, 2 * c, (1, 1, "relu", False)) for hw in (8, 16, 28) for c in (16, 32, 64)]
    kernels += [make_kernel("dwconv", hw, c, c, (3, 1, "relu6", False)) for hw in (8, 16, 28) for c in (16, 32, 64)]
    kernels += [make_kernel("add", hw, c, c, (1, 1, "linear", False)) for hw in (8, 16, 28) for c in (16, 32, 64)]
    ms = {k.key: 1e-3 * (1 + k.features()[5]) for k in kernels}
    return kernels, ms, "random_forest"
