"""The spec grammar: exact round trips, strict errors that name the token and its position."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetailor.arch import zoo
from edgetailor.arch.spec import ArchSpec, Block, SpecError, decode, decode_block, from_json

ACTS = ["relu", "relu6", "hswish", "swish", "linear"]
RATIOS = st.sampled_from([1.0, 2.3, 2.5, 3.0, 3.66667, 4.5, 6.0])


@st.composite
def blocks(draw):
    kind = draw(st.sampled_from(["conv", "ds", "ir", "fused", "skip", "ghost", "shuffle", "maxpool"]))
    fields = {"kind": kind}
    if kind != "maxpool":
        fields["repeats"] = draw(st.integers(1, 5))
        fields["stride"] = draw(st.sampled_from([1, 2]))
        fields["channels"] = draw(st.integers(1, 64)) * 2
    if kind not in ("skip",):
        fields["kernel"] = draw(st.sampled_from([1, 3, 5, 7]))
    if kind == "maxpool":
        fields["stride"] = draw(st.sampled_from([1, 2]))
    if kind in ("ir", "fused", "ghost"):
        fields["expand"] = draw(RATIOS)
    if kind in ("ir", "fused", "ds", "ghost") and draw(st.booleans()):
        fields["se"] = draw(st.sampled_from([0.125, 0.25, 0.5]))
        fields["hard_se"] = kind == "ghost" or (kind == "ir" and draw(st.booleans()))
    if kind == "ir":
        fields["groups"] = draw(st.sampled_from([1, 2]))
        fields["keep_expand"] = draw(st.booleans())
    if kind in ("ir", "fused"):
        fields["residual"] = draw(st.booleans())
    if kind in ("conv", "ds", "ir", "fused", "skip", "shuffle"):
        fields["act"] = draw(st.sampled_from(ACTS))
    return Block(**fields)


@st.composite
def archs(draw):
    stages = draw(st.lists(st.lists(blocks(), min_size=1, max_size=3), min_size=1, max_size=4))
    head = [Block("conv", kernel=1, channels=draw(st.integers(8, 256)), act="relu"), Block("pool")]
    if draw(st.booleans()):
        head.append(Block("fc", channels=draw(st.integers(8, 256)), act=draw(st.sampled_from(ACTS))))
    return ArchSpec(stem=(Block("conv", stride=2, channels=16, act="hswish"),), stages=stages,
                    head=head, resolution=draw(st.integers(16, 512)),
                    width=draw(st.sampled_from([0.35, 0.5, 1.0, 1.4])),
                    depth=draw(st.sampled_from([1.0, 1.1, 3.1])),
                    divisor=draw(st.sampled_from([4, 8])))


@settings(max_examples=200, deadline=None)
@given(blocks())
def test_block_string_round_trips(block):
    assert decode_block(block.encode()) == block
    assert decode_block(block.encode()).encode() == block.encode()


@settings(max_examples=100, deadline=None)
@given(archs())
def test_arch_string_and_json_round_trip(spec):
    assert decode(spec.encode()) == spec
    assert from_json(spec.to_json()) == spec
    assert decode(decode(spec.encode()).encode()).encode() == spec.encode()


@pytest.mark.parametrize("name", [e.name for e in zoo.entries()])
def test_every_zoo_spec_round_trips(name):
    spec = zoo.ZOO[name].spec
    assert decode(spec.encode()) == spec
    assert from_json(json.dumps(spec.to_dict())) == spec


def test_issue_example_parses():
    block = decode_block("ir_r2_k5_s2_e3_c40_se0.25_hs")
    assert (block.kind, block.repeats, block.kernel, block.stride, block.expand, block.channels,
            block.se, block.act) == ("ir", 2, 5, 2, 3.0, 40, 0.25, "hswish")
    assert block.encode() == "ir_r2_k5_s2_e3_c40_se0.25_hs"


@pytest.mark.parametrize("text, message", [
    ("ir_k3_x5_c4", "unknown token 'x5' at token 2 of 'ir_k3_x5_c4'"),
    ("irx_k3_c4", "unknown block kind 'irx' at token 0"),
    ("conv_k3_e6_c8", "token 'e6' at token 2 of 'conv_k3_e6_c8': conv blocks take no expand"),
    ("ir_k3_c8_c16", "duplicate channels token 'c16' at token 3"),
    ("ir_k4_c8", "kernel must be 1, 3, 5, 7 or 9 (got 4)"),
    ("ir_k3_s3_c8", "stride must be 1 or 2 (got 3)"),
    ("ir_k3_e6", "ir block needs its output channels"),
    ("ir_k3_c8.5", "unknown token 'c8.5'"),
    ("ghost_k3_e3_c16_se0.25", "write hse, not se"),
    ("ir_k3_c8_se1.5", "se ratio must be in [0, 1)"),
])
def test_malformed_blocks_name_the_problem(text, message):
    with pytest.raises(SpecError) as info:
        decode_block(text)
    assert message in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("res224 | conv_k3_s2_c16_re | head:pool", "needs 'res<px> | stem | stage... | head:...'"),
    ("r224 | conv_k3_s2_c16_re | ir_k3_c16 | head:pool", "unknown header token 'r224'"),
    ("res224 | conv_k3_s2_c16_re | ir_k3_c16 | pool", "must start with 'head:'"),
    ("res224 | conv_k3_s2_c16_re | ir_k3_c16 | head:conv_k1_c8_re", "exactly one global 'pool'"),
    ("res224 | conv_k3_s2_c16_re | ir_k3_c16,pool | head:pool", "belong in the head"),
    ("res224 | conv_k3_s2_c16_re | ir_k3_c16,ir_k9x_c8 | head:pool",
     "unknown token 'k9x' at token 1 of 'ir_k9x_c8' in stage 1, block 2"),
    ("res2 | conv_k3_s2_c16_re | ir_k3_c16 | head:pool", "resolution must be in [4, 2048]"),
])
def test_malformed_architectures_name_the_problem(text, message):
    with pytest.raises(SpecError) as info:
        decode(text)
    assert message in str(info.value)


def test_json_rejects_unknown_keys():
    data = zoo.ZOO["mobilenet_v2_100"].spec.to_dict()
    data["stages"][0][0]["colour"] = "red"
    with pytest.raises(SpecError, match="unknown keys \\['colour'\\]"):
        from_json(json.dumps(data))
    with pytest.raises(SpecError, match="does not parse"):
        from_json("{not json")


def test_specs_are_frozen_and_hashable():
    spec = zoo.ZOO["mnasnet_a1_100"].spec
    with pytest.raises(Exception):
        spec.resolution = 192
    assert len({spec, decode(spec.encode())}) == 1
