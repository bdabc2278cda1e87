"""One-op TFLite models of the hybrid networks' ops: the intended builtins, allocated and run for real."""
import math

import numpy as np
import pytest
import tensorflow as tf

from edgetailor.arch import zoo
from edgetailor.arch.layers import Op, walk
from edgetailor.latency.cost import op_key
from edgetailor.profiling.hybrid_tflite_ops import HYBRID_OP_KINDS
from edgetailor.profiling.tflite_ops import op_model

NO_DELEGATE = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
HYBRID = ("edgenext_xxs", "efficientformerv2_s0")


def _ops(name: str, resolution: int = 64) -> dict[str, Op]:
    spec = zoo.resolve(name, resolution=resolution).spec
    return {op_key(op): op for layer in walk(spec) for op in layer.ops}


def _run(op: Op, inputs=None, delegate: bool = False):
    """(builtin op names, outputs, inputs) of ``op``'s model run on random (or given) inputs."""
    kwargs = {} if delegate else {"experimental_op_resolver_type": NO_DELEGATE}
    interpreter = tf.lite.Interpreter(model_content=op_model(op), **kwargs)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(1)
    details = interpreter.get_input_details()
    inputs = inputs or [rng.uniform(-1, 1, d["shape"]).astype(np.float32) for d in details]
    for detail, value in zip(details, inputs):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    names = [o["op_name"] for o in interpreter._get_ops_details()]
    return names, [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()], inputs


def _first(name: str, kind: str, **match) -> Op:
    return next(op for op in _ops(name).values()
                if op.kind == kind and all(getattr(op, k) == v for k, v in match.items()))


@pytest.mark.parametrize("name", HYBRID)
def test_every_op_of_the_hybrid_walks_has_a_model_that_runs_with_xnnpack(name):
    ops = _ops(name)
    assert {"softmax", "matmul"} <= {op.kind for op in ops.values()}
    for op in ops.values():
        _, outputs, _ = _run(op, delegate=True)  # as the host times it
        assert all(np.isfinite(out).all() for out in outputs), op_key(op)


def test_the_two_walks_cover_every_hybrid_op_kind():
    kinds = {op.kind for name in HYBRID for op in _ops(name).values()}
    assert set(HYBRID_OP_KINDS) | {"act", "avgpool"} <= kinds


def test_gelu_is_the_builtin_after_a_conv_and_alone():
    conv = _first("efficientformerv2_s0", "conv", act="gelu")
    assert _run(conv)[0] == ["CONV_2D", "GELU"]
    act = _first("efficientformerv2_s0", "act", act="gelu")
    names, (y,), (x,) = _run(act)
    assert names == ["GELU"]
    erf = np.vectorize(math.erf)
    np.testing.assert_allclose(y, 0.5 * x * (1 + erf(x / math.sqrt(2))), atol=1e-4)  # exact, not tanh


def test_layernorm_normalises_each_pixel_over_its_channels():
    op = _first("edgenext_xxs", "layernorm")
    names, (y,), (x,) = _run(op)
    assert names == ["MEAN", "SQUARED_DIFFERENCE", "MEAN", "ADD", "RSQRT", "MUL", "MUL", "SUB", "MUL", "ADD"]
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-6), atol=1e-4)


def test_softmax_runs_over_the_keys_of_each_head():
    op = _first("efficientformerv2_s0", "softmax")
    names, (y,), _ = _run(op)
    rows, cols, heads = op.in_shape
    assert names == ["SOFTMAX"] and y.shape == (1, heads, rows, cols)
    np.testing.assert_allclose(y.sum(-1), 1, atol=1e-5)


def test_l2norm_normalises_q_and_k_over_the_tokens():
    op = _first("edgenext_xxs", "l2norm")
    names, outputs, (x,) = _run(op)
    assert names.count("L2_NORMALIZATION") == 2 and names[0] == "SPLIT"
    h, w, c3 = op.in_shape
    q = x.reshape(1, h * w, c3)[..., : c3 // 3].transpose(0, 2, 1)
    np.testing.assert_allclose(outputs[0], q / np.linalg.norm(q, axis=-1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(outputs[1], axis=-1), 1, atol=1e-5)


def test_attention_products_match_numpy_on_the_heads_layout():
    """EfficientFormerV2: q [1, H, W, C] . k [1, N, C] per head (scaled), then attention . v back to
    the map; XCA: the d x d attention . v with tokens as columns."""
    scores = next(op for op in _ops("efficientformerv2_s0").values()
                  if op.kind == "matmul" and op.out_shape[2] == op.groups and not op.bias)
    names, (y,), (q, k) = _run(scores)
    heads, d = scores.groups, scores.kernel
    assert names.count("BATCH_MATMUL") == 1 and names[-1] == "MUL"
    qh = q.reshape(1, -1, heads, d).transpose(0, 2, 1, 3)
    kh = k.reshape(1, -1, heads, d).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(y, qh @ kh * d ** -0.5, rtol=1e-4, atol=1e-5)
    for name in HYBRID:
        values = next(op for op in _ops(name).values()
                      if op.kind == "matmul" and op.out_shape[2] != op.groups and not op.bias)
        names, (y,), (attention, v) = _run(values)
        heads, m, k = values.groups, values.in_shape[0], values.kernel
        h, w, c = values.out_shape
        assert "BATCH_MATMUL" in names and y.shape == (1, h, w, c)
        if h * w == m:  # tokens are the rows (EfficientFormerV2)
            expected = (attention @ v.reshape(1, k, heads, -1).transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
        else:  # tokens are the columns (XCA)
            expected = (attention @ v.reshape(1, -1, heads, k).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        np.testing.assert_allclose(y, expected.reshape(1, h, w, c), rtol=1e-4, atol=1e-5)


def test_talking_heads_mix_heads_at_every_query_key_pair():
    op = next(op for op in _ops("efficientformerv2_s0").values() if op.kind == "matmul" and op.bias)
    names, (y,), _ = _run(op)
    rows, cols, heads = op.in_shape
    assert names == ["TRANSPOSE", "FULLY_CONNECTED", "TRANSPOSE"] and y.shape == (1, heads, rows, cols)


def test_upsample_scale_and_avgpool_are_their_builtins():
    upsample = _first("efficientformerv2_s0", "upsample")
    names, (y,), _ = _run(upsample)
    assert names == ["RESIZE_BILINEAR"] and y.shape == (1, *upsample.out_shape)
    assert _run(_first("edgenext_xxs", "scale"))[0] == ["MUL"]
    assert _run(_first("efficientformerv2_s0", "avgpool"))[0] == ["AVERAGE_POOL_2D"]


@pytest.mark.slow  # times ~100 one-op models (a few seconds)
def test_host_profile_of_a_hybrid_model_comes_from_its_measured_table(tmp_path):
    from edgetailor.latency import profiles
    from edgetailor.profiling import host

    spec = zoo.resolve("edgenext_xxs", resolution=64).spec
    ops = list(_ops("edgenext_xxs").values())
    measured = host.measure_ops(ops, tmp_path / "ops.jsonl")
    document = host.host_profile(ops, measured, host._empty_model_ms(1), 1, "zoo:edgenext_xxs@64")
    breakdown = profiles.from_dict(document, "test").predict(spec)
    assert {layer.source for layer in breakdown.layers} == {"table"} and breakdown.total_ms > 0
