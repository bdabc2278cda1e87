"""Hybrid convolution-attention blocks (EdgeNeXt, EfficientFormerV2): grammar, the walk's
attention counts, the walk against Keras, zoo fidelity and their pricing by every profile."""
import numpy as np
import pytest

from edgetailor.arch import layers, zoo
from edgetailor.arch.spec import Block, SpecError, decode, decode_block, from_dict
from edgetailor.latency import profiles
from edgetailor.latency.cost import op_features, op_from_key, op_key

HYBRID_ZOO = ["edgenext_xxs", "edgenext_xs", "edgenext_s", "efficientformerv2_s0", "efficientformerv2_s1",
              "efficientformerv2_s2", "efficientformerv2_l"]
EDGENEXT_TINY = ("res64 | patch_s4_c16,ln | convenc_k3_e4_c16 | ln,patch_s2_c24,convenc_k5_e4_c24,"
                 "sdta_e4_c24_h4_sc2_pe | ln,patch_s2_c40,sdta_e4_c40_h4_sc3 | head:pool,ln")
EFORMER_TINY = ("res64 | conv_k3_s2_c8_ge,conv_k3_s2_c16_ge | ffn_k3_e4_c16 | conv_k3_s2_c24_lin,ffn_k3_e3_c24"
                " | conv_k3_s2_c32_lin,attn_e4_c32_h2_kd8_sr2,ffn_k3_e4_c32"
                " | attn_s2_e4_c40_h2_kd8,attn_e2_c40_h2_kd8,ffn_k3_e4_c40 | head:pool")


@pytest.mark.parametrize("text", ["sdta_r2_e4_c96_h8_sc2_pe", "attn_e4_c96_h8_kd32_sr2", "attn_s2_e4_c176_h8_kd16",
                                  "patch_s4_c48", "ln", "convenc_r3_k3_e4_c48", "ffn_k3_e3_c96", "conv_k3_s2_c16_ge"])
def test_hybrid_blocks_round_trip(text):
    block = decode_block(text)
    assert decode_block(block.encode()) == block and block.encode() == text
    assert Block(**block.to_dict()) == block


@pytest.mark.parametrize("text", HYBRID_ZOO)
def test_zoo_specs_round_trip(text):
    spec = zoo.ZOO[text].spec
    assert decode(spec.encode()) == spec and from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("text, message", [
    ("sdta_e4_c96_h8_sc1", "splits must be in"), ("sdta_e4_c96_sc2", "needs its heads"),
    ("attn_e4_c96_h8", "needs its key dim"), ("attn_s2_e4_c96_h8_kd16_sr2", "attention stride"),
    ("patch_s3_c48", "stride must be 2 or 4"), ("ir_k3_e6_c24_h4", "ir blocks take no heads"),
    ("conv_k3_c16_pe", "conv blocks take no posenc"), ("ln_c16", "ln blocks take no channels"),
])
def test_bad_hybrid_tokens_are_errors(text, message):
    with pytest.raises(SpecError, match=message):
        decode_block(text)


def test_shape_errors_are_spec_errors():
    with pytest.raises(SpecError, match="keeps its channels"):
        layers.count(decode("res64 | conv_k3_s2_c16_re | convenc_k3_e4_c24 | head:pool"))
    with pytest.raises(SpecError, match="heads do not divide"):
        layers.count(decode("res64 | conv_k3_s2_c24_re | sdta_e4_c24_h5_sc2 | head:pool"))
    with pytest.raises(SpecError, match="divisible"):
        layers.count(decode("res62 | patch_s4_c16 | convenc_k3_e4_c16 | head:pool"))


def test_xca_counts_two_d_by_d_by_n_products_per_head():
    """c = 24, 4 heads (d = 6) on 8 x 8 tokens: q^T k and attn v are 6 * 6 * 64 MACs per head each."""
    ops = layers.xca_ops(4, (8, 8, 72))
    matmuls = [op for op in ops if op.kind == "matmul"]
    assert [op.macs for op in matmuls] == [4 * 6 * 6 * 64] * 2
    assert sum(op.params for op in ops) == 4  # one temperature per head
    assert [op.kind for op in ops] == ["l2norm", "matmul", "softmax", "matmul"]


def test_attention4d_counts_products_talking_heads_and_biases():
    """8 heads, key dim 32, values 128 on 7 x 7: N = 49."""
    q = k = (7, 7, 256)
    v = (7, 7, 1024)
    ops = layers.attention_ops(8, q, k, v, talking=True)
    n = 49
    assert sum(op.macs for op in ops) == n * n * 256 + 2 * n * n * 8 * 8 + n * n * 1024
    assert sum(op.params for op in ops) == 8 * 49 + 2 * (8 * 8 + 8)  # biases: 7 x 7 offsets per head
    down = layers.attention_ops(8, (7, 7, 128), (14, 14, 128), (14, 14, 512), talking=False)
    assert sum(op.params for op in down) == 8 * 196  # |2a - b| takes 14 values per axis
    assert layers.attention_bias_offsets(7, 14) == 196 and layers.attention_bias_offsets(4, 4) == 16


@pytest.mark.parametrize("name", HYBRID_ZOO)
def test_zoo_entries_match_their_tables(name):
    """Params within 2 % of the table where it gives a figure we can meet, MACs within 5 %, top-1 cited."""
    entry = zoo.ZOO[name]
    pub = entry.published
    params, macs = layers.count(entry.spec)
    assert abs(macs / 1e6 / pub.macs_m - 1) <= 0.05, f"MACs {macs / 1e6:.1f} M vs {pub.macs_m}"
    if pub.params_m is None:
        assert "M without" in pub.note and "distillation head" in pub.note
    else:
        assert abs(params / 1e6 / pub.params_m - 1) <= 0.02, f"params {params / 1e6:.3f} M vs {pub.params_m}"
    assert 70 < pub.top1 < 84 and pub.device_ms and all(ms > 0 for _, ms in pub.device_ms)


@pytest.mark.parametrize("text", [EDGENEXT_TINY, EFORMER_TINY])
def test_walk_matches_keras_on_tiny_hybrids(text):
    from edgetailor.builder import network as builder

    spec = decode(text)
    walked = layers.walk(spec, 10)
    model = builder.build(spec, 10)
    assert model.count_params() == sum(layer.keras_params for layer in walked)
    assert builder.keras_macs(model) == sum(layer.macs for layer in walked)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    assert np.isfinite(model(x).numpy()).all()


def _hybrid_ops():
    ops = [op for text in (EDGENEXT_TINY, EFORMER_TINY) for layer in layers.walk(decode(text)) for op in layer.ops]
    return [op for op in ops if op.kind in ("matmul", "softmax", "layernorm", "l2norm") or op.act == "gelu"]


def test_every_profile_prices_every_attention_op_above_zero():
    ops = _hybrid_ops()
    assert {op.kind for op in ops} >= {"matmul", "softmax", "layernorm", "l2norm", "act", "conv"}
    for profile in profiles.shipped():
        for op in ops:
            assert op_features(op) @ profile.coefficients > 0, (profile.name, op_key(op))


def test_matmul_keys_rebuild_their_macs():
    for op in _hybrid_ops():
        if op.kind == "matmul":
            assert op_from_key(op_key(op)).macs == op.macs



def test_a_resolution_the_attention_strides_do_not_fit_is_refused_by_the_walk():
    # 112 px leaves a 7x7 map that EfficientFormerV2's stride-2 attention brings back as 8x8: the
    # builder could not add it to its residual, so the walk (and latency) refuse it in one line
    with pytest.raises(SpecError, match="residual add of maps 8x8x48 and 7x7x48"):
        layers.walk(zoo.resolve("efficientformerv2_s0", 0.5, 112).spec)
    assert layers.walk(zoo.resolve("efficientformerv2_s0", 0.5, 128).spec)
