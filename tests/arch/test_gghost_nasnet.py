"""G-GhostNet (RegNet X blocks, G-Ghost stages) and NASNet-A cells: grammar, widths, walk vs Keras, zoo."""
import numpy as np
import pytest

from edgetailor.arch import blocks, layers, zoo
from edgetailor.arch.spec import SpecError, decode, decode_block, from_json
from edgetailor.latency import profiles
from edgetailor.latency.cost import layer_key, op_features

NEW_ENTRIES = ["g_ghost_regnetx_3_2gf", "g_ghost_regnetx_4_0gf", "g_ghost_regnetx_8_0gf",
               "g_ghost_regnetx_16_0gf", "nasnet_a_mobile"]
TINY_NASNET = ("res32_div1 | conv_k3_s2_c8_lin,nasreduce_s2_c4,nasreduce_s2_c6 | nasnormal_r2_c8"
               " | nasreduce_s2_c16,nasnormal_c16 | head:act_re,pool")
TINY_GGHOST = ("res32 | conv_k3_s2_c16_re | xblock_r2_s2_c16_gw8 | gghost_r4_s2_c32_gw8 | xblock_s2_c48_gw16"
               " | head:pool")


@pytest.mark.parametrize("text", [TINY_NASNET, TINY_GGHOST] + [zoo.ZOO[n].spec.encode() for n in NEW_ENTRIES])
def test_round_trips_as_text_and_json(text):
    spec = decode(text)
    assert decode(spec.encode()) == spec and from_json(spec.to_json()) == spec


@pytest.mark.parametrize("text, message", [
    ("gghost_r2_s2_c192_gw48", "at least 3 blocks"),
    ("xblock_s2_c96", "needs its group width"),
    ("nasreduce_c44", "stride 2"),
    ("nasreduce_r2_s2_c44", "nasreduce blocks take no repeats"),
    ("nasnormal_c44_gw8", "nasnormal blocks take no group_width"),
    ("nasnormal_s2_c44", "nasnormal blocks take no stride"),
    ("act_re_c8", "act blocks take no channels"),
    ("xblock_c96_gw48_re6", "xblock blocks take no act"),
    ("gghost_r3_c96_gw4x", "unknown token 'gw4x'"),
])
def test_strict_grammar(text, message):
    with pytest.raises(SpecError, match=message):
        decode_block(text)


def test_g_ghost_widths_follow_the_reference_rule():
    # Stage(cheap_ratio=0.5): group width int(48 * 0.75) = 36, raw = int(192 * 0.5 / 36) * 36 = 72
    assert blocks.gghost_widths(192, 48) == (72, 120, 36)
    assert blocks.gghost_widths(896, 128) == (384, 512, 96)
    with pytest.raises(SpecError, match="no intrinsic channels"):
        blocks.gghost_widths(8, 16)


def test_g_ghost_stage_counts_by_hand():
    stage = layers.block_cost(decode_block("gghost_r3_s2_c8_gw4"), (8, 8, 4), name="s")
    raw, cheap = 3, 5  # inner group width int(4 * 0.75) = 3, raw = int(4 / 3) * 3
    x = lambda cin, c, groups: cin * c + 9 * c * c // groups + c * c + 6 * c  # noqa: E731  3 convs + BN
    base = x(4, 8, 2) + 4 * 8 + 2 * 8           # + the 1x1 stride-2 projection shortcut
    mix = (8 + raw) * cheap + cheap * cheap + 4 * cheap
    assert stage.params == base + x(raw, raw, 1) + mix + cheap * cheap + 2 * cheap + x(8, 8, 2)
    assert stage.out_shape == (4, 4, 8)


def test_nasnet_cell_outputs_and_second_input():
    spec = decode(TINY_NASNET)
    walked = {layer.name: layer for layer in layers.walk(spec, None)}
    assert walked["stem.1"].prev_shape is None                     # after the conv: no h_{i-1}
    assert walked["stem.2"].prev_shape == (16, 16, 8)              # the stem conv's output
    assert walked["stage1.0"].out_shape == (4, 4, 48)              # normal: 6 x 8 filters
    assert walked["stage2.0"].out_shape == (2, 2, 64)              # reduction: 4 x 16 filters
    # a larger h_{i-1} is factorized (two shifted stride-2 paths), a wider one a 1x1
    kinds = lambda name: [op.kind for op in walked[name].ops]  # noqa: E731
    assert kinds("stage1.0").count("shift") == 1 and kinds("stage1.1").count("shift") == 0
    assert layer_key(walked["stage1.1"]).endswith("@4x4x48+4x4x24")  # the key names h_{i-1} too
    sep = next(op for op in walked["stage1.1"].ops if op.kind == "dwconv")
    assert not sep.bn and not sep.bias and sep.params == sep.kernel ** 2 * sep.in_shape[2]


def test_nasnet_a_is_4_at_1056():
    spec = zoo.ZOO["nasnet_a_mobile"].spec
    cells = [b for b in spec.stem + spec.blocks if b.kind.startswith("nas")]
    assert [(b.kind, b.repeats, b.channels) for b in cells] == [
        ("nasreduce", 1, 11), ("nasreduce", 1, 22), ("nasnormal", 4, 44), ("nasreduce", 1, 88),
        ("nasnormal", 4, 88), ("nasreduce", 1, 176), ("nasnormal", 4, 176)]
    assert layers.walk(spec, None)[-1].in_shape == (7, 7, 1056)


@pytest.mark.parametrize("name", NEW_ENTRIES)
def test_zoo_entry_matches_its_table(name):
    pub = zoo.ZOO[name].published
    params, macs = layers.count(zoo.ZOO[name].spec)
    assert abs(params / 1e6 / pub.params_m - 1) <= 0.02 and abs(macs / 1e6 / pub.macs_m - 1) <= 0.05
    assert "table" in pub.source.lower() and 70 < pub.top1 < 80


def test_published_latencies_are_references_with_sources():
    refs = zoo.ZOO["nasnet_a_mobile"].published.device_ms
    assert refs and all(ms > 0 and ("Table" in where or "@" in where) for where, ms in refs)
    assert all(not zoo.ZOO[n].published.device_ms for n in NEW_ENTRIES if n.startswith("g_ghost"))


def test_every_new_op_is_priced_by_every_profile():
    ops = {}
    for text in (TINY_NASNET, TINY_GGHOST):
        for layer in layers.walk(decode(text)):
            for op in layer.ops:
                if op.kind in ("act", "avgpool", "shift", "maxpool") or (op.kind == "dwconv" and not op.bn) \
                        or (op.kind == "conv" and op.groups > 1) or op.in_shape[:2] != op.out_shape[:2]:
                    ops.setdefault((op.kind, op.kernel, op.groups > 1, op.in_shape[:2] == (1, 1)), op)
    assert {key[0] for key in ops} >= {"act", "avgpool", "shift", "maxpool", "dwconv", "conv"}
    for profile in profiles.shipped():
        priced = {key: float(op_features(op) @ profile.coefficients) for key, op in ops.items()}
        assert all(ms > 0 for ms in priced.values()), (profile.name, priced)


@pytest.mark.parametrize("text", [TINY_NASNET, TINY_GGHOST])
def test_walk_matches_keras_at_tiny_size(text):
    from edgetailor.builder import network as builder

    spec = decode(text)
    walked = layers.walk(spec, 10)
    model = builder.build(spec, 10)
    assert model.count_params() == sum(layer.keras_params for layer in walked)
    assert builder.keras_macs(model) == sum(layer.macs for layer in walked)
    assert np.isfinite(model(np.zeros((1, 32, 32, 3), "float32")).numpy()).all()


@pytest.mark.slow  # builds Keras' own NASNetMobile (about as long as a conversion here)
def test_nasnet_a_mobile_has_keras_applications_parameter_count():
    import tensorflow as tf

    keras_model = tf.keras.applications.NASNetMobile(weights=None)  # built locally, nothing downloaded
    walked = layers.walk(zoo.ZOO["nasnet_a_mobile"].spec)
    assert keras_model.count_params() == sum(layer.keras_params for layer in walked) == 5_326_716
