"""UniNet (convolution blocks, local / local-global downsampling modules, transformer blocks):
grammar, each block's ops, the attention counts, zoo fidelity against the reference's own figures,
and their pricing by every profile. The walk against Keras: tests/arch/test_zoo.py builds uninet_b0 (every
UniNet block but a uconv at e1 that keeps its width, whose identity add the expanding ones share);
tests/converters/test_uninet_convert.py builds UNINET_TINY."""
import math

import numpy as np
import pytest

from edgetailor.arch import blocks, layers, zoo
from edgetailor.arch.spec import Block, SpecError, decode, decode_block, from_dict
from edgetailor.latency import profiles
from edgetailor.latency.cost import op_features, op_key

UNINET_ZOO = ["uninet_b0", "uninet_b1", "uninet_b2", "uninet_b3", "uninet_b4"]
# Every UniNet block at 32 px: a widening uconv at e1 (max-pool shortcut), one at e1 keeping its width,
# an expanding one (BN first), both DSMs (local-global at stride 1 and 2) and transformer blocks.
UNINET_TINY = ("res32 | conv_k3_s2_c8_ge | uconv_k3_e1_c16_hse0.25_ge,uconv_k3_e1_c16_hse0.25_ge"
               " | ldsm_s2_c16,uconv_k3_e2_c16_hse0.25_ge | lgdsm_c16_h2,mhsa_e2_c16_h2"
               " | lgdsm_s2_c24_h2,mhsa_e2_c24_h2 | head:conv_k1_c32_ge,pool")
# Sense-X/UniNet uninet.py @e7fbb3d, each constructor's comment: parameters (M) and fvcore FLOPs (M) at
# its input size.
REFERENCE = {"uninet_b0": (11.451, 555), "uninet_b1": (11.451, 1118), "uninet_b2": (16.211, 2159),
             "uninet_b3": (24.02, 4258), "uninet_b4": (43.796, 9429)}


@pytest.mark.parametrize("text", ["uconv_r4_k3_e6_c80_hse0.25_ge", "uconv_k3_e1_c24_hse0.25_ge", "ldsm_s2_c48",
                                  "lgdsm_c128_h4", "lgdsm_s2_c256_h8", "mhsa_r8_e5_c256_h8"])
def test_uninet_blocks_round_trip(text):
    block = decode_block(text)
    assert decode_block(block.encode()) == block and block.encode() == text
    assert Block(**block.to_dict()) == block


@pytest.mark.parametrize("name", UNINET_ZOO)
def test_zoo_specs_round_trip(name):
    spec = zoo.ZOO[name].spec
    assert decode(spec.encode()) == spec and from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("text, message", [
    ("uconv_s2_k3_e4_c48", "uconv blocks take no stride"), ("lgdsm_s2_c256", "needs its heads"),
    ("mhsa_e2_c128", "needs its heads"), ("ldsm_s2_c48_h2", "ldsm blocks take no heads"),
    ("mhsa_k3_e2_c128_h4", "mhsa blocks take no kernel"), ("ldsm_s3_c48", "stride must be 1 or 2"),
])
def test_bad_uninet_tokens_are_errors(text, message):
    with pytest.raises(SpecError, match=message):
        decode_block(text)


def test_shape_errors_are_spec_errors():
    with pytest.raises(SpecError, match="keeps its channels"):
        layers.count(decode("res64 | conv_k3_s2_c16_re | mhsa_e2_c32_h2 | head:pool"))
    with pytest.raises(SpecError, match="heads do not divide"):
        layers.count(decode("res64 | conv_k3_s2_c24_re | mhsa_e2_c24_h5 | head:pool"))
    with pytest.raises(SpecError, match="heads do not divide"):
        layers.count(decode("res64 | conv_k3_s2_c24_re | lgdsm_s2_c40_h3 | head:pool"))


def test_uconv_norms_the_input_only_when_it_expands_and_widens_through_a_max_pool():
    expanding = blocks.block_steps(decode_block("uconv_k3_e4_c48_hse0.25_ge"), 48)
    assert [s.op for s in expanding] == ["bn", "conv", "dwconv", "se", "conv", "add"]
    assert [s.channels for s in expanding if s.op in ("conv", "se")] == [192, 48, 48]  # SE: 192 / 4
    widening = blocks.block_steps(decode_block("uconv_k3_e1_c24_hse0.25_ge"), 32)
    assert [s.op for s in widening] == ["dwconv", "se", "conv", "maxpool", "conv", "add"]
    pool, short = widening[3:5]
    assert (pool.kernel, pool.stride, pool.inputs, short.bn, short.channels) == (3, 1, ("in",), False, 24)
    ops = layers.block_cost(decode_block("uconv_k3_e4_c48_hse0.25_ge"), (10, 10, 48)).ops
    assert (ops[0].kind, ops[0].params, ops[0].bn) == ("scale", 96, True)  # BN: gamma, beta (+ moving stats)


def test_downsampling_modules_pool_only_when_strided():
    assert [s.op for s in blocks.block_steps(decode_block("ldsm_s2_c48"), 24)] == [
        "dwconv", "conv", "maxpool", "conv", "add"]
    local_global = blocks.block_steps(decode_block("lgdsm_c128_h4"), 128)
    assert "maxpool" not in [s.op for s in local_global]
    attend = next(s for s in local_global if s.op == "mhsa")
    assert attend.inputs == ("q", "kv") and attend.groups == 4
    strided = layers.block_cost(decode_block("lgdsm_s2_c256_h8"), (10, 10, 128))
    assert strided.out_shape == (5, 5, 256)


def test_token_attention_counts_two_products_and_no_parameters():
    """Self-attention of 4 heads on 10 x 10 tokens of 128 channels: q.k^T and attn.v are 100 x 100 x 128
    MACs each; the local-global DSM's 5 x 5 queries on 10 x 10 keys of 256: 25 x 100 x 256 each."""
    self_ops = layers.token_attention_ops(4, [(10, 10, 384)])
    assert [op.kind for op in self_ops] == ["matmul", "softmax", "matmul"]
    assert [op.macs for op in self_ops] == [100 * 100 * 128, 0, 100 * 100 * 128]
    cross = layers.token_attention_ops(8, [(5, 5, 256), (10, 10, 512)])
    assert sum(op.macs for op in cross) == 2 * 25 * 100 * 256 and cross[-1].out_shape == (5, 5, 256)
    assert sum(op.params for op in self_ops + cross) == 0
    with pytest.raises(SpecError, match="twice"):
        layers.token_attention_ops(8, [(5, 5, 256), (10, 10, 256)])


@pytest.mark.parametrize("name", UNINET_ZOO)
def test_zoo_entries_match_the_reference_figures(name):
    """Params within 2 %, MACs within 5 % of the cited figure. And op for op: with the convolution
    biases we fold into a batch norm added back (uconv's projection, the DSMs' dw convs), our count
    rounds to the reference's comment; and the count fvcore makes (MACs plus 2 per batch-norm
    element, 5 per layer-norm element, 1 per pooled input element: its batchnorm, layer_norm and
    adaptive_avg_pool2d handles) is within 0.1 % of the comment's FLOPs."""
    entry = zoo.ZOO[name]
    pub = entry.published
    walked = layers.walk(entry.spec)
    params, macs = layers.totals(walked)
    assert abs(params / 1e6 / pub.params_m - 1) <= 0.02, f"params {params / 1e6:.3f} M vs {pub.params_m}"
    assert abs(macs / 1e6 / pub.macs_m - 1) <= 0.05, f"MACs {macs / 1e6:.1f} M vs {pub.macs_m}"
    folded = sum(layer.block.channels if layer.block.kind == "uconv" else layer.in_shape[2]
                 for layer in walked if layer.block.kind in ("uconv", "ldsm", "lgdsm"))
    reference_params, reference_flops = REFERENCE[name]
    assert round((params + folded) / 1e6, 3) == reference_params
    norms = 0
    for op in (op for layer in walked for op in layer.ops):
        norms += 2 * math.prod(op.out_shape) if op.bn else 0
        norms += 5 * math.prod(op.out_shape) if op.kind == "layernorm" else 0
        norms += math.prod(op.in_shape) if op.kind == "pool" else 0
    assert abs((macs + norms) / 1e6 / reference_flops - 1) <= 0.001
    assert pub.top1 is None or pub.top1 == 81.0


def test_every_profile_prices_every_uninet_op_above_zero():
    ops = [op for layer in layers.walk(decode(UNINET_TINY)) for op in layer.ops
           if op.kind in ("matmul", "softmax", "layernorm", "scale", "maxpool") or op.act == "gelu"]
    assert {op.kind for op in ops} >= {"matmul", "softmax", "layernorm", "scale", "maxpool"}
    for profile in profiles.shipped():
        for op in ops:
            assert op_features(op) @ profile.coefficients > 0, (profile.name, op_key(op))


def _softmax_attention(q, k, v, heads):
    """numpy reference of one example: tokens x channels, each head's d channels contiguous."""
    d = q.shape[-1] // heads
    out = []
    for h in range(heads):
        part = slice(h * d, (h + 1) * d)
        scores = q[:, part] @ k[:, part].T / np.sqrt(d)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        out.append(weights / weights.sum(-1, keepdims=True) @ v[:, part])
    return np.concatenate(out, -1)


def test_token_attention_layer_is_per_head_softmax_attention():
    """The Keras layer on a q|k|v map and on (strided q, k|v), against numpy on PyTorch's layout
    (reshape(B, N, 3 or 2, heads, d)), within 1e-5."""
    from edgetailor.builder.attention_layers import TokenAttention

    rng = np.random.default_rng(0)
    qkv = rng.normal(size=(1, 4, 4, 3 * 16)).astype(np.float32)
    q_map, kv = rng.normal(size=(1, 2, 2, 16)).astype(np.float32), rng.normal(size=(1, 4, 4, 32)).astype(np.float32)
    tokens = qkv.reshape(16, 48)
    expected = _softmax_attention(tokens[:, :16], tokens[:, 16:32], tokens[:, 32:], 2).reshape(1, 4, 4, 16)
    assert np.abs(TokenAttention(2)(qkv).numpy() - expected).max() < 1e-5
    kv_tokens = kv.reshape(16, 32)
    expected = _softmax_attention(q_map.reshape(4, 16), kv_tokens[:, :16], kv_tokens[:, 16:], 2)
    assert np.abs(TokenAttention(2)([q_map, kv]).numpy() - expected.reshape(1, 2, 2, 16)).max() < 1e-5
