"""One-kernel TFLite models, kernel configurations to time, and nn-Meter's fusion test.

A kernel (``edgetailor.latency.kernel_predictor.Kernel``) becomes the TFLite ops the converter
writes for it: the one-op models of ``tflite_ops``, plus PAD + VALID depthwise for a padded
strided depthwise convolution and MEAN -> CONV -> CONV -> gate -> MUL for squeeze-excite.

Configurations come from the spaces themselves: ``observed_kernels`` walks random architectures of
the four search spaces at random resolutions and every zoo family at random widths and
resolutions; their per-type ranges bound a Sobol sample (``sobol_kernels``) of the types that have
a free shape (convolutions, depthwise, SE, activations, add, mul, pooling); ``neighbours`` draws
new configurations around a badly predicted one (nn-Meter's adaptive rounds).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import numpy as np

from edgetailor.arch import spaces, zoo
from edgetailor.arch.layers import Op, conv_op, dwconv_op, walk
from edgetailor.errors import SpecError
from edgetailor.latency.kernel_predictor import Kernel, detect_kernels

SPACES = ("mnasnet", "proxyless", "fbnet", "ofa_mbv3")
RESOLUTIONS = tuple(range(96, 321, 16))  # px: what the benchmark and the searches ask for
WIDTHS = (0.35, 0.5, 0.6, 0.75, 0.9, 1.1, 1.25, 1.4)
# Types whose shape is free (sampled over ranges); the rest are measured as they occur in the
# spaces and families (their shapes are tied to a block's structure: attention, shuffle, ...).
FREE_TYPES = ("conv", "pwconv", "fc", "dwconv", "se", "hswish", "swish", "sigmoid", "hsigmoid", "gelu",
              "add", "mul", "pool")
_ACT_TYPES = ("hswish", "swish", "sigmoid", "hsigmoid", "gelu", "relu", "relu6")


def _padded_dwconv_model(op: Op, pad: bool = True, conv: bool = True) -> bytes:
    """PAD (TF "same" split, as the builder's ZeroPadding2D) then a VALID depthwise conv; either
    part alone (the fusion test times them apart)."""
    from edgetailor.profiling.tflite_ops import _FUSED, B, _Graph, schema

    g = _Graph()
    h, w, c = op.in_shape
    pads = []
    for size in (h, w):
        total = max((math.ceil(size / op.stride) - 1) * op.stride + op.kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    padded_shape = [1, h + sum(pads[0]), w + sum(pads[1]), c]
    x = g.tensor([1, h, w, c] if pad else padded_shape)
    y = x
    if pad:
        table = g.tensor([4, 2], np.array([[0, 0], *pads, [0, 0]], np.int32), schema.TensorType.INT32)
        y = g.tensor(padded_shape)
        g.op(B.PAD, [x, table], [y])
    if conv:
        options = schema.DepthwiseConv2DOptionsT()
        options.padding = schema.Padding.VALID
        options.strideH = options.strideW = op.stride
        options.depthMultiplier = 1
        options.fusedActivationFunction = _FUSED.get(op.act, 0)
        kernel = g.weights([1, op.kernel, op.kernel, c], op.kernel * op.kernel * c, op.kernel * op.kernel)
        bias = g.tensor([c], np.zeros(c, np.float32))
        out = g.tensor([1, *op.out_shape])
        g.op(B.DEPTHWISE_CONV_2D, [y, kernel, bias], [out], schema.BuiltinOptions.DepthwiseConv2DOptions, options)
        y = out
    return g.to_bytes([x], [y])


def _se_model(kernel: Kernel) -> bytes:
    """Squeeze-excite as the converter writes it: MEAN, 1x1 CONV + relu, 1x1 CONV, gate, MUL."""
    from edgetailor.profiling.tflite_ops import B, _activation, _conv, _Graph, schema

    g = _Graph()
    shape = kernel.op.in_shape
    c, mid = shape[2], kernel.se_channels
    x = g.tensor([1, *shape])
    axes = g.tensor([2], np.array([1, 2], np.int32), schema.TensorType.INT32)
    pooled = g.tensor([1, 1, 1, c])
    reducer = schema.ReducerOptionsT()
    reducer.keepDims = True
    g.op(B.MEAN, [x, axes], [pooled], schema.BuiltinOptions.ReducerOptions, reducer)
    squeezed = _conv(g, pooled, Op("conv", (1, 1, c), (1, 1, mid), act="relu"), c)
    gate = _conv(g, squeezed, Op("conv", (1, 1, mid), (1, 1, c)), mid)
    gate = _activation(g, gate, [1, 1, 1, c], kernel.op.act)
    y = g.tensor([1, *shape])
    g.op(B.MUL, [x, gate], [y], schema.BuiltinOptions.MulOptions, schema.MulOptionsT())
    return g.to_bytes([x], [y])


def kernel_model(kernel: Kernel) -> bytes:
    """A TFLite model that runs ``kernel`` alone on a float32 input."""
    from edgetailor.profiling.tflite_ops import op_model

    if kernel.type == "se":
        return _se_model(kernel)
    if kernel.padded:
        return _padded_dwconv_model(kernel.op)
    return op_model(kernel.op)


def network_model(kernels: list[Kernel]) -> bytes:
    """One TFLite model running ``kernels`` in order, each reading what the one before wrote
    (where the shapes agree; otherwise a fresh input): the network as the runtime executes it,
    built from the one-kernel models in milliseconds instead of a conversion. Branches become a
    chain (a residual add reads its skip as a second input), so a network's kernels and the
    tensors between them are what is timed (on seven networks within 1 % of the converted model
    for chains, 7-8 % apart for GhostNet and ShuffleNetV2's split-and-concatenate). The kernel
    models' weights are the builder's initial ones (``tflite_ops._Graph.weights``)."""
    from tensorflow.lite.tools import flatbuffer_utils

    from edgetailor.profiling.op_slices import read_model, schema

    out = schema.ModelT()
    out.version, out.buffers, out.operatorCodes = 3, [schema.BufferT()], []
    codes: dict[int, int] = {}
    tensors, operators, inputs, last, last_shape = [], [], [], -1, None
    for kernel in kernels:
        model = read_model(kernel_model(kernel))
        graph, base = model.subgraphs[0], len(tensors)
        for tensor in graph.tensors:
            data = model.buffers[tensor.buffer].data if tensor.buffer else None
            if data is not None and len(data):
                out.buffers.append(model.buffers[tensor.buffer])
                tensor.buffer = len(out.buffers) - 1
            else:
                tensor.buffer = 0
            tensors.append(tensor)
        index = {i: base + i for i in range(len(graph.tensors))}
        if list(graph.tensors[graph.inputs[0]].shape) == last_shape:
            index[graph.inputs[0]] = last
        inputs += [base + i for i in graph.inputs if index[i] == base + i]
        for operator in graph.operators:
            code = model.operatorCodes[operator.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            if builtin not in codes:
                codes[builtin] = len(out.operatorCodes)
                out.operatorCodes.append(code)
            operator.opcodeIndex = codes[builtin]
            operator.inputs = [index[i] if i >= 0 else i for i in operator.inputs]
            operator.outputs = [index[i] for i in operator.outputs]
            operators.append(operator)
        last, last_shape = index[graph.outputs[0]], list(graph.tensors[graph.outputs[0]].shape)
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators, subgraph.inputs, subgraph.outputs = tensors, operators, inputs, [last]
    out.subgraphs = [subgraph]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(out))


def _specs(rng: np.random.Generator, per_space: int) -> list:
    """Random architectures of the four spaces at random resolutions, and every zoo family at a
    random width and resolution (``per_space`` of each)."""
    out = []
    for name in SPACES:
        space = spaces.get(name)
        for row in space.sample(rng, per_space):
            out.append(dataclasses.replace(space.decode(row), resolution=int(rng.choice(RESOLUTIONS))))
    families = sorted({entry.family for entry in zoo.entries()})
    for family in families:
        for _ in range(per_space):
            try:
                out.append(zoo.resolve(family, float(rng.choice(WIDTHS)), int(rng.choice(RESOLUTIONS))).spec)
            except SpecError:  # a patch stem that needs a resolution it divides: next draw
                continue
    return out


def observed_kernels(seed: int, per_space: int) -> list[Kernel]:
    """Distinct kernels of ``_specs`` (sorted by key, so a seed always gives the same list)."""
    seen: dict[str, Kernel] = {}
    for spec in _specs(np.random.default_rng(seed), per_space):
        try:
            layers = walk(spec)
        except SpecError:
            continue
        for kernel in detect_kernels(layers):
            seen.setdefault(kernel.key, kernel)
    return [seen[key] for key in sorted(seen)]


@dataclasses.dataclass(frozen=True)
class Ranges:
    """One free type's ranges: sides and channels (min, max) and its categorical choices
    (kernel, stride, activation, padded) as seen in the spaces."""

    hw: tuple[int, int]
    cin: tuple[int, int]
    cout: tuple[int, int]
    choices: tuple[tuple[int, int, str, bool], ...]
    elements: int  # the largest H x W x max(Cin, Cout) seen


def ranges(kernels: Iterable[Kernel]) -> dict[str, Ranges]:
    """Per free type, the ranges its kernels span."""
    grouped: dict[str, list[Kernel]] = {}
    for kernel in kernels:
        if kernel.type in FREE_TYPES:
            grouped.setdefault(kernel.type, []).append(kernel)
    out = {}
    for kind, group in grouped.items():
        hw = [k.op.in_shape[0] for k in group]
        cin = [k.op.in_shape[2] for k in group]
        cout = [k.se_channels or k.op.out_shape[2] for k in group]
        choices = sorted({(k.op.kernel, k.op.stride, k.op.act, k.padded) for k in group})
        elements = max(k.op.in_shape[0] * k.op.in_shape[1] * max(k.op.in_shape[2], k.op.out_shape[2])
                       for k in group)
        out[kind] = Ranges((min(hw), max(hw)), (min(cin), max(cin)), (min(cout), max(cout)), tuple(choices),
                           elements)
    return out


def make_kernel(kind: str, hw: int, cin: int, cout: int, choice: tuple[int, int, str, bool]) -> Kernel:
    """A kernel of a free type at the given shape; ``cout`` is ignored where it equals ``cin``."""
    k, s, act, padded = choice
    shape = (hw, hw, cin)
    if kind in ("conv", "pwconv"):
        return Kernel(kind, conv_op(shape, cout, k, s, act=act))
    if kind == "fc":
        return Kernel(kind, conv_op((1, 1, cin), cout, act=act, bn=False, bias=True))
    if kind == "dwconv":
        return Kernel(kind, dwconv_op(shape, k, s, act), padded=padded)
    if kind == "se":
        reduce = conv_op((1, 1, cin), cout, act="relu", bn=False, bias=True)
        expand = conv_op((1, 1, cout), cin, bn=False, bias=True)
        op = Op("pool", shape, shape, act=act, macs=reduce.macs + expand.macs, params=reduce.params + expand.params)
        return Kernel(kind, op, se_channels=cout)
    if kind in _ACT_TYPES:
        return Kernel(kind, Op("act", shape, shape, act=kind))
    if kind == "pool":
        return Kernel(kind, Op("pool", shape, (1, 1, cin)))
    return Kernel(kind, Op(kind, shape, shape))  # add, mul


def _from_unit(u: float, span: tuple[int, int], multiple: int) -> int:
    """A point of [0, 1] as an integer of the (log) span: a multiple of ``multiple`` from twice it
    up (channel counts), any integer below (a stem's 3 input channels, a 7 px map)."""
    low, high = math.log(span[0]), math.log(span[1])
    value = math.exp(low + float(u) * (high - low))
    if value < 2 * multiple:
        return max(span[0], int(round(value)))
    return int(round(value / multiple)) * multiple


def sobol_kernels(kind: str, span: Ranges, n: int, seed: int) -> list[Kernel]:
    """``n`` kernels of a free type from a scrambled Sobol sequence over its (log) ranges, keeping
    only points whose tensors are no larger than the largest the spaces have (H x W x max(Cin,
    Cout) <= ``span.elements``): a 160 px map with 2,400 channels occurs in no network."""
    from scipy.stats import qmc

    points = qmc.Sobol(4, scramble=True, seed=seed).random(1 << max(1, math.ceil(math.log2(8 * n))))
    out = []
    for u in points:
        hw = _from_unit(u[0], span.hw, 1)
        cin = _from_unit(u[1], span.cin, 8)
        cout = _from_unit(u[2], span.cout, 8 if kind != "se" else 4)
        if hw * hw * max(cin, cout if kind != "se" else cin) > span.elements:
            continue
        choice = span.choices[min(int(u[3] * len(span.choices)), len(span.choices) - 1)]
        out.append(make_kernel(kind, hw, cin, cout, choice))
        if len(out) == n:
            break
    return out


def neighbours(kernel: Kernel, n: int, rng: np.random.Generator) -> list[Kernel]:
    """``n`` kernels around a free-type kernel: side and channels each scaled by up to about
    +-30 % (log-normal, sigma 0.15), the categorical choices kept. Other types have none."""
    if kernel.type not in FREE_TYPES:
        return []
    op = kernel.op
    hw, cin = op.in_shape[0], op.in_shape[2]
    cout = kernel.se_channels or op.out_shape[2]
    choice = (op.kernel, op.stride, op.act, kernel.padded)
    out = []
    for f in np.exp(rng.normal(0, 0.15, (n, 3))):
        out.append(make_kernel(kernel.type, max(1, round(hw * f[0])) if hw > 1 else 1,
                               max(4, round(cin * f[1] / 4) * 4), max(4, round(cout * f[2] / 4) * 4), choice))
    return out


def fusion_cases() -> dict[str, tuple[list[bytes], bytes]]:
    """nn-Meter's fusion test cases: the ops' own models and the model of them together.
    Shapes are mid-network MobileNet ones (56 x 56 x 24 -> 144 expanded)."""
    from edgetailor.profiling.tflite_ops import op_model

    conv = conv_op((56, 56, 24), 144)
    dw = dwconv_op((56, 56, 144), 3, 1)
    dw_s2 = dwconv_op((56, 56, 144), 5, 2, "relu6")
    se = make_kernel("se", 28, 144, 36, (1, 1, "hsigmoid", False))
    c, mid = 144, 36
    return {
        "conv+relu": ([op_model(conv), op_model(Op("act", conv.out_shape, conv.out_shape, act="relu"))],
                      op_model(dataclasses.replace(conv, act="relu"))),
        "dwconv+relu6": ([op_model(dw), op_model(Op("act", dw.out_shape, dw.out_shape, act="relu6"))],
                         op_model(dataclasses.replace(dw, act="relu6"))),
        "pad+dwconv": ([_padded_dwconv_model(dw_s2, conv=False), _padded_dwconv_model(dw_s2, pad=False)],
                       _padded_dwconv_model(dw_s2)),
        "se": ([op_model(Op("pool", (28, 28, c), (1, 1, c))),
                op_model(conv_op((1, 1, c), mid, act="relu", bn=False, bias=True)),
                op_model(conv_op((1, 1, mid), c, act="hsigmoid", bn=False, bias=True)),
                op_model(Op("mul", (28, 28, c), (28, 28, c)))], kernel_model(se)),
        "conv+hswish": ([op_model(conv), op_model(Op("act", conv.out_shape, conv.out_shape, act="hswish"))],
                        op_model(dataclasses.replace(conv, act="hswish"))),
        "dwconv+swish": ([op_model(dw), op_model(Op("act", dw.out_shape, dw.out_shape, act="swish"))],
                         op_model(dataclasses.replace(dw, act="swish"))),
    }


def fused(parts_ms: list[float], together_ms: float) -> bool:
    """nn-Meter's rule, for two or more ops: one kernel when the time saved by running them
    together exceeds half the cheapest op's own time."""
    return sum(parts_ms) - together_ms > 0.5 * min(parts_ms)
