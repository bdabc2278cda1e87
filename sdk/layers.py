"""The one layer walk: ``spec -> [LayerCost]`` with shapes, parameters and MACs, in pure Python.

``params`` are trainable parameters (BatchNorm: gamma and beta), the convention of the papers
and of torchvision; ``keras_params`` adds BatchNorm's moving mean and variance, as Keras
``count_params()`` does. MACs count multiply-accumulates of
convolutions and fully connected layers (squeeze-excite included); BatchNorm, activations,
additions and pooling are free, as in the papers' "MAdds"/"FLOPs" columns.

The builder (``edgetailor.builder``) creates exactly the ops listed here, in this order.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from edgetailor.scaling import make_divisible
from edgetailor.spec import ArchSpec, Block, SpecError

Shape = tuple[int, int, int]  # (height, width, channels)


@dataclass(frozen=True)
class Op:
    """One primitive op. ``kind``: conv, dwconv, pool, maxpool, add, mul, concat, split, shuffle."""

    kind: str
    in_shape: Shape
    out_shape: Shape
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    bias: bool = False
    bn: bool = False
    act: str = "linear"
    params: int = 0
    macs: int = 0


@dataclass(frozen=True)
class LayerCost:
    """One block instance (``repeats`` expanded, stride resolved) and the ops it is made of."""

    name: str
    block: Block
    in_shape: Shape
    out_shape: Shape
    ops: tuple[Op, ...]

    @property
    def params(self) -> int:
        return sum(op.params for op in self.ops)

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def keras_params(self) -> int:
        """Parameters as Keras counts them: BatchNorm moving statistics included."""
        return self.params + sum(2 * op.out_shape[2] for op in self.ops if op.bn)


def _out_hw(shape: Shape, stride: int) -> tuple[int, int]:
    return math.ceil(shape[0] / stride), math.ceil(shape[1] / stride)


def conv_op(shape: Shape, out_channels: int, kernel: int = 1, stride: int = 1, groups: int = 1,
            act: str = "linear", bn: bool = True, bias: bool = False) -> Op:
    h, w = _out_hw(shape, stride)
    cin = shape[2]
    if cin % groups or out_channels % groups:
        raise SpecError(f"{groups} groups do not divide {cin} -> {out_channels} channels")
    weights = kernel * kernel * (cin // groups) * out_channels
    params = weights + (out_channels if bias else 0) + (2 * out_channels if bn else 0)
    return Op("conv", shape, (h, w, out_channels), kernel, stride, groups, bias, bn, act,
              params, h * w * weights)


def dwconv_op(shape: Shape, kernel: int, stride: int = 1, act: str = "linear") -> Op:
    h, w = _out_hw(shape, stride)
    c = shape[2]
    weights = kernel * kernel * c
    return Op("dwconv", shape, (h, w, c), kernel, stride, c, False, True, act,
              weights + 2 * c, h * w * weights)


def _free(kind: str, shape: Shape, out: Shape | None = None, **kw) -> Op:
    return Op(kind, shape, out or shape, **kw)


def _se_ops(block: Block, in_channels: int, shape: Shape, divisor: int) -> list[Op]:
    mid = shape[2]
    if block.hard_se:  # MobileNetV3 / GhostNet: from the expanded width, ReLU, hard sigmoid
        squeeze, inner, gate = make_divisible(mid * block.se, divisor), "relu", "hsigmoid"
    else:  # MnasNet / EfficientNet: from the block's input width, block activation, sigmoid
        squeeze, inner, gate = max(1, int(in_channels * block.se)), block.act, "sigmoid"
    pooled: Shape = (1, 1, mid)
    reduce = conv_op(pooled, squeeze, act=inner, bn=False, bias=True)
    expand = conv_op(reduce.out_shape, mid, act=gate, bn=False, bias=True)
    return [_free("pool", shape, pooled), reduce, expand, _free("mul", shape)]


def _ir_ops(block: Block, shape: Shape, divisor: int) -> list[Op]:
    cin = shape[2]
    ops: list[Op] = []
    if block.expand != 1 or block.keep_expand:
        mid = make_divisible(cin * block.expand, divisor) if block.expand != 1 else cin
        ops.append(conv_op(shape, mid, groups=block.groups, act=block.act))
        if block.groups > 1:
            ops.append(_free("shuffle", ops[-1].out_shape))
    ops.append(dwconv_op(ops[-1].out_shape if ops else shape, block.kernel, block.stride, block.act))
    if block.se:
        ops += _se_ops(block, cin, ops[-1].out_shape, divisor)
    ops.append(conv_op(ops[-1].out_shape, block.channels, groups=block.groups))
    return ops


def _fused_ops(block: Block, shape: Shape, divisor: int) -> list[Op]:
    cin = shape[2]
    if block.expand == 1:
        ops = [conv_op(shape, block.channels, block.kernel, block.stride, act=block.act)]
        if block.se:
            ops += _se_ops(block, cin, ops[-1].out_shape, divisor)
        return ops
    mid = make_divisible(cin * block.expand, divisor)
    ops = [conv_op(shape, mid, block.kernel, block.stride, act=block.act)]
    if block.se:
        ops += _se_ops(block, cin, ops[-1].out_shape, divisor)
    ops.append(conv_op(ops[-1].out_shape, block.channels))
    return ops


def _ghost_module_ops(shape: Shape, out_channels: int, act: str) -> list[Op]:
    """GhostNet's module: 1x1 conv to ceil(out/2), cheap 3x3 dw on it, concat, keep ``out``."""
    init = math.ceil(out_channels / 2)
    primary = conv_op(shape, init, act=act)
    cheap = dwconv_op(primary.out_shape, 3, act=act)
    h, w, _ = primary.out_shape
    ops = [primary, cheap, _free("concat", primary.out_shape, (h, w, 2 * init))]
    if 2 * init != out_channels:
        ops.append(_free("split", (h, w, 2 * init), (h, w, out_channels)))
    return ops


def _ghost_ops(block: Block, shape: Shape, divisor: int) -> list[Op]:
    mid = make_divisible(shape[2] * block.expand, divisor)
    ops = _ghost_module_ops(shape, mid, "relu")
    if block.stride > 1:
        ops.append(dwconv_op(ops[-1].out_shape, block.kernel, block.stride))
    if block.se:
        ops += _se_ops(block, shape[2], ops[-1].out_shape, divisor)
    ops += _ghost_module_ops(ops[-1].out_shape, block.channels, "linear")
    if shape[2] != block.channels or block.stride > 1:  # projection shortcut
        ops.append(dwconv_op(shape, block.kernel, block.stride))
        ops.append(conv_op(ops[-1].out_shape, block.channels))
    return ops


def _shuffle_ops(block: Block, shape: Shape) -> list[Op]:
    half = block.channels // 2
    if block.channels % 2:
        raise SpecError(f"shuffle blocks need even channels (got {block.channels})")
    act = block.act
    if block.stride == 1:
        if shape[2] != block.channels:
            raise SpecError(f"a stride-1 shuffle unit keeps its channels ({shape[2]} -> {block.channels})")
        branch_in: Shape = (shape[0], shape[1], half)
        ops = [_free("split", shape, branch_in)]
    else:  # downsampling unit: the second branch works on the whole input
        branch1_dw = dwconv_op(shape, block.kernel, block.stride)
        ops = [branch1_dw, conv_op(branch1_dw.out_shape, half, act=act)]
        branch_in = shape
    pw1 = conv_op(branch_in, half, act=act)
    dw = dwconv_op(pw1.out_shape, block.kernel, block.stride)
    pw2 = conv_op(dw.out_shape, half, act=act)
    out: Shape = (pw2.out_shape[0], pw2.out_shape[1], block.channels)
    return ops + [pw1, dw, pw2, _free("concat", pw2.out_shape, out), _free("shuffle", out)]


def _block_ops(block: Block, shape: Shape, divisor: int) -> list[Op]:
    kind = block.kind
    if kind == "conv":
        return [conv_op(shape, block.channels, block.kernel, block.stride, act=block.act)]
    if kind == "ds":
        dw = dwconv_op(shape, block.kernel, block.stride, block.act)
        se = _se_ops(block, shape[2], dw.out_shape, divisor) if block.se else []
        return [dw, *se, conv_op(dw.out_shape, block.channels, act=block.act)]
    if kind == "ir":
        return _ir_ops(block, shape, divisor)
    if kind == "fused":
        return _fused_ops(block, shape, divisor)
    if kind == "skip":
        if shape[2] == block.channels and block.stride == 1:
            return []
        return [conv_op(shape, block.channels, 1, block.stride, act=block.act)]
    if kind == "ghost":
        return _ghost_ops(block, shape, divisor)
    if kind == "shuffle":
        return _shuffle_ops(block, shape)
    if kind == "maxpool":
        h, w = _out_hw(shape, block.stride)
        return [_free("maxpool", shape, (h, w, shape[2]), kernel=block.kernel, stride=block.stride)]
    if kind == "pool":
        return [_free("pool", shape, (1, 1, shape[2]))]
    if kind == "fc":
        if shape[:2] != (1, 1):
            raise SpecError("an fc block must come after the global pool")
        return [conv_op(shape, block.channels, act=block.act, bn=False, bias=True)]
    raise SpecError(f"no layer walk for block kind {kind!r}")


def has_residual(block: Block, in_channels: int) -> bool:
    """Identity shortcut: stride 1, same channels, and not ``noskip`` (ir, fused, ghost)."""
    same = block.stride == 1 and in_channels == block.channels
    if block.kind == "ghost":
        return True  # identity or projection shortcut, always added
    return block.kind in ("ir", "fused") and block.residual and same


def expand_repeats(block: Block) -> list[Block]:
    """``repeats`` copies with repeats=1, the first keeping the stride, the rest stride 1."""
    first = dataclasses.replace(block, repeats=1)
    return [first] + [dataclasses.replace(first, stride=1)] * (block.repeats - 1)


def block_cost(block: Block, in_shape: Shape, divisor: int = 8, name: str = "block") -> LayerCost:
    """One block instance (repeats=1) applied to ``in_shape``: its ops, shapes and costs."""
    ops = _block_ops(block, in_shape, divisor)
    if has_residual(block, in_shape[2]):
        ops.append(_free("add", ops[-1].out_shape if ops else in_shape))
    out_shape = ops[-1].out_shape if ops else in_shape
    return LayerCost(name, block, in_shape, out_shape, tuple(ops))


def classifier_cost(in_shape: Shape, num_classes: int) -> LayerCost:
    """The dense classifier after the head's global pool."""
    if in_shape[:2] != (1, 1):
        raise SpecError("the head must pool to 1x1 before the classifier")
    dense = conv_op(in_shape, num_classes, bn=False, bias=True)
    return LayerCost("classifier", Block("fc", channels=num_classes, act="linear"),
                     in_shape, dense.out_shape, (dense,))


def block_instances(spec: ArchSpec):
    """``(section, index, block)`` for every block instance in graph order (repeats expanded);
    the layer walk and the builder both iterate this, so names and order agree."""
    sections = [("stem", spec.stem)] + [(f"stage{i + 1}", s) for i, s in enumerate(spec.stages)]
    sections.append(("head", spec.head))
    for section, blocks in sections:
        index = 0
        for block in blocks:
            for instance in (expand_repeats(block) if block.kind not in ("pool", "fc") else [block]):
                yield section, index, instance
                index += 1


def walk(spec: ArchSpec, num_classes: int | None = 1000) -> list[LayerCost]:
    """Every block instance of ``spec`` with its ops; a dense classifier when ``num_classes``."""
    shape: Shape = (spec.resolution, spec.resolution, 3)
    out: list[LayerCost] = []
    for section, index, instance in block_instances(spec):
        layer = block_cost(instance, shape, spec.divisor, f"{section}.{index}")
        out.append(layer)
        shape = layer.out_shape
    if num_classes:
        out.append(classifier_cost(shape, num_classes))
    return out


def walk_to(spec: ArchSpec, endpoint: str) -> list[LayerCost]:
    """The backbone's layers up to and including the block whose output is ``endpoint`` (a
    ``FeatureInfo`` block name such as ``stage4_2_out``): what a dense head runs on."""
    out = []
    for layer in walk(spec, num_classes=None):
        out.append(layer)
        if f"{layer.name.replace('.', '_')}_out" == endpoint:
            return out
    raise SpecError(f"endpoint {endpoint} is not a block output of this spec")


def totals(layers: list[LayerCost]) -> tuple[int, int]:
    """(parameters, MACs) of a layer list."""
    return sum(layer.params for layer in layers), sum(layer.macs for layer in layers)


def count(spec: ArchSpec, num_classes: int | None = 1000) -> tuple[int, int]:
    """(parameters, MACs) of ``spec`` with a ``num_classes`` classifier."""
    return totals(walk(spec, num_classes))
