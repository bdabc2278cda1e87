"""Single-op TFLite models written directly as flatbuffers, for op-level latency measurement.

Converting a Keras model takes seconds (~5 s even for one block); writing the flatbuffer of one
op takes well under a millisecond, so thousands of ops can be timed in a minute or two. Each
``Op`` of the layer walk becomes the same TFLite builtin(s) the converter emits for it
(CONV_2D / DEPTHWISE_CONV_2D with BatchNorm folded and relu/relu6 fused, HARD_SWISH, LOGISTIC +
MUL for swish, GELU, MEAN for global pooling, ...), with random float32 weights; the hybrid
(attention) ops' models are in ``hybrid_tflite_ops``.
"""
from __future__ import annotations

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from edgetailor.arch.layers import Op
from edgetailor.profiling.hybrid_tflite_ops import HYBRID_OP_KINDS, hybrid_ops

B = schema.BuiltinOperator
_FUSED = {"relu": schema.ActivationFunctionType.RELU, "relu6": schema.ActivationFunctionType.RELU6}


class _Graph:
    """A one-subgraph TFLite model under construction (object API)."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.buffers = [schema.BufferT()]  # buffer 0: the empty sentinel
        self.tensors: list = []
        self.operators: list = []
        self.codes: dict[int, int] = {}

    def tensor(self, shape, data: np.ndarray | None = None, dtype=schema.TensorType.FLOAT32) -> int:
        t = schema.TensorT()
        t.shape = list(shape)
        t.type = dtype
        t.name = f"t{len(self.tensors)}".encode()
        t.buffer = 0
        if data is not None:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.buffers.append(buffer)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def weights(self, shape, fan_in: int, fan_out: int) -> int:
        """The builder's initial weights: Keras' default Glorot uniform, limit sqrt(6 / (fan_in +
        fan_out)). A chain of kernels (``kernels.network_model``) then carries the values the
        built network does: exact GELU, exp and the like take up to 3x longer on some values
        than on others (GELU on N(0, s): 0.57 ms at s <= 0.3, 1.08 ms at s = 1, 1.7 ms at s >= 2;
        28 x 28 x 96, this host), so a fixed weight scale that shrinks values layer after layer
        prices them wrongly."""
        limit = (6 / (fan_in + fan_out)) ** 0.5
        return self.tensor(shape, self.rng.uniform(-limit, limit, shape).astype(np.float32))

    def op(self, code: int, inputs, outputs, options_type=0, options=None) -> None:
        if code not in self.codes:
            self.codes[code] = len(self.codes)
        o = schema.OperatorT()
        o.opcodeIndex = self.codes[code]
        o.inputs, o.outputs = list(inputs), list(outputs)
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        self.operators.append(o)

    def to_bytes(self, inputs, outputs) -> bytes:
        subgraph = schema.SubGraphT()
        subgraph.tensors, subgraph.operators = self.tensors, self.operators
        subgraph.inputs, subgraph.outputs = list(inputs), list(outputs)
        model = schema.ModelT()
        model.version = 3
        model.subgraphs = [subgraph]
        model.buffers = self.buffers
        codes = []
        for code in sorted(self.codes, key=self.codes.get):
            c = schema.OperatorCodeT()
            c.builtinCode = code
            c.deprecatedBuiltinCode = min(code, 127)
            c.version = 1
            codes.append(c)
        model.operatorCodes = codes
        return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _conv(g: _Graph, x: int, op: Op, groups_input_channels: int) -> int:
    h, w, cout = op.out_shape
    options = schema.Conv2DOptionsT()
    options.padding = schema.Padding.SAME
    options.strideH = options.strideW = op.stride
    options.fusedActivationFunction = _FUSED.get(op.act, 0)
    area = op.kernel * op.kernel
    kernel = g.weights([cout, op.kernel, op.kernel, groups_input_channels], area * groups_input_channels, area * cout)
    bias = g.tensor([cout], np.zeros(cout, np.float32))
    y = g.tensor([1, h, w, cout])
    g.op(B.CONV_2D, [x, kernel, bias], [y], schema.BuiltinOptions.Conv2DOptions, options)
    return y


def _activation(g: _Graph, x: int, shape, act: str) -> int:
    """Activations TFLite does not fuse into the conv."""
    if act == "gelu":  # exact (erf) GELU, as Keras' "gelu" converts
        y = g.tensor(shape)
        g.op(B.GELU, [x], [y], schema.BuiltinOptions.GeluOptions, schema.GeluOptionsT())
        return y
    if act == "hswish":
        y = g.tensor(shape)
        g.op(B.HARD_SWISH, [x], [y])
        return y
    if act in ("sigmoid", "swish"):
        s = g.tensor(shape)
        g.op(B.LOGISTIC, [x], [s])
        if act == "sigmoid":
            return s
        y = g.tensor(shape)
        g.op(B.MUL, [x, s], [y], schema.BuiltinOptions.MulOptions, schema.MulOptionsT())
        return y
    if act == "hsigmoid":
        three = g.tensor([1], np.array([3.0], np.float32))
        shifted, clipped, y = g.tensor(shape), g.tensor(shape), g.tensor(shape)
        g.op(B.ADD, [x, three], [shifted], schema.BuiltinOptions.AddOptions, schema.AddOptionsT())
        g.op(B.RELU6, [shifted], [clipped])
        sixth = g.tensor([1], np.array([1 / 6], np.float32))
        g.op(B.MUL, [clipped, sixth], [y], schema.BuiltinOptions.MulOptions, schema.MulOptionsT())
        return y
    return x


def op_model(op: Op) -> bytes:
    """A TFLite model computing ``op`` on a [1, H, W, C] float32 input (a hybrid op: on the
    input(s) ``hybrid_tflite_ops`` gives it)."""
    g = _Graph()
    if op.kind in HYBRID_OP_KINDS:  # layer norm, softmax, attention's products, ...
        return g.to_bytes(*hybrid_ops(g, op))
    x = g.tensor([1, *op.in_shape])
    out_shape = [1, *op.out_shape]
    if op.kind == "conv" and op.groups == 1:
        y = _conv(g, x, op, op.in_shape[2])
    elif op.kind == "conv":  # grouped 1x1: split, one conv per group, concatenate
        axis = g.tensor([], np.array(3, np.int32), schema.TensorType.INT32)
        part_shape = [1, *op.in_shape[:2], op.in_shape[2] // op.groups]
        parts = [g.tensor(part_shape) for _ in range(op.groups)]
        split = schema.SplitOptionsT()
        split.numSplits = op.groups
        g.op(B.SPLIT, [axis, x], parts, schema.BuiltinOptions.SplitOptions, split)
        per_group = Op("conv", tuple(part_shape[1:]), (*op.out_shape[:2], op.out_shape[2] // op.groups),
                       op.kernel, op.stride, 1, op.bias, op.bn, op.act)
        outs = [_conv(g, p, per_group, part_shape[3]) for p in parts]
        y = g.tensor(out_shape)
        concat = schema.ConcatenationOptionsT()
        concat.axis = 3
        g.op(B.CONCATENATION, outs, [y], schema.BuiltinOptions.ConcatenationOptions, concat)
    elif op.kind == "dwconv":
        options = schema.DepthwiseConv2DOptionsT()
        options.padding = schema.Padding.SAME
        options.strideH = options.strideW = op.stride
        options.depthMultiplier = 1
        options.fusedActivationFunction = _FUSED.get(op.act, 0)
        c = op.out_shape[2]
        kernel = g.weights([1, op.kernel, op.kernel, c], op.kernel * op.kernel * c, op.kernel * op.kernel)  # Keras' fans
        bias = g.tensor([c], np.zeros(c, np.float32))
        y = g.tensor(out_shape)
        g.op(B.DEPTHWISE_CONV_2D, [x, kernel, bias], [y],
             schema.BuiltinOptions.DepthwiseConv2DOptions, options)
    elif op.kind == "pool":
        axes = g.tensor([2], np.array([1, 2], np.int32), schema.TensorType.INT32)
        y = g.tensor(out_shape)
        reducer = schema.ReducerOptionsT()
        reducer.keepDims = True
        g.op(B.MEAN, [x, axes], [y], schema.BuiltinOptions.ReducerOptions, reducer)
    elif op.kind == "maxpool":
        pool = schema.Pool2DOptionsT()
        pool.padding = schema.Padding.SAME
        pool.strideH = pool.strideW = op.stride
        pool.filterHeight = pool.filterWidth = op.kernel
        y = g.tensor(out_shape)
        g.op(B.MAX_POOL_2D, [x], [y], schema.BuiltinOptions.Pool2DOptions, pool)
    elif op.kind == "avgpool":
        pool = schema.Pool2DOptionsT()
        pool.padding = schema.Padding.SAME
        pool.strideH = pool.strideW = op.stride
        pool.filterHeight = pool.filterWidth = op.kernel
        y = g.tensor(out_shape)
        g.op(B.AVERAGE_POOL_2D, [x], [y], schema.BuiltinOptions.Pool2DOptions, pool)
    elif op.kind == "act" and op.act in ("relu", "relu6"):  # a pre-activation (NASNet), not fused
        y = g.tensor(out_shape)
        g.op(B.RELU if op.act == "relu" else B.RELU6, [x], [y])
    elif op.kind == "act" and op.act in ("hswish", "sigmoid", "swish", "hsigmoid", "gelu"):
        y = _activation(g, x, out_shape, op.act)
    elif op.kind == "shift":  # NASNet's factorized reduction: PAD bottom/right, then SLICE off row/col 0
        h, w, c = op.in_shape
        pads = g.tensor([4, 2], np.array([[0, 0], [0, 1], [0, 1], [0, 0]], np.int32), schema.TensorType.INT32)
        padded = g.tensor([1, h + 1, w + 1, c])
        g.op(B.PAD, [x, pads], [padded])
        begin = g.tensor([4], np.array([0, 1, 1, 0], np.int32), schema.TensorType.INT32)
        size = g.tensor([4], np.array(out_shape, np.int32), schema.TensorType.INT32)
        y = g.tensor(out_shape)
        g.op(B.SLICE, [padded, begin, size], [y])
    elif op.kind == "mul":  # SE's multiply broadcasts a [1, 1, 1, C] gate
        gate = g.tensor([1, 1, 1, op.in_shape[2]], np.ones(op.in_shape[2], np.float32))
        y = g.tensor(out_shape)
        g.op(B.MUL, [x, gate], [y], schema.BuiltinOptions.MulOptions, schema.MulOptionsT())
    elif op.kind == "add":  # the residual add: the block's output plus the skip, a second input
        skip, y = g.tensor([1, *op.in_shape]), g.tensor(out_shape)
        g.op(B.ADD, [x, skip], [y], schema.BuiltinOptions.AddOptions, schema.AddOptionsT())
        return g.to_bytes([x, skip], [y])
    elif op.kind == "concat":  # copies of the input, and an input of the channels left over
        copies, rest = divmod(op.out_shape[2], op.in_shape[2])
        extra = [g.tensor([1, *op.in_shape[:2], rest])] if rest else []
        y = g.tensor(out_shape)
        concat = schema.ConcatenationOptionsT()
        concat.axis = 3
        g.op(B.CONCATENATION, [x] * copies + extra, [y], schema.BuiltinOptions.ConcatenationOptions, concat)
        return g.to_bytes([x, *extra], [y])
    elif op.kind == "split":
        begin = g.tensor([4], np.zeros(4, np.int32), schema.TensorType.INT32)
        size = g.tensor([4], np.array(out_shape, np.int32), schema.TensorType.INT32)
        y = g.tensor(out_shape)
        g.op(B.SLICE, [x, begin, size], [y])
    elif op.kind == "shuffle":
        h, w, c = op.in_shape
        grouped = g.tensor([1, h, w, 2, c // 2])
        shape5 = g.tensor([5], np.array([1, h, w, 2, c // 2], np.int32), schema.TensorType.INT32)
        g.op(B.RESHAPE, [x, shape5], [grouped])
        perm = g.tensor([5], np.array([0, 1, 2, 4, 3], np.int32), schema.TensorType.INT32)
        swapped = g.tensor([1, h, w, c // 2, 2])
        g.op(B.TRANSPOSE, [grouped, perm], [swapped])
        shape4 = g.tensor([4], np.array(out_shape, np.int32), schema.TensorType.INT32)
        y = g.tensor(out_shape)
        g.op(B.RESHAPE, [swapped, shape4], [y])
    else:
        raise ValueError(f"no TFLite op model for op kind {op.kind!r}")
    y = _activation(g, y, out_shape, op.act) if op.kind in ("conv", "dwconv") else y
    return g.to_bytes([x], [y])
