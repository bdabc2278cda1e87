"""Each block kind, defined once: its op sequence with resolved channels, in graph order.

``block_steps(block, in_channels, divisor)`` is read by the layer walk
(``edgetailor.arch.layers``: shapes, parameters, MACs) and by the builder
(``edgetailor.builder.network``: tf.keras layers). The width rules live only here: the expanded
width and its ``divisor`` rounding, the squeeze-excite width (``se`` from the block's input,
``hse`` from the expanded width), GhostNet's primary/cheap split, the shuffle unit's halves and
when a shortcut is added.

Steps read and write named tensors: ``"x"`` the running one, ``"in"`` the block's input, and a
second branch where a block has one (``"left"`` of a shuffle unit, ``"primary"`` of a ghost module,
``"short"`` of a ghost projection shortcut). A NASNet cell also reads ``"prev"``, the previous
block's input (NASNet's hidden state h_{i-1}), when that block was a cell too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from edgetailor.arch.scaling import make_divisible
from edgetailor.arch.spec import Block, SpecError


@dataclass(frozen=True)
class Step:
    """One op of a block; ``name`` is its Keras layer name after ``<section>_<index>_``.

    ``op`` is one of: ``conv`` (k x k, ``groups``, + BN; with a bias and no BN when ``bn`` is
    False), ``dwconv`` (depthwise k x k + BN), ``se`` (squeeze-excite to ``channels``, ``act``
    inside, ``gate`` on the output), ``shuffle`` (channel shuffle of ``groups``), ``split`` (into
    ``groups`` equal parts, one per output), ``keep`` (the first ``channels``), ``concat`` and
    ``add`` (of ``inputs``, in order), ``maxpool`` (k x k, "same"), ``pool`` (global average).
    Hybrid blocks add (``edgetailor.arch.blocks`` bottom): ``ln`` (layer norm over channels),
    ``scale`` (layer scale: one learned factor per channel), ``act`` (``act`` alone),
    ``avgpool`` (k x k, stride), ``upsample`` (bilinear, x ``stride``), ``posenc`` (Fourier
    positional encoding projected to the channels and added), ``splitdw`` (EdgeNeXt's chained
    depth-wise 3x3 convs on ``groups`` splits of ``channels`` width), ``xca`` (cross-covariance
    attention of ``groups`` heads on a q|k|v tensor) and ``attend`` / ``attend_down``
    (EfficientFormerV2's attention of ``groups`` heads on (q, k, v), with / without talking heads).
    A ``dwconv`` with ``bn`` False has a bias and no BN.
    G-GhostNet and NASNet add ``tail`` (the last ``channels``), ``sep`` (NASNet's separable conv:
    dw k x k with neither bias nor BN, then 1x1 to ``channels`` + BN) and ``shift`` (drop the
    first row and column, zero-pad after the last: the second path of a factorized reduction).
    UniNet adds ``bn`` (BatchNorm alone, on a block's input) and ``mhsa`` (softmax attention of
    ``groups`` heads on a q|k|v map, or on a q map and a k|v map of the same width).
    """

    op: str
    name: str
    channels: int = 0
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    act: str = "linear"
    gate: str = ""
    bn: bool = True
    inputs: tuple[str, ...] = ("x",)
    outputs: tuple[str, ...] = ("x",)


def _conv(name: str, channels: int, kernel: int = 1, stride: int = 1, act: str = "linear",
          groups: int = 1, src: str = "x", dst: str = "x") -> Step:
    return Step("conv", name, channels, kernel, stride, groups, act, inputs=(src,), outputs=(dst,))


def _dw(name: str, kernel: int, stride: int = 1, act: str = "linear", src: str = "x",
        dst: str = "x") -> Step:
    return Step("dwconv", name, kernel=kernel, stride=stride, act=act, inputs=(src,),
                outputs=(dst,))


def _expanded(in_channels: int, expand: float, divisor: int) -> int:
    """Mid (expanded) channels: ``in * expand`` rounded to ``divisor`` (as tensorflow/tpu)."""
    return make_divisible(in_channels * expand, divisor)


def _keeps_shape(block: Block, in_channels: int) -> bool:
    """Stride 1 and the input's width out: an identity shortcut (or skip) fits."""
    return block.stride == 1 and in_channels == block.channels


def _se(block: Block, in_channels: int, mid: int, divisor: int) -> list[Step]:
    """The block's squeeze-excite on ``mid`` channels, if it has one."""
    if not block.se:
        return []
    if block.hard_se:  # MobileNetV3 / GhostNet: from the expanded width, ReLU, hard sigmoid
        squeeze = make_divisible(mid * block.se, divisor)
        return [Step("se", "se", squeeze, act="relu", gate="hsigmoid")]
    # MnasNet / EfficientNet: from the block's input width, block activation, sigmoid
    return [Step("se", "se", max(1, int(in_channels * block.se)), act=block.act, gate="sigmoid")]


def _ds(block: Block, cin: int, divisor: int) -> list[Step]:
    return [_dw("dw", block.kernel, block.stride, block.act), *_se(block, cin, cin, divisor),
            _conv("pw", block.channels, act=block.act)]


def _inverted_residual(block: Block, cin: int, divisor: int) -> list[Step]:
    steps, mid = [], cin
    if block.expand != 1 or block.keep_expand:  # FBNet's ``xe`` keeps the 1x1 conv at e1
        mid = _expanded(cin, block.expand, divisor) if block.expand != 1 else cin
        steps.append(_conv("expand", mid, act=block.act, groups=block.groups))
        if block.groups > 1:  # grouped 1x1 convs need the shuffle to mix groups (ShuffleNet)
            steps.append(Step("shuffle", "shuffle", groups=block.groups))
    steps.append(_dw("dw", block.kernel, block.stride, block.act))
    steps += _se(block, cin, mid, divisor)
    return steps + [_conv("project", block.channels, groups=block.groups)]


def _fused(block: Block, cin: int, divisor: int) -> list[Step]:
    if block.expand == 1:  # a single k x k conv straight to the output width
        return [_conv("conv", block.channels, block.kernel, block.stride, block.act),
                *_se(block, cin, block.channels, divisor)]
    mid = _expanded(cin, block.expand, divisor)
    return [_conv("expand", mid, block.kernel, block.stride, block.act),
            *_se(block, cin, mid, divisor), _conv("project", block.channels)]


def _ghost_module(name: str, out_channels: int, act: str) -> list[Step]:
    """GhostNet's module: 1x1 conv to ceil(out/2), cheap 3x3 dw on it, concat, keep ``out``."""
    primary = math.ceil(out_channels / 2)
    steps = [_conv(f"{name}_primary", primary, act=act, dst="primary"),
             _dw(f"{name}_cheap", 3, act=act, src="primary"),
             Step("concat", f"{name}_concat", inputs=("primary", "x"))]
    if 2 * primary != out_channels:
        steps.append(Step("keep", f"{name}_keep", out_channels))
    return steps


def _ghost(block: Block, cin: int, divisor: int) -> list[Step]:
    mid = _expanded(cin, block.expand, divisor)  # rounded even at e1, unlike ir
    steps = _ghost_module("ghost1", mid, "relu")
    if block.stride > 1:
        steps.append(_dw("dw", block.kernel, block.stride))
    steps += _se(block, cin, mid, divisor)
    return steps + _ghost_module("ghost2", block.channels, "linear")


def _shuffle(block: Block, cin: int, divisor: int) -> list[Step]:
    """ShuffleNetV2 unit: half the output channels on each branch, concat, channel shuffle."""
    if block.channels % 2:
        raise SpecError(f"shuffle blocks need even channels (got {block.channels})")
    half = block.channels // 2
    if block.stride == 1:  # the left half passes through untouched
        if cin != block.channels:
            raise SpecError(
                f"a stride-1 shuffle unit keeps its channels ({cin} -> {block.channels})")
        left = [Step("split", "split", groups=2, outputs=("left", "x"))]
    else:  # downsampling unit: both branches work on the whole input
        left = [_dw("b1_dw", block.kernel, block.stride, src="in", dst="left"),
                _conv("b1_pw", half, act=block.act, src="left", dst="left")]
    right = [_conv("b2_pw1", half, act=block.act), _dw("b2_dw", block.kernel, block.stride),
             _conv("b2_pw2", half, act=block.act)]
    return left + right + [Step("concat", "concat", inputs=("left", "x")),
                           Step("shuffle", "shuffle", groups=2)]


def _skip(block: Block, cin: int, divisor: int) -> list[Step]:
    if _keeps_shape(block, cin):
        return []  # FBNet's skip is free when the shape holds
    return [_conv("conv", block.channels, 1, block.stride, block.act)]


_KINDS = {
    "conv": lambda b, cin, div: [_conv("conv", b.channels, b.kernel, b.stride, b.act)],
    "ds": _ds,
    "ir": _inverted_residual,
    "fused": _fused,
    "skip": _skip,
    "ghost": _ghost,
    "shuffle": _shuffle,
    "maxpool": lambda b, cin, div: [Step("maxpool", "maxpool", kernel=b.kernel, stride=b.stride)],
    "pool": lambda b, cin, div: [Step("pool", "pool")],
    "fc": lambda b, cin, div: [Step("conv", "fc", b.channels, act=b.act, bn=False)],
}


# --- hybrid convolution-attention blocks ------------------------------------------------------
# EdgeNeXt: mmaaz60/EdgeNeXt models/conv_encoder.py, sdta_encoder.py, edgenext.py @e7dd814.
# EfficientFormerV2: snap-research/EfficientFormer models/efficientformer_v2.py @bdde63a. Convolution
# biases followed by BN (the reference keeps nn.Conv2d's default bias) are left out: BN's beta
# absorbs them exactly.
def _same_width(block: Block, cin: int) -> None:
    if block.stride == 1 and cin != block.channels:
        raise SpecError(f"a stride-1 {block.kind} block keeps its channels ({cin} -> {block.channels})")


def _mlp(name: str, cin: int, expand: float, src: str = "x", dst: str = "") -> list[Step]:
    """LN + Linear(e*c) + GELU + Linear(c) on tokens = 1x1 convs with biases (EdgeNeXt), from
    ``src`` into ``dst`` (default: in place)."""
    dst = dst or src
    return [Step("ln", f"{name}norm", inputs=(src,), outputs=(dst,)),
            Step("conv", f"{name}pw1", int(cin * expand), act="gelu", bn=False, inputs=(dst,), outputs=(dst,)),
            Step("conv", f"{name}pw2", cin, bn=False, inputs=(dst,), outputs=(dst,))]


def _residual(name: str = "", src: str = "x", dst: str = "in") -> list[Step]:
    """Layer scale on ``src`` (learned per-channel factor, init 1e-6 / 1e-5), then ``src + dst``."""
    return [Step("scale", f"{name}ls", inputs=(src,), outputs=(src,)),
            Step("add", f"{name}add", inputs=(src, dst))]


def _convenc(block: Block, cin: int, divisor: int) -> list[Step]:
    """EdgeNeXt ConvEncoder: dw k x k (bias, no BN), LN, 1x1 e*c GELU, 1x1 c, layer scale, + input."""
    _same_width(block, cin)
    return [Step("dwconv", "dw", kernel=block.kernel, bn=False), *_mlp("", cin, block.expand),
            *_residual()]


def _sdta(block: Block, cin: int, divisor: int) -> list[Step]:
    """EdgeNeXt SDTAEncoder: split into ``scales`` parts of ceil(c / scales) channels, chained dw 3x3
    on all but the last, [positional encoding], x + ls * XCA(LN(x)), then the inverted bottleneck."""
    _same_width(block, cin)
    if cin % block.heads:
        raise SpecError(f"sdta: {block.heads} heads do not divide {cin} channels")
    steps = [Step("splitdw", "split", math.ceil(cin / block.scales), kernel=3, groups=block.scales)]
    if block.posenc:
        steps.append(Step("posenc", "pos"))
    steps += [Step("ln", "xca_norm", inputs=("x",), outputs=("t",)),
              Step("conv", "xca_qkv", 3 * cin, bn=False, inputs=("t",), outputs=("t",)),
              Step("xca", "xca", groups=block.heads, inputs=("t",), outputs=("t",)),
              Step("conv", "xca_proj", cin, bn=False, inputs=("t",), outputs=("t",)),
              *_residual("xca_", "t", "x")]
    return steps + [*_mlp("", cin, block.expand), *_residual()]


def _ffn(block: Block, cin: int, divisor: int) -> list[Step]:
    """EfficientFormerV2 FFN (Mlp with mid_conv): 1x1 + BN + GELU, dw + BN + GELU, 1x1 + BN,
    layer scale, + input. Hidden width int(c * e), unrounded as in the reference."""
    _same_width(block, cin)
    return [_conv("fc1", int(cin * block.expand), act="gelu"), _dw("mid", block.kernel, act="gelu"),
            _conv("fc2", cin), *_residual()]


def _attn(block: Block, cin: int, divisor: int) -> list[Step]:
    """EfficientFormerV2 Attention4D (stride 1; ``sr2``: on a dw 3x3 stride-2 map, upsampled back)
    with layer scale and residual, or Attention4DDownsample + conv 3x3 s2 + BN (stride 2)."""
    qk, v = block.heads * block.key_dim, int(block.expand * block.key_dim) * block.heads
    if block.stride == 1:
        _same_width(block, cin)
        steps = [_dw("stride", 3, block.attn_stride, dst="t")] if block.attn_stride > 1 else []
        src = "t" if steps else "x"
        steps += [_conv("q", qk, src=src, dst="q"), _conv("k", qk, src=src, dst="k"),
                  _conv("v", v, src=src, dst="v"), _dw("v_local", 3, src="v", dst="vl"),
                  Step("attend", "attend", groups=block.heads, inputs=("q", "k", "v")),
                  Step("add", "local_add", inputs=("x", "vl"))]
        if block.attn_stride > 1:
            steps.append(Step("upsample", "upsample", stride=block.attn_stride))
        return steps + [Step("act", "proj_act", act="gelu"), _conv("proj", cin), *_residual()]
    # LGQuery: dw 3x3 s2 (bias, no BN) + 1x1 stride-2 pooling, then 1x1 + BN
    return [Step("dwconv", "q_local", kernel=3, stride=2, bn=False, inputs=("in",), outputs=("q",)),
            Step("avgpool", "q_pool", kernel=1, stride=2, inputs=("in",), outputs=("qp",)),
            Step("add", "q_add", inputs=("q", "qp"), outputs=("q",)),
            _conv("q", qk, src="q", dst="q"), _conv("k", qk, src="in", dst="k"),
            _conv("v", v, src="in", dst="v"), _dw("v_local", 3, 2, src="v", dst="vl"),
            Step("attend_down", "attend", groups=block.heads, inputs=("q", "k", "v")),
            Step("add", "local_add", inputs=("x", "vl")), Step("act", "proj_act", act="gelu"),
            _conv("proj", block.channels), _conv("conv", block.channels, 3, 2, src="in", dst="short"),
            Step("add", "add", inputs=("x", "short"))]


_KINDS.update({
    "ln": lambda b, cin, div: [Step("ln", "ln")],
    "patch": lambda b, cin, div: [Step("conv", "conv", b.channels, b.stride, b.stride, bn=False)],
    "convenc": _convenc,
    "sdta": _sdta,
    "ffn": _ffn,
    "attn": _attn,
})


# --- G-GhostNet: RegNet X blocks and G-Ghost stages ---------------------------------------------
# huawei-noah/Efficient-AI-Backbones g_ghost_pytorch/g_ghost_regnet.py @71a0ef7 (Bottleneck, Stage).
GGHOST_CHEAP_RATIO = 0.5   # Stage(cheap_ratio=0.5): every published model
GGHOST_INNER_WIDTH = 0.75  # the middle blocks' group width: int(group_width * 0.75)


def _xblock(prefix: str, cin: int, planes: int, group_width: int, stride: int, src: str,
            dst: str) -> list[Step]:
    """RegNet X block (bottleneck ratio 1): 1x1, 3x3 in ``planes // min(planes, gw)`` groups
    (with the stride), 1x1; + input, or + 1x1 (stride) + BN when the shape changes; ReLU."""
    groups = planes // min(planes, group_width)
    steps = [_conv(f"{prefix}conv1", planes, act="relu", src=src),
             _conv(f"{prefix}conv2", planes, 3, stride, "relu", groups), _conv(f"{prefix}conv3", planes)]
    short = src
    if stride != 1 or cin != planes:
        short = f"{prefix}short"
        steps.append(_conv(short, planes, stride=stride, src=src, dst=short))
    return steps + [Step("add", f"{prefix}add", inputs=("x", short)),
                    Step("act", f"{prefix}relu", act="relu", outputs=(dst,))]


def gghost_widths(planes: int, group_width: int) -> tuple[int, int, int]:
    """(intrinsic, cheap, inner group width) channels of a G-Ghost stage of ``planes`` channels."""
    inner_gw = int(group_width * GGHOST_INNER_WIDTH)
    raw = int(planes * (1 - GGHOST_CHEAP_RATIO) / inner_gw) * inner_gw if inner_gw else 0
    if raw < 1:
        raise SpecError(f"a G-Ghost stage of {planes} channels and group width {group_width} "
                        f"leaves no intrinsic channels")
    return raw, planes - raw, inner_gw


def _gghost(block: Block, cin: int, divisor: int) -> list[Step]:
    """G-Ghost stage: X block to ``c`` channels ("base"); its first ``raw`` channels go through
    r - 2 X blocks; the other ``cheap`` channels through a 1x1 + BN ("cheap" operation) plus the
    "mix": global pool of base and every middle output, 1x1 + BN + ReLU, 1x1 + BN, broadcast-added,
    ReLU; concat (last middle output, cheap part) and a last X block at full width."""
    raw, cheap, inner_gw = gghost_widths(block.channels, block.group_width)
    steps = _xblock("base_", cin, block.channels, block.group_width, block.stride, "in", "base")
    steps.append(Step("keep", "raw_keep", raw, inputs=("base",), outputs=("raw0",)))
    middles = [f"raw{i}" for i in range(1, block.repeats - 1)]
    for i, name in enumerate(middles, start=1):
        steps += _xblock(f"{name}_", raw, raw, inner_gw, 1, f"raw{i - 1}", name)
    steps += [Step("concat", "mix_concat", inputs=("base", *middles), outputs=("mix",)),
              Step("pool", "mix_pool", inputs=("mix",), outputs=("mix",)),
              _conv("mix_conv1", cheap, act="relu", src="mix", dst="mix"),
              _conv("mix_conv2", cheap, src="mix", dst="mix"),
              Step("tail", "cheap_tail", cheap, inputs=("base",), outputs=("cheap",)),
              _conv("cheap_conv", cheap, src="cheap", dst="cheap"),
              Step("add", "cheap_add", inputs=("mix", "cheap"), outputs=("cheap",)),
              Step("act", "cheap_relu", act="relu", inputs=("cheap",), outputs=("cheap",)),
              Step("concat", "concat", inputs=(middles[-1], "cheap"), outputs=("joined",))]
    return steps + _xblock("end_", block.channels, block.channels, block.group_width, 1, "joined", "x")


# --- NASNet-A cells -----------------------------------------------------------------------------
# tensorflow/models research/slim/nets/nasnet/nasnet_utils.py @08eebbc (NasNetABaseCell,
# NasNetANormalCell, NasNetAReductionCell). A cell's hidden states: 0 its input after ReLU, 1x1 + BN;
# 1 the previous cell's input ("prev", h_{i-1}) fitted to the cell's F filters; 2 + j the sum of
# combination j, whose two (op, state) pairs are below. The output concatenates ``concat``. Ops on
# states 0 and 1 take the cell's stride. ``sepK``: (ReLU, separable K x K, BN) twice; ``avg3``/
# ``max3``: 3x3 pooling ("same"); ``id``: identity (ReLU + 1x1 + BN when stride or width differ).
@dataclass(frozen=True)
class CellTable:
    combos: tuple[tuple[tuple[str, int], tuple[str, int]], ...]
    concat: tuple[int, ...]


NASNET_A = {
    "nasnormal": CellTable(((("sep5", 0), ("sep3", 1)), (("sep5", 1), ("sep3", 1)),
                            (("avg3", 0), ("id", 1)), (("avg3", 1), ("avg3", 1)),
                            (("sep3", 0), ("id", 0))), concat=(1, 2, 3, 4, 5, 6)),
    "nasreduce": CellTable(((("sep5", 0), ("sep7", 1)), (("max3", 0), ("sep7", 1)),
                            (("avg3", 0), ("sep5", 1)), (("id", 3), ("avg3", 2)),
                            (("sep3", 2), ("max3", 0))), concat=(3, 4, 5, 6)),
}
CELL_KINDS = tuple(NASNET_A)  # blocks that read the previous block's input as well


@dataclass(frozen=True)
class Prev:
    """A cell's second input h_{i-1}: its channels, and whether it is spatially larger than the
    cell's input (a reduction came between)."""

    channels: int
    larger: bool


def _factorized(prefix: str, src: str, dst: str, filters: int, stride: int, relu: bool) -> list[Step]:
    """nasnet_utils.factorized_reduction: at stride 2, two 1x1 convs of half the filters (the
    second on the map shifted by one pixel) on every other pixel, concatenated, BN; at stride 1
    one 1x1 + BN. Its BN after the concat is per channel, so it is each half's own BN here."""
    steps = [Step("act", f"{prefix}_relu", act="relu", inputs=(src,), outputs=(dst,))] if relu else []
    src = dst if relu else src
    if stride == 1:
        return steps + [_conv(f"{prefix}_conv", filters, src=src, dst=dst)]
    half = filters // 2  # the reference asserts even filters; an odd width gives path 2 one more
    p1, p2 = f"{prefix}_path1", f"{prefix}_path2"
    return steps + [Step("avgpool", f"{p1}_pool", kernel=1, stride=2, inputs=(src,), outputs=(p1,)),
                    _conv(f"{p1}_conv", half, src=p1, dst=p1),
                    Step("shift", f"{p2}_shift", inputs=(src,), outputs=(p2,)),
                    Step("avgpool", f"{p2}_pool", kernel=1, stride=2, inputs=(p2,), outputs=(p2,)),
                    _conv(f"{p2}_conv", filters - half, src=p2, dst=p2),
                    Step("concat", f"{prefix}_concat", inputs=(p1, p2), outputs=(dst,))]


def _cell_op(op: str, name: str, src: str, src_channels: int, filters: int, stride: int) -> list[Step]:
    """One op of a combination (NasNetABaseCell._apply_conv_operation), written to ``name``."""
    if op.startswith("sep"):
        kernel = int(op[3:])
        return [Step("act", f"{name}_relu1", act="relu", inputs=(src,), outputs=(name,)),
                Step("sep", f"{name}_sep1", filters, kernel, stride, inputs=(name,), outputs=(name,)),
                Step("act", f"{name}_relu2", act="relu", inputs=(name,), outputs=(name,)),
                Step("sep", f"{name}_sep2", filters, kernel, inputs=(name,), outputs=(name,))]
    if op == "id":
        if stride == 1 and src_channels == filters:
            return []
        return [Step("act", f"{name}_relu", act="relu", inputs=(src,), outputs=(name,)),
                _conv(f"{name}_1x1", filters, stride=stride, src=name, dst=name)]
    pool = Step("avgpool" if op == "avg3" else "maxpool", f"{name}_pool", kernel=3, stride=stride,
                inputs=(src,), outputs=(name,))
    fit = [_conv(f"{name}_1x1", filters, src=name, dst=name)] if src_channels != filters else []
    return [pool, *fit]


def _nasnet_cell(block: Block, cin: int, prev: Prev | None) -> list[Step]:
    table, filters = NASNET_A[block.kind], block.channels
    steps: list[Step] = []
    if prev is None:  # no earlier cell: the input itself, as the reference's prev_layer=None
        states, widths = ["h0", "in"], [filters, cin]
    elif prev.larger:
        steps += _factorized("prev", "prev", "h1", filters, 2, relu=True)
        states, widths = ["h0", "h1"], [filters, filters]
    elif prev.channels != filters:
        steps += _factorized("prev", "prev", "h1", filters, 1, relu=True)
        states, widths = ["h0", "h1"], [filters, filters]
    else:
        states, widths = ["h0", "prev"], [filters, filters]
    steps += [Step("act", "relu", act="relu", inputs=("in",), outputs=("h0",)),
              _conv("1x1", filters, src="h0", dst="h0")]
    for j, combo in enumerate(table.combos):
        branches = []
        for side, (op, index) in zip(("left", "right"), combo):
            name = f"comb{j}_{side}"
            op_steps = _cell_op(op, name, states[index], widths[index], filters,
                                block.stride if index < 2 else 1)
            steps += op_steps
            branches.append(name if op_steps else states[index])
        steps.append(Step("add", f"comb{j}_add", inputs=tuple(branches), outputs=(f"h{j + 2}",)))
        states.append(f"h{j + 2}")
        widths.append(filters)
    outputs = []
    for index in table.concat:  # NasNetABaseCell._combine_unused_states: fit what differs
        stride = block.stride if index < 2 else 1
        if widths[index] != filters or stride > 1:
            steps += _factorized(f"fit{index}", states[index], f"fit{index}", filters, stride, relu=False)
            outputs.append(f"fit{index}")
        else:
            outputs.append(states[index])
    return steps + [Step("concat", "concat", inputs=tuple(outputs))]


_KINDS.update({
    "act": lambda b, cin, div: [Step("act", "act", act=b.act)],
    "xblock": lambda b, cin, div: _xblock("", cin, b.channels, b.group_width, b.stride, "in", "x"),
    "gghost": _gghost,
})


# --- UniNet ------------------------------------------------------------------------------------
# Sense-X/UniNet uninet.py @e7fbb3d (DWConvBlock, LocalDSM, LocalGlobalDSM, AttentionBlock) and
# model_utils.py (SqueezeExcitation: make_divisible(mid // 4, 8), ReLU, relu6(x + 3) / 6 = ``hse0.25``).
# As above, convolution biases followed by BN are left out (BN's beta absorbs them). Every block runs
# at stride 1 (the reference passes stride=1 to each); the downsampling modules take the stride.
def _dsm_shortcut(block: Block) -> list[Step]:
    """A DSM's (and a widening uconv's) shortcut: 3x3 max pool (stride; none at stride 1 in a DSM),
    1x1 with a bias, added to ``x``."""
    pool = [Step("maxpool", "short_pool", kernel=3, stride=block.stride, inputs=("in",), outputs=("short",))]
    if block.kind != "uconv" and block.stride == 1:
        pool = []
    src = "short" if pool else "in"
    return pool + [Step("conv", "short_conv", block.channels, bn=False, inputs=(src,), outputs=("short",)),
                   Step("add", "add", inputs=("x", "short"))]


def _uconv(block: Block, cin: int, divisor: int) -> list[Step]:
    """DWConvBlock: when int(c_in * e) differs from c_in, BN on the input then 1x1 expand + BN +
    act; dw k x k + BN + act, [SE], 1x1 project + BN; identity shortcut, or the max-pool one."""
    mid, steps = int(cin * block.expand), []
    if mid != cin:
        steps += [Step("bn", "pre_bn"), _conv("expand", mid, act=block.act)]
    steps += [_dw("dw", block.kernel, act=block.act), *_se(block, cin, mid, divisor),
              _conv("project", block.channels)]
    if cin == block.channels:
        return steps + [Step("add", "add", inputs=("x", "in"))]
    return steps + _dsm_shortcut(block)


def _heads_divide(block: Block, channels: int) -> None:
    if channels % block.heads:
        raise SpecError(f"{block.kind}: {block.heads} heads do not divide {channels} channels")


def _lgdsm(block: Block, cin: int, divisor: int) -> list[Step]:
    """LocalGlobalDSM: queries on the strided map (dw 3x3 + BN, 1x1, LN), keys and values on the
    input (LN, 1x1 to 2c), softmax attention, 1x1 projection; + the DSM shortcut. No layer scale."""
    c = block.channels
    _heads_divide(block, c)
    return [_dw("q_local", 3, block.stride, dst="q"),
            Step("conv", "q_pw", c, bn=False, inputs=("q",), outputs=("q",)),
            Step("ln", "q_norm", inputs=("q",), outputs=("q",)),
            Step("ln", "kv_norm", inputs=("in",), outputs=("kv",)),
            Step("conv", "kv", 2 * c, bn=False, inputs=("kv",), outputs=("kv",)),
            Step("mhsa", "attend", groups=block.heads, inputs=("q", "kv")),
            Step("conv", "proj", c, bn=False), *_dsm_shortcut(block)]


def _mhsa(block: Block, cin: int, divisor: int) -> list[Step]:
    """AttentionBlock (stride 1, same width): x + dw 3x3 (bias) of x; x + ls * proj(attention(qkv(
    LN(x)))); x + ls * MLP(LN(x)) with hidden width int(c * e)."""
    _same_width(block, cin)
    _heads_divide(block, cin)
    return [Step("dwconv", "pos", kernel=3, bn=False, outputs=("p",)),
            Step("add", "pos_add", inputs=("x", "p")),
            Step("ln", "attn_norm", outputs=("t",)),
            Step("conv", "qkv", 3 * cin, bn=False, inputs=("t",), outputs=("t",)),
            Step("mhsa", "attend", groups=block.heads, inputs=("t",), outputs=("t",)),
            Step("conv", "proj", cin, bn=False, inputs=("t",), outputs=("t",)),
            *_residual("attn_", "t", "x"),
            *_mlp("mlp_", cin, block.expand, src="x", dst="m"), *_residual("mlp_", "m", "x")]


_KINDS.update({
    "uconv": _uconv,
    "ldsm": lambda b, cin, div: [_dw("local", 3, b.stride), Step("conv", "local_pw", b.channels, bn=False),
                                 *_dsm_shortcut(b)],
    "lgdsm": _lgdsm,
    "mhsa": _mhsa,
})


def has_residual(block: Block, in_channels: int) -> bool:
    """Whether the block ends in a shortcut add: ghost always (identity or projection); ir and
    fused at stride 1 and the same width, unless ``noskip``."""
    if block.kind == "ghost":
        return True
    return block.kind in ("ir", "fused") and block.residual and _keeps_shape(block, in_channels)


def _shortcut(block: Block, in_channels: int) -> list[Step]:
    if not has_residual(block, in_channels):
        return []
    if _keeps_shape(block, in_channels):
        return [Step("add", "add", inputs=("x", "in"))]
    # GhostNet's projection when the shape changes: dw k x k (with the stride), then 1x1
    return [_dw("short_dw", block.kernel, block.stride, src="in", dst="short"),
            _conv("short_pw", block.channels, src="short", dst="short"),
            Step("add", "add", inputs=("x", "short"))]


def block_steps(block: Block, in_channels: int, divisor: int = 8,
                prev: Prev | None = None) -> tuple[Step, ...]:
    """The ops of one block instance (repeats=1) on ``in_channels`` input channels, in graph
    order, shortcut add included; ``divisor`` rounds expanded and ``hse`` widths. A NASNet cell
    also reads ``prev`` (tensor ``"prev"``; None: the cell's own input stands in, unadjusted)."""
    if block.kind in CELL_KINDS:
        return tuple(_nasnet_cell(block, in_channels, prev))
    if block.kind not in _KINDS:
        raise SpecError(f"no block definition for kind {block.kind!r}")
    return tuple(_KINDS[block.kind](block, in_channels, divisor) + _shortcut(block, in_channels))
