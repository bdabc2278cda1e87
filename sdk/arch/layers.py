"""The one layer walk: ``spec -> [LayerCost]`` with shapes, parameters and MACs, in pure Python.

``params`` are trainable parameters (BatchNorm: gamma and beta), the convention of the papers
and of torchvision; ``keras_params`` adds BatchNorm's moving mean and variance, as Keras
``count_params()`` does. MACs count multiply-accumulates of
convolutions and fully connected layers (squeeze-excite included); BatchNorm, activations,
additions and pooling are free, as in the papers' "MAdds"/"FLOPs" columns. Attention's matrix
products count as MACs (``matmul`` ops, see ``attention_ops``); layer norm, softmax and
normalisation are free like BatchNorm.

Each block kind's ops and widths come from ``edgetailor.arch.blocks``, which the builder
(``edgetailor.builder.network``) reads too: it creates exactly the ops listed here, in this order.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from edgetailor.arch.blocks import CELL_KINDS, Prev, Step, block_steps
from edgetailor.arch.spec import STAGE_KINDS, ArchSpec, Block, SpecError

Shape = tuple[int, int, int]  # (height, width, channels)


@dataclass(frozen=True)
class Op:
    """One primitive op. ``kind``: conv, dwconv, pool, maxpool, add, mul, concat, split, shuffle;
    for hybrid blocks also layernorm, scale, act, avgpool, upsample, l2norm, softmax and matmul
    (``kernel`` = its reduction length, ``out_shape`` = (rows, cols, heads) of its product);
    ``shift`` for NASNet's factorized reduction (pad + slice)."""

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
    prev_shape: Shape | None = None  # a NASNet cell's second input (the previous block's input)

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


def dwconv_op(shape: Shape, kernel: int, stride: int = 1, act: str = "linear", bn: bool = True) -> Op:
    """Depthwise k x k + BN, or (``bn`` False) with a bias and no BN."""
    h, w = _out_hw(shape, stride)
    c = shape[2]
    weights = kernel * kernel * c
    return Op("dwconv", shape, (h, w, c), kernel, stride, c, not bn, bn, act,
              weights + 2 * c if bn else weights + c, h * w * weights)


def _free(kind: str, shape: Shape, out: Shape | None = None, **kw) -> Op:
    return Op(kind, shape, out or shape, **kw)


def _se_ops(step: Step, shape: Shape) -> list[Op]:
    mid = shape[2]
    pooled: Shape = (1, 1, mid)
    reduce = conv_op(pooled, step.channels, act=step.act, bn=False, bias=True)
    expand = conv_op(reduce.out_shape, mid, act=step.gate, bn=False, bias=True)
    return [_free("pool", shape, pooled), reduce, expand, _free("mul", shape)]


def _step_ops(step: Step, ins: list[Shape]) -> list[Op]:
    """The ops of one step on input shapes ``ins``; the last input is the running tensor."""
    shape = ins[-1]
    h, w, c = shape
    if step.op == "conv" and not step.bn and step.kernel > 1 and (h % step.stride or w % step.stride):
        raise SpecError(f"a patch convolution of stride {step.stride} needs a {h}x{w} map divisible by it")
    if step.op == "conv":
        return [conv_op(shape, step.channels, step.kernel, step.stride, step.groups, step.act,
                        bn=step.bn, bias=not step.bn)]
    if step.op == "dwconv":
        return [dwconv_op(shape, step.kernel, step.stride, step.act, step.bn)]
    if step.op == "bn":  # BatchNorm alone: at inference a per-channel affine (UniNet's pre-norm)
        return [Op("scale", shape, shape, bn=True, params=2 * c)]
    if step.op in HYBRID_STEP_OPS:
        return hybrid_step_ops(step, ins)
    if step.op == "se":
        return _se_ops(step, shape)
    if step.op == "concat":
        return [_free("concat", shape, (h, w, sum(s[2] for s in ins)))]
    if step.op == "split":
        return [_free("split", shape, (h, w, c // step.groups))]
    if step.op == "keep":
        return [_free("split", shape, (h, w, step.channels))]
    if step.op == "tail":
        return [_free("split", shape, (h, w, step.channels))]
    if step.op == "sep":  # NASNet: the depthwise conv has neither bias nor BN
        dw = dwconv_op(shape, step.kernel, step.stride)
        dw = dataclasses.replace(dw, bn=False, params=dw.params - 2 * c)
        return [dw, conv_op(dw.out_shape, step.channels)]
    if step.op == "shift":
        return [_free("shift", shape)]
    if step.op == "maxpool":
        return [_free("maxpool", shape, (*_out_hw(shape, step.stride), c), kernel=step.kernel,
                      stride=step.stride)]
    if step.op == "pool":
        return [_free("pool", shape, (1, 1, c))]
    if step.op == "add" and any(other != shape and other[:2] != (1, 1) for other in ins):  # 1x1: broadcast
        raise SpecError(f"a residual add of maps {' and '.join('x'.join(map(str, s)) for s in ins)}: "
                        "the resolution does not fit the block's strides")
    if step.op in ("add", "shuffle"):
        return [_free(step.op, shape)]
    raise SpecError(f"no layer walk for step op {step.op!r}")


# --- hybrid convolution-attention steps (EdgeNeXt, EfficientFormerV2, UniNet) -----------------
HYBRID_STEP_OPS = ("ln", "scale", "act", "avgpool", "upsample", "posenc", "splitdw", "xca", "attend",
                   "attend_down", "mhsa")
POSENC_HIDDEN = 32  # Fourier features per axis (XCiT PositionalEncodingFourier hidden_dim=32, as EdgeNeXt)


def attention_bias_offsets(q_side: int, k_side: int) -> int:
    """Distinct (|dy|, |dx|) offsets between a ``q_side``^2 query grid (stride ceil(k/q) over the keys)
    and a ``k_side``^2 key grid: EfficientFormerV2's attention-bias table length per head."""
    step = math.ceil(k_side / q_side)
    return len({abs(a * step - b) for a in range(q_side) for b in range(k_side)}) ** 2


def attention_ops(heads: int, q: Shape, k: Shape, v: Shape, talking: bool, biases: bool = True) -> list[Op]:
    """EfficientFormerV2 attention on (q, k, v) maps, heads split from channels. MACs: q.k^T is
    N_q * N_k * key_dim per head; each talking-head 1x1 mixes heads at every (query, key): N_q * N_k
    * heads^2; attn.v is N_q * N_k * v_dim per head. Params: the attention biases (heads x offsets;
    none when ``biases`` is False: plain softmax attention) and the talking heads' weights and biases."""
    nq, nk = q[0] * q[1], k[0] * k[1]
    if q[2] % heads or v[2] % heads or q[2] != k[2] or k[:2] != v[:2] or q[0] != q[1] or k[0] != k[1]:
        raise SpecError(f"attention of {heads} heads cannot take q {q}, k {k}, v {v}")
    scores: Shape = (nq, nk, heads)
    ops = [Op("matmul", q, scores, kernel=q[2] // heads, groups=heads,
              params=heads * attention_bias_offsets(q[0], k[0]) if biases else 0, macs=nq * nk * q[2])]
    talk = [Op("matmul", scores, scores, kernel=heads, groups=heads, bias=True,
               params=heads * heads + heads, macs=nq * nk * heads * heads)] if talking else []
    ops += talk + [Op("softmax", scores, scores)] + talk
    return ops + [Op("matmul", scores, (q[0], q[1], v[2]), kernel=nk, groups=heads, macs=nq * nk * v[2])]


def xca_ops(heads: int, qkv: Shape) -> list[Op]:
    """EdgeNeXt/XCiT cross-covariance attention on a q|k|v map of 3c channels: q, k L2-normalised
    over the N tokens, then per head a d x d attention (d = c / heads). MACs: q^T.k is d * d * N per
    head, attn.v is d * d * N per head: 2 * c * d * N in all. Params: one temperature per head."""
    h, w, c3 = qkv
    c = c3 // 3
    if c3 % 3 or c % heads:
        raise SpecError(f"xca: {heads} heads cannot split {c3} q|k|v channels")
    d, n = c // heads, h * w
    gram: Shape = (d, d, heads)
    return [Op("l2norm", qkv, (h, w, 2 * c)),
            Op("matmul", (h, w, 2 * c), gram, kernel=n, groups=heads, params=heads, macs=c * d * n),
            Op("softmax", gram, gram),
            Op("matmul", gram, (h, w, c), kernel=d, groups=heads, macs=c * d * n)]


def token_attention_ops(heads: int, ins: list[Shape]) -> list[Op]:
    """UniNet's softmax attention on a q|k|v map of 3c channels, or on a q map of c channels and a
    k|v map of 2c (queries on a strided map): ``attention_ops`` without biases or talking heads,
    so q.k^T and attn.v are N_q * N_k * c MACs each."""
    if len(ins) == 2:
        q, kv = ins
        if kv[2] != 2 * q[2]:
            raise SpecError(f"attention needs a k|v map twice the queries' {q[2]} channels (got {kv[2]})")
        k = (kv[0], kv[1], q[2])
    else:
        h, w, c3 = ins[0]
        if c3 % 3:
            raise SpecError(f"attention cannot split {c3} channels into q|k|v")
        q = k = (h, w, c3 // 3)
    return attention_ops(heads, q, k, k, talking=False, biases=False)


def hybrid_step_ops(step: Step, ins: list[Shape]) -> list[Op]:
    """The ops of one hybrid step (``HYBRID_STEP_OPS``) on input shapes ``ins``."""
    shape = ins[-1]
    h, w, c = shape
    if step.op == "ln":
        return [Op("layernorm", shape, shape, params=2 * c)]
    if step.op == "scale":
        return [Op("scale", shape, shape, params=c)]
    if step.op == "act":
        return [Op("act", shape, shape, act=step.act)]
    if step.op == "avgpool":
        return [_free("avgpool", shape, (*_out_hw(shape, step.stride), c), kernel=step.kernel,
                      stride=step.stride)]
    if step.op == "upsample":
        return [_free("upsample", shape, (h * step.stride, w * step.stride, c), stride=step.stride)]
    if step.op == "posenc":  # a 1x1 conv (bias) of the 2 * 32 Fourier features, added
        return [conv_op((h, w, 2 * POSENC_HIDDEN), c, bn=False, bias=True), _free("add", shape)]
    if step.op == "splitdw":
        widths = [min(step.channels, c - i * step.channels) for i in range(step.groups)]
        if step.channels * (step.groups - 1) >= c:
            raise SpecError(f"sdta: {step.groups} splits of {step.channels} do not fit {c} channels")
        ops = [_free("split", shape, (h, w, widths[0]))]
        for i, width in enumerate(widths[:-1]):
            ops += [_free("add", (h, w, width))] if i else []
            ops.append(dwconv_op((h, w, width), step.kernel, bn=False))
        return ops + [_free("concat", (h, w, widths[0]), shape)]
    if step.op == "xca":
        return xca_ops(step.groups, shape)
    if step.op == "mhsa":
        return token_attention_ops(step.groups, ins)
    return attention_ops(step.groups, *ins, talking=step.op == "attend")


def prev_state(prev: Shape | None, shape: Shape) -> Prev | None:
    """A cell's second input as ``block_steps`` reads it; only a reduction may come between."""
    if prev is None:
        return None
    larger = prev[:2] != shape[:2]
    if larger and _out_hw(prev, 2) != shape[:2]:
        raise SpecError(f"a NASNet cell cannot fit its previous input {prev} to its input {shape}")
    return Prev(prev[2], larger)


_WEIGHTLESS = ("act", "avgpool", "maxpool")  # steps the converter computes once per input tensor


def _block_ops(block: Block, shape: Shape, divisor: int, prev: Shape | None = None) -> list[Op]:
    """The ops of one block as the converted model runs them: NASNet's ReLU after a separable
    conv is fused into its pointwise conv, and an activation or pool repeated on the same state
    (NASNet's branches) runs once."""
    if block.kind == "fc" and shape[:2] != (1, 1):
        raise SpecError("an fc block must come after the global pool")
    shapes = {"x": shape, "in": shape, "prev": prev or shape}
    ops: list[Op] = []

    def key(step: Step) -> tuple:
        return step.op, step.act, step.kernel, step.stride, step.inputs

    # weightless steps already run on states unchanged since; a NASNet cell after a cell: that
    # cell began with ReLU on its input, this cell's "prev"
    computed = {key(Step("act", "relu", act="relu", inputs=("prev",)))} if prev is not None else set()
    last = None
    for step in block_steps(block, shape[2], divisor, prev_state(prev, shape)):
        step_ops = _step_ops(step, [shapes[name] for name in step.inputs])
        if step.op == "act" and step.act in ("relu", "relu6") and last is not None and last.op == "sep" \
                and last.outputs == step.inputs and ops[-1].act == "linear":
            ops[-1] = dataclasses.replace(ops[-1], act=step.act)  # fused by the converter into its only reader's conv
        elif key(step) not in computed:  # the same weightless op on the same tensor runs once (the converter's CSE)
            ops += step_ops
        if step.op in _WEIGHTLESS:
            computed.add(key(step))
        shapes.update(dict.fromkeys(step.outputs, step_ops[-1].out_shape))
        computed = {k for k in computed if not set(k[4]) & set(step.outputs)}
        last = step
    return ops


def expand_repeats(block: Block) -> list[Block]:
    """``repeats`` copies with repeats=1, the first keeping the stride, the rest stride 1."""
    first = dataclasses.replace(block, repeats=1)
    if block.repeats == 1:  # a patch block has no stride-1 form to build
        return [first]
    return [first] + [dataclasses.replace(first, stride=1)] * (block.repeats - 1)


def block_cost(block: Block, in_shape: Shape, divisor: int = 8, name: str = "block",
               prev_shape: Shape | None = None) -> LayerCost:
    """One block instance (repeats=1) applied to ``in_shape`` (and, for a NASNet cell, to the
    previous block's input ``prev_shape``): its ops, shapes and costs."""
    ops = _block_ops(block, in_shape, divisor, prev_shape)
    out_shape = ops[-1].out_shape if ops else in_shape
    return LayerCost(name, block, in_shape, out_shape, tuple(ops), prev_shape)


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
            whole = block.kind in ("pool", "fc") or block.kind in STAGE_KINDS
            for instance in ([block] if whole else expand_repeats(block)):
                yield section, index, instance
                index += 1


def walk(spec: ArchSpec, num_classes: int | None = 1000) -> list[LayerCost]:
    """Every block instance of ``spec`` with its ops; a dense classifier when ``num_classes``."""
    shape: Shape = (spec.resolution, spec.resolution, 3)
    out: list[LayerCost] = []
    prev = None  # the previous block's input, when that block was a NASNet cell
    for section, index, instance in block_instances(spec):
        cell = instance.kind in CELL_KINDS
        layer = block_cost(instance, shape, spec.divisor, f"{section}.{index}", prev if cell else None)
        out.append(layer)
        prev, shape = (shape if cell else None), layer.out_shape
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


# The most parameters a model may have. A TFLite file holds at most 2 GiB (FlatBuffers' 32-bit
# offsets), 536 M float32 weights, so nothing larger can ship to a phone; EfficientNet-B7, the
# zoo's largest, has 66 M. Building far larger only runs out of memory (a million-channel
# convolution: 600 G parameters, killed after 17 s).
MAX_PARAMS = 500_000_000


def size_problem(params: int) -> str | None:
    """Why a model of ``params`` parameters is too large to build, or None when it is not."""
    if params <= MAX_PARAMS:
        return None
    return (f"{params / 1e6:,.0f} M parameters, more than the {MAX_PARAMS / 1e6:,.0f} M a phone "
            f"model can have (a TFLite file holds at most 2 GiB of float32 weights)")
