"""One op of a converted TFLite model as its own model, and the quantize/dequantize boundary ops.

The host prices a mixed-precision model per layer at the precision it runs in. Rather than
re-deriving each kernel from the layer walk, the op is cut out of the model the converter made
(its tensors, int8 scales and zero points, weights and options copied unchanged), so the timed
kernel is exactly the one the model runs: float32 from the float model, int8 from the int8 one.
A ``QUANTIZE`` (float32 -> int8) or ``DEQUANTIZE`` (int8 -> float32) model at a tensor's shape
prices the boundary a float layer between int8 neighbours adds.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

_TYPES = {schema.TensorType.FLOAT32: "float32", schema.TensorType.INT8: "int8",
          schema.TensorType.UINT8: "uint8", schema.TensorType.INT32: "int32",
          schema.TensorType.FLOAT16: "float16", schema.TensorType.INT16: "int16",
          schema.TensorType.INT64: "int64"}
_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE")


@dataclass(frozen=True)
class Node:
    """One operator of a model's main graph: what it reads and writes (tensor indices)."""

    index: int
    op: str                          # builtin name, e.g. "CONV_2D"
    inputs: tuple[int, ...]          # activation inputs (not weights or constants)
    outputs: tuple[int, ...]
    output_name: str                 # the converter's name of the first output tensor
    output_type: str                 # "int8", "float32", ...
    output_shape: tuple[int, ...]


def read_model(flatbuffer: bytes) -> schema.ModelT:
    """The flatbuffer as mutable objects (object API)."""
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))


def _op_name(model: schema.ModelT, operator) -> str:
    code = model.operatorCodes[operator.opcodeIndex]
    return _OP_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")


def _is_constant(model: schema.ModelT, tensor) -> bool:
    data = model.buffers[tensor.buffer].data if tensor.buffer else None
    return data is not None and len(data) > 0


def nodes(model: schema.ModelT) -> list[Node]:
    """The main graph's operators in execution order."""
    graph = model.subgraphs[0]
    out = []
    for index, operator in enumerate(graph.operators):
        activations = tuple(int(i) for i in operator.inputs
                            if i >= 0 and not _is_constant(model, graph.tensors[i]))
        first = graph.tensors[operator.outputs[0]]
        out.append(Node(index, _op_name(model, operator), activations, tuple(int(i) for i in operator.outputs),
                        first.name.decode(), _TYPES.get(first.type, str(first.type)),
                        tuple(int(d) for d in first.shape)))
    return out


def tensor_type(model: schema.ModelT, tensor: int) -> str:
    return _TYPES.get(model.subgraphs[0].tensors[tensor].type, "other")


def tensor_shape(model: schema.ModelT, tensor: int) -> tuple[int, ...]:
    return tuple(int(d) for d in model.subgraphs[0].tensors[tensor].shape)


def single_op_model(model: schema.ModelT, index: int) -> bytes:
    """Operator ``index`` of ``model``'s main graph alone: its activation inputs become the model's
    inputs, its outputs the outputs; weights, quantization parameters and options are copied."""
    graph = model.subgraphs[0]
    operator = copy.deepcopy(graph.operators[index])
    kept: dict[int, int] = {}
    tensors, buffers = [], [schema.BufferT()]

    def keep(i: int) -> int:
        if i < 0:
            return i
        if i not in kept:
            tensor = copy.deepcopy(graph.tensors[i])
            if _is_constant(model, tensor):
                buffers.append(copy.deepcopy(model.buffers[tensor.buffer]))
                tensor.buffer = len(buffers) - 1
            else:
                tensor.buffer = 0
            kept[i] = len(tensors)
            tensors.append(tensor)
        return kept[i]

    inputs = [i for i in operator.inputs if i >= 0 and not _is_constant(model, graph.tensors[i])]
    operator.inputs = [keep(int(i)) for i in operator.inputs]
    operator.outputs = [keep(int(i)) for i in operator.outputs]
    sub = schema.SubGraphT()
    sub.tensors, sub.operators = tensors, [operator]
    sub.inputs, sub.outputs = [kept[int(i)] for i in inputs], list(operator.outputs)
    out = schema.ModelT()
    out.version, out.operatorCodes, out.subgraphs, out.buffers = 3, model.operatorCodes, [sub], buffers
    return bytes(flatbuffer_utils.convert_object_to_bytearray(out))


def boundary_model(kind: str, shape: tuple[int, ...], scale: float = 0.02, zero_point: int = 0) -> bytes:
    """A one-op ``QUANTIZE`` (float32 -> int8) or ``DEQUANTIZE`` (int8 -> float32) model on ``shape``."""
    if kind not in BOUNDARY_OPS:
        raise ValueError(f"not a boundary op: {kind!r}")

    def tensor(name: str, dtype: int):
        t = schema.TensorT()
        t.shape, t.type, t.name, t.buffer = list(shape), dtype, name.encode(), 0
        if dtype == schema.TensorType.INT8:
            t.quantization = schema.QuantizationParametersT()
            t.quantization.scale = np.array([scale], np.float32)
            t.quantization.zeroPoint = np.array([zero_point], np.int64)
        return t

    float_t, int8_t = schema.TensorType.FLOAT32, schema.TensorType.INT8
    src, dst = (float_t, int8_t) if kind == "QUANTIZE" else (int8_t, float_t)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, kind)
    code.version = 1
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, [0], [1]
    sub = schema.SubGraphT()
    sub.tensors, sub.operators, sub.inputs, sub.outputs = [tensor("x", src), tensor("y", dst)], [operator], [0], [1]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [sub], [schema.BufferT()]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def arch_op(model: schema.ModelT, node: Node):
    """The layer walk's ``Op`` that a TFLite operator computes, so that a device profile's op model
    prices it (phones have no one-op timings): convolutions, depthwise convolutions and fully
    connected layers exactly (kernel, stride, channels, fused activation); ADD and MUL as
    elementwise ops; MEAN as pooling; a standalone activation (HARD_SWISH, LOGISTIC) as an
    elementwise op with that activation; anything else (PAD, SOFTMAX, RESHAPE, ...) as elementwise
    work on its input."""
    from edgetailor.arch.layers import Op

    graph = model.subgraphs[0]
    operator = graph.operators[node.index]

    def hwc(tensor: int) -> tuple[int, int, int]:
        shape = [int(d) for d in graph.tensors[tensor].shape][1:]
        shape = [1] * (3 - len(shape)) + shape if len(shape) < 3 else shape[-3:]
        return tuple(shape)

    x = hwc(node.inputs[0]) if node.inputs else hwc(node.outputs[0])
    y = hwc(node.outputs[0])
    options = operator.builtinOptions
    act = {schema.ActivationFunctionType.RELU: "relu", schema.ActivationFunctionType.RELU6: "relu6"}.get(
        getattr(options, "fusedActivationFunction", 0), "linear")
    if node.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        kernel = int(graph.tensors[operator.inputs[1]].shape[1])
        stride = int(options.strideH)
        if node.op == "CONV_2D":
            return Op("conv", x, y, kernel, stride, act=act, macs=y[0] * y[1] * kernel * kernel * x[2] * y[2])
        return Op("dwconv", x, y, kernel, stride, groups=y[2], act=act, macs=y[0] * y[1] * kernel * kernel * y[2])
    if node.op == "FULLY_CONNECTED":
        cin, cout = int(graph.tensors[operator.inputs[1]].shape[1]), y[2]
        return Op("conv", (1, 1, cin), (1, 1, cout), act=act, macs=cin * cout)
    if node.op == "MEAN":
        return Op("pool", x, y)
    activation = {"HARD_SWISH": "hswish", "LOGISTIC": "sigmoid"}.get(node.op, "linear")
    return Op("mul" if node.op == "MUL" else "add", x, y, act=activation)
