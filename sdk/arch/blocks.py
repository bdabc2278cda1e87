"""Each block kind, defined once: its op sequence with resolved channels, in graph order.

``block_steps(block, in_channels, divisor)`` is read by the layer walk
(``edgetailor.arch.layers``: shapes, parameters, MACs) and by the builder
(``edgetailor.builder.network``: tf.keras layers). The width rules live only here: the expanded
width and its ``divisor`` rounding, the squeeze-excite width (``se`` from the block's input,
``hse`` from the expanded width), GhostNet's primary/cheap split, the shuffle unit's halves and
when a shortcut is added.

Steps read and write named tensors: ``"x"`` the running one, ``"in"`` the block's input, and a
second branch where a block has one (``"left"`` of a shuffle unit, ``"primary"`` of a ghost module,
``"short"`` of a ghost projection shortcut).
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


def block_steps(block: Block, in_channels: int, divisor: int = 8) -> tuple[Step, ...]:
    """The ops of one block instance (repeats=1) on ``in_channels`` input channels, in graph
    order, shortcut add included; ``divisor`` rounds expanded and ``hse`` widths."""
    if block.kind not in _KINDS:
        raise SpecError(f"no block definition for kind {block.kind!r}")
    return tuple(_KINDS[block.kind](block, in_channels, divisor) + _shortcut(block, in_channels))
