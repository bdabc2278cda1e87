"""One-op TFLite models of the hybrid (convolution-attention) ops of EdgeNeXt and EfficientFormerV2.

Each walk op (``edgetailor.arch.layers``) becomes the builtins the TFLite 2.15 converter emits for
the Keras layer ``edgetailor.builder`` makes of it, as read off converted EdgeNeXt-XXS and
EfficientFormerV2-S0: layer norm is MEAN, SQUARED_DIFFERENCE, MEAN, ADD, RSQRT, MUL x3, SUB, ADD;
softmax is SOFTMAX on [1, heads, rows, cols]; bilinear upsampling is RESIZE_BILINEAR (half-pixel
centres); a matrix product is BATCH_MATMUL with the RESHAPE/TRANSPOSE pairs that move a
[1, H, W, C] map to heads-major layout and back (the walk has no op of their own), a talking-heads
mix is TRANSPOSE, FULLY_CONNECTED, TRANSPOSE; L2 normalisation is SPLIT of q|k|v, then per q and k
RESHAPE, TRANSPOSE, L2_NORMALIZATION. Both operands of a product are model inputs, as in the
network (no constant the delegate could pre-pack).

Layer scale is a per-channel MUL; the converter folds it into the 1 x 1 convolution before it (in
both families it always follows one), so timing it prices a MUL the converted model does not run.
"""
from __future__ import annotations

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

from edgetailor.arch.layers import Op

B = schema.BuiltinOperator

HYBRID_OP_KINDS = ("layernorm", "scale", "softmax", "l2norm", "matmul", "upsample")
LAYER_NORM_EPSILON = 1e-6  # edgetailor.builder.network.LAYER_NORM_EPSILON (not imported: builder imports Keras)


def _ints(g, values) -> int:
    values = np.asarray(values, np.int32)
    return g.tensor(values.shape, values, schema.TensorType.INT32)


def _scalar(g, value: float) -> int:
    return g.tensor([], np.array(value, np.float32))


def _binary(g, code: int, a: int, b: int, shape) -> int:
    options = {B.ADD: (schema.BuiltinOptions.AddOptions, schema.AddOptionsT),
               B.MUL: (schema.BuiltinOptions.MulOptions, schema.MulOptionsT),
               B.SUB: (schema.BuiltinOptions.SubOptions, schema.SubOptionsT)}.get(code)
    y = g.tensor(shape)
    if options:
        g.op(code, [a, b], [y], options[0], options[1]())
    else:
        g.op(code, [a, b], [y])
    return y


def _reshape(g, x: int, shape) -> int:
    y = g.tensor(shape)
    g.op(B.RESHAPE, [x, _ints(g, shape)], [y])
    return y


def _transpose(g, x: int, in_shape, perm) -> int:
    y = g.tensor([in_shape[p] for p in perm])
    g.op(B.TRANSPOSE, [x, _ints(g, perm)], [y])
    return y


def _batch_matmul(g, a: int, b: int, shape, adj_y: bool = False) -> int:
    options = schema.BatchMatMulOptionsT()
    options.adjY = adj_y
    y = g.tensor(shape)
    g.op(B.BATCH_MATMUL, [a, b], [y], schema.BuiltinOptions.BatchMatMulOptions, options)
    return y


def _layernorm(g, op: Op) -> tuple[list[int], list[int]]:
    h, w, c = op.in_shape
    shape, stat = [1, h, w, c], [1, h, w, 1]
    x = g.tensor(shape)
    axis = _ints(g, [3])
    reducer = schema.ReducerOptionsT()
    reducer.keepDims = True
    mean, var = g.tensor(stat), g.tensor(stat)
    g.op(B.MEAN, [x, axis], [mean], schema.BuiltinOptions.ReducerOptions, reducer)
    squared = _binary(g, B.SQUARED_DIFFERENCE, x, mean, shape)
    g.op(B.MEAN, [squared, axis], [var], schema.BuiltinOptions.ReducerOptions, reducer)
    inv = g.tensor(stat)
    g.op(B.RSQRT, [_binary(g, B.ADD, var, _scalar(g, LAYER_NORM_EPSILON), stat)], [inv])
    factor = _binary(g, B.MUL, inv, g.tensor([c], np.ones(c, np.float32)), shape)
    shift = _binary(g, B.SUB, g.tensor([c], np.zeros(c, np.float32)), _binary(g, B.MUL, mean, factor, shape), shape)
    return [x], [_binary(g, B.ADD, _binary(g, B.MUL, x, factor, shape), shift, shape)]


def _softmax(g, op: Op) -> tuple[list[int], list[int]]:
    rows, cols, heads = op.in_shape
    x = g.tensor([1, heads, rows, cols])
    options = schema.SoftmaxOptionsT()
    options.beta = 1.0
    y = g.tensor([1, heads, rows, cols])
    g.op(B.SOFTMAX, [x], [y], schema.BuiltinOptions.SoftmaxOptions, options)
    return [x], [y]


def _l2norm(g, op: Op) -> tuple[list[int], list[int]]:
    """XCA's q and k, split off the q|k|v map, to [1, C, N] and L2-normalised over the N tokens."""
    h, w, c3 = op.in_shape
    c, n = c3 // 3, h * w
    x = g.tensor([1, h, w, c3])
    parts = [g.tensor([1, h, w, c]) for _ in range(3)]
    split = schema.SplitOptionsT()
    split.numSplits = 3
    g.op(B.SPLIT, [_ints(g, 3), x], parts, schema.BuiltinOptions.SplitOptions, split)
    outs = []
    for part in parts[:2]:
        tokens = _transpose(g, _reshape(g, part, [1, n, c]), [1, n, c], [0, 2, 1])
        y = g.tensor([1, c, n])
        g.op(B.L2_NORMALIZATION, [tokens], [y], schema.BuiltinOptions.L2NormOptions, schema.L2NormOptionsT())
        outs.append(y)
    return [x], outs


def _talking_heads(g, op: Op) -> tuple[list[int], list[int]]:
    """A heads x heads linear map (with bias) at every (query, key) of [1, heads, rows, cols] scores."""
    rows, cols, heads = op.in_shape
    x = g.tensor([1, heads, rows, cols])
    last = _transpose(g, x, [1, heads, rows, cols], [0, 2, 3, 1])
    options = schema.FullyConnectedOptionsT()
    options.keepNumDims = True
    mixed = g.tensor([1, rows, cols, heads])
    g.op(B.FULLY_CONNECTED, [last, g.weights([heads, heads], heads, heads), g.tensor([heads], np.zeros(heads, np.float32))],
         [mixed], schema.BuiltinOptions.FullyConnectedOptions, options)
    return [x], [_transpose(g, mixed, [1, rows, cols, heads], [0, 3, 1, 2])]


def _scores(g, op: Op) -> tuple[list[int], list[int]]:
    """q . k^T per head into [1, heads, M, N] scores, then the per-head scale (1/sqrt(d) or XCA's
    temperature). EfficientFormerV2 (reduction = channels per head): q [1, H, W, C] and k [1, N, C]
    maps reshaped and transposed here; XCA (reduction = tokens): the L2-normalised [1, heads, d, N]
    q and k of the ``l2norm`` model."""
    heads, k = op.groups, op.kernel
    m, n = op.out_shape[0], op.out_shape[1]
    shape = [1, heads, m, n]
    if k * heads == op.in_shape[2]:
        q_map, k_map = g.tensor([1, *op.in_shape]), g.tensor([1, n, op.in_shape[2]])
        q = _transpose(g, _reshape(g, q_map, [1, m, heads, k]), [1, m, heads, k], [0, 2, 1, 3])
        keys = _transpose(g, _reshape(g, k_map, [1, n, heads, k]), [1, n, heads, k], [0, 2, 3, 1])
        inputs, product = [q_map, k_map], _batch_matmul(g, q, keys, shape)
    else:
        q, keys = g.tensor([1, heads, m, k]), g.tensor([1, heads, n, k])
        inputs, product = [q, keys], _batch_matmul(g, q, keys, shape, adj_y=True)
    scale = g.tensor([heads, 1, 1], np.full((heads, 1, 1), k ** -0.5, np.float32))
    return inputs, [_binary(g, B.MUL, product, scale, shape)]


def _weighted_values(g, op: Op) -> tuple[list[int], list[int]]:
    """[1, heads, M, K] attention times the values, back to the [1, H, W, C] map. EfficientFormerV2:
    tokens are the M rows (values: a [1, K, heads * N] map); XCA: tokens are the N columns (values:
    a [1, N, heads * K] map, the d x d attention mixing channels)."""
    heads, k = op.groups, op.kernel
    m = op.in_shape[0]
    h, w, c = op.out_shape
    n = h * w * c // (heads * m)
    attention = g.tensor([1, heads, m, k])
    if h * w == m:
        v_map = g.tensor([1, k, heads * n])
        values = _transpose(g, _reshape(g, v_map, [1, k, heads, n]), [1, k, heads, n], [0, 2, 1, 3])
        perm = [0, 2, 1, 3]
    else:
        v_map = g.tensor([1, n, heads * k])
        values = _transpose(g, _reshape(g, v_map, [1, n, heads, k]), [1, n, heads, k], [0, 2, 3, 1])
        perm = [0, 3, 1, 2]
    product = _batch_matmul(g, attention, values, [1, heads, m, n])
    return [attention, v_map], [_reshape(g, _transpose(g, product, [1, heads, m, n], perm), [1, h, w, c])]


def _matmul(g, op: Op) -> tuple[list[int], list[int]]:
    if op.bias:
        return _talking_heads(g, op)
    if op.out_shape[2] == op.groups:
        return _scores(g, op)
    return _weighted_values(g, op)


def _scale(g, op: Op) -> tuple[list[int], list[int]]:
    shape = [1, *op.in_shape]
    x = g.tensor(shape)
    c = op.in_shape[2]
    return [x], [_binary(g, B.MUL, x, g.tensor([c], np.full(c, 1e-6, np.float32)), shape)]


def _upsample(g, op: Op) -> tuple[list[int], list[int]]:
    x = g.tensor([1, *op.in_shape])
    options = schema.ResizeBilinearOptionsT()
    options.alignCorners, options.halfPixelCenters = False, True  # tf.image.resize, as UpSampling2D
    y = g.tensor([1, *op.out_shape])
    g.op(B.RESIZE_BILINEAR, [x, _ints(g, op.out_shape[:2])], [y],
         schema.BuiltinOptions.ResizeBilinearOptions, options)
    return [x], [y]


_MODELS = {"layernorm": _layernorm, "scale": _scale, "softmax": _softmax, "l2norm": _l2norm,
           "matmul": _matmul, "upsample": _upsample}


def hybrid_ops(g, op: Op) -> tuple[list[int], list[int]]:
    """Write the hybrid ``op`` (a kind in ``HYBRID_OP_KINDS``) into ``g``, a ``tflite_ops`` graph
    under construction; its (input, output) tensor indices."""
    return _MODELS[op.kind](g, op)
