"""Each block kind's one definition: hand-checked widths, and agreement with the layer walk."""
import pytest

from edgetailor.arch import blocks, layers, spec, zoo
from edgetailor.arch.spec import SpecError, decode_block

ONE_OF_EACH = {
    "conv": "conv_k3_s2_c16_re", "ds": "ds_k3_c32_se0.25_re", "ir": "ir_k5_e6_c24_hse0.25_hs",
    "fused": "fused_k3_e4_c24_se0.25_sw", "skip": "skip_s2_c32_re", "ghost": "ghost_k3_s2_e3_c24",
    "shuffle": "shuffle_k3_s2_c48_re", "maxpool": "maxpool_k3_s2", "pool": "pool",
    "fc": "fc_c10_lin",
    "act": "act_re", "xblock": "xblock_s2_c32_gw8", "gghost": "gghost_r3_s2_c32_gw8",
    "nasnormal": "nasnormal_c16", "nasreduce": "nasreduce_s2_c16",
    "ln": "ln", "patch": "patch_s4_c16", "convenc": "convenc_k3_e4_c16", "sdta": "sdta_e4_c16_h4_sc2_pe",
    "ffn": "ffn_k3_e4_c16", "attn": "attn_s2_e4_c32_h2_kd8",
    "uconv": "uconv_k3_e4_c24_hse0.25_ge", "ldsm": "ldsm_s2_c32", "lgdsm": "lgdsm_s2_c32_h2", "mhsa": "mhsa_e2_c16_h2",
}


def _steps(text: str, in_channels: int, divisor: int = 8):
    return blocks.block_steps(decode_block(text), in_channels, divisor)


def _width(steps, name: str) -> int:
    return next(step.channels for step in steps if step.name == name)


def test_every_kind_of_the_grammar_has_a_definition():
    assert set(ONE_OF_EACH) == set(spec._KIND_FIELDS)  # a new kind must be defined here too
    for text in ONE_OF_EACH.values():
        assert blocks.block_steps(decode_block(text), 16)


def test_expanded_width_rounds_to_the_divisor_except_ir_at_e1():
    assert _width(_steps("ir_k3_e6_c24_re", 16), "expand") == 96
    assert _width(_steps("ir_k3_e4.25_c24_re", 12), "expand") == 48            # 51 to 8
    assert _width(_steps("ir_k3_e4.25_c24_re", 12, divisor=4), "expand") == 52  # 51 to 4
    assert [s.op for s in _steps("ir_k3_e1_c12_re", 12)] == ["dwconv", "conv", "add"]
    assert _width(_steps("ir_k3_e1_c12_xe_re", 12), "expand") == 12      # xe keeps the input width
    assert _width(_steps("ghost_k3_e1_c16", 12), "ghost1_primary") == 8  # ghost rounds 12 to 16


def test_se_widths_follow_each_convention():
    tpu = _steps("ir_k3_e6_c24_se0.25_sw", 16)    # int(16 input channels * 0.25)
    v3 = _steps("ir_k3_e6_c24_hse0.25_hs", 16)    # make_divisible(96 expanded * 0.25)
    assert (_width(tpu, "se"), _width(v3, "se")) == (4, 24)
    assert [(s.act, s.gate) for s in tpu + v3 if s.op == "se"] == [("swish", "sigmoid"),
                                                                   ("relu", "hsigmoid")]


def test_ghost_module_splits_primary_and_cheap_halves():
    steps = _steps("ghost_k3_e3_c15", 16)         # mid 48 = 24 + 24; out 15 = first 15 of 8 + 8
    assert _width(steps, "ghost1_primary") == 24 and not any(s.name == "ghost1_keep" for s in steps)
    assert _width(steps, "ghost2_primary") == 8 and _width(steps, "ghost2_keep") == 15
    assert [s.name for s in steps][-3:] == ["short_dw", "short_pw", "add"]  # projection shortcut


def test_shuffle_branches_take_half_the_channels():
    down = _steps("shuffle_k3_s2_c48_re", 24)
    assert [s.channels for s in down if s.op == "conv"] == [24, 24, 24]
    assert down[0].inputs == ("in",) and down[-2].inputs == ("left", "x")
    assert _steps("shuffle_k3_c48_re", 48)[0].outputs == ("left", "x")
    with pytest.raises(SpecError, match="even channels"):
        _steps("shuffle_s2_c15_re", 16)
    with pytest.raises(SpecError, match="keeps its channels"):
        _steps("shuffle_c32_re", 16)


@pytest.mark.parametrize("text, in_channels, expected", [
    ("ir_k3_e6_c16_re", 16, True), ("ir_k3_e6_c16_noskip_re", 16, False),
    ("ir_k3_s2_e6_c16_re", 16, False), ("ir_k3_e6_c24_re", 16, False),
    ("fused_k3_e4_c16_sw", 16, True), ("ghost_k3_s2_e3_c24", 16, True),
    ("ds_k3_c16_re", 16, False), ("skip_c16", 16, False),
])
def test_residual(text, in_channels, expected):
    assert blocks.has_residual(decode_block(text), in_channels) is expected
    assert any(s.op == "add" for s in _steps(text, in_channels)) is expected


@pytest.mark.parametrize("name", [entry.name for entry in zoo.entries()])
def test_walk_reports_the_widths_of_the_steps(name):
    """Each step becomes one walk op (four for squeeze-excite) of the step's width."""
    entry = zoo.ZOO[name]
    for layer in layers.walk(entry.spec, None):
        if layer.block.kind in ("ln", "convenc", "sdta", "ffn", "attn", "lgdsm", "mhsa"):
            continue  # attention steps are several ops each: tests/arch/test_hybrid_blocks.py, test_uninet.py
        ops = list(layer.ops)
        prev = layers.prev_state(layer.prev_shape, layer.in_shape)  # a NASNet cell's second input
        for step in blocks.block_steps(layer.block, layer.in_shape[2], entry.spec.divisor, prev):
            if step.op == "se":
                pool, reduce, expand, mul = ops[:4]
                assert (pool.kind, mul.kind, reduce.out_shape[2]) == ("pool", "mul", step.channels)
                assert expand.out_shape[2] == pool.in_shape[2]
                del ops[:4]
                continue
            if step.op == "sep":  # NASNet's separable conv: dw (no bias, no BN), then 1x1 + BN
                dw, pw = ops[:2]
                assert (dw.kind, dw.bn, pw.kind, pw.out_shape[2]) == ("dwconv", False, "conv", step.channels)
                del ops[:2]
                continue
            if layer.block.kind in blocks.CELL_KINDS and step.op in ("act", "avgpool", "maxpool") and \
                    (not ops or ops[0].kind != step.op):
                continue  # fused or run once: test_nasnet_cells_run_each_relu_and_pool_once
            op = ops.pop(0)
            assert op.kind == {"keep": "split", "tail": "split", "bn": "scale"}.get(step.op, step.op)
            if step.op == "conv":
                assert (op.out_shape[2], op.kernel, op.stride, op.groups) == (
                    step.channels, step.kernel, step.stride, step.groups)
        assert not ops


def test_nasnet_cells_run_each_relu_and_pool_once():
    """As the converted model does: a normal cell after a cell runs ReLU on its input once (its
    second input was ReLU'd by the cell before), once per state its separable branches read (h0,
    h1), fuses the ReLU between a branch's two separable convs into the first one's pointwise
    conv (five branches), and its three 3x3 average pools on two states are two pools."""
    cells = [layer for layer in layers.walk(zoo.ZOO["nasnet_a_mobile"].spec, None)
             if layer.block.kind == "nasnormal" and layer.prev_shape == layer.in_shape]
    assert cells
    for layer in cells:
        kinds = [(op.kind, op.act) for op in layer.ops]
        assert kinds.count(("act", "relu")) == 3
        assert sum(op.kind == "conv" and op.act == "relu" for op in layer.ops) == 5
        assert kinds.count(("avgpool", "linear")) == 2
