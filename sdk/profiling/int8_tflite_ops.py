"""Full-integer (int8 in, int8 out) versions of the one-op TFLite models, for int8 host profiles.

``int8_op_model(op)`` takes the float32 model ``tflite_ops.op_model`` writes and quantizes it the
way the TFLite converter's full-integer mode lays a network out (``converters.tflite.full_integer``,
TF src ``tensorflow/lite/tools/optimize/operator_property.cc`` for the per-op rules):

- every float activation tensor becomes INT8 with one scale (``ACTIVATION_SCALE``, zero point 0),
  so concatenations and adds need no requantization, as after calibration of a real network;
- convolution and depthwise filters are INT8 per output channel (dimension 0, resp. 3), other
  constant weights (FULLY_CONNECTED, broadcast gates) INT8 per tensor, all symmetric;
- biases INT32 at input scale x filter scale;
- outputs whose range the kernels fix keep the fixed parameters: LOGISTIC and SOFTMAX 1/256 with
  zero point -128, L2_NORMALIZATION 1/128 with zero point 0.

The model runs in the TFLite interpreter (XNNPACK takes the ops it has QS8 kernels for, the rest
run on TFLite's own int8 kernels), which is what an int8 model of the network executes.
"""
from __future__ import annotations

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from edgetailor.arch.layers import Op
from edgetailor.profiling.tflite_ops import op_model

B = schema.BuiltinOperator
T = schema.TensorType
ACTIVATION_SCALE = 0.05  # +-6.4: the range a batch-normalised, ReLU6-bounded activation spans
_FIXED_OUTPUT = {B.LOGISTIC: (1 / 256, -128), B.SOFTMAX: (1 / 256, -128), B.L2_NORMALIZATION: (1 / 128, 0)}
_FILTERED = {B.CONV_2D: 0, B.DEPTHWISE_CONV_2D: 3, B.FULLY_CONNECTED: None}  # per-channel dimension


def _quantization(scale, zero_point, dimension: int = 0) -> schema.QuantizationParametersT:
    q = schema.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(scale)]
    q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
    q.quantizedDimension = dimension
    return q


def _symmetric(values: np.ndarray, dimension: int | None) -> tuple[np.ndarray, np.ndarray]:
    """int8 values and scales (per slice along ``dimension``, or one) of a float constant."""
    axes = None if dimension is None else tuple(i for i in range(values.ndim) if i != dimension)
    peak = np.max(np.abs(values), axis=axes, keepdims=dimension is not None)
    scale = np.maximum(peak, 1e-8) / 127.0
    return np.clip(np.round(values / scale), -127, 127).astype(np.int8), np.ravel(scale)


def _set(model, tensor, data: np.ndarray, dtype: int, quantization) -> None:
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
    model.buffers.append(buffer)
    tensor.buffer, tensor.type, tensor.quantization = len(model.buffers) - 1, dtype, quantization


def quantize_model(float_model: bytes) -> bytes:
    """The int8 version of a float32 one-op TFLite model (see the module docstring)."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(float_model))
    graph = model.subgraphs[0]
    codes = [c.builtinCode for c in model.operatorCodes]
    done: set[int] = set()

    def constant(index: int) -> np.ndarray | None:
        tensor = graph.tensors[index]
        data = model.buffers[tensor.buffer].data if tensor.buffer else None
        return None if data is None or len(data) == 0 else \
            np.frombuffer(bytes(data), np.float32).reshape(tensor.shape)

    for operator in graph.operators:
        code = codes[operator.opcodeIndex]
        if code in _FILTERED and len(operator.inputs) >= 2:
            w = operator.inputs[1]
            weights, scales = _symmetric(constant(w), _FILTERED[code])
            _set(model, graph.tensors[w], weights, T.INT8, _quantization(scales, np.zeros(len(scales)),
                                                                          _FILTERED[code] or 0))
            done.add(w)
            if len(operator.inputs) > 2 and operator.inputs[2] >= 0:
                b = operator.inputs[2]
                bias_scale = ACTIVATION_SCALE * scales
                bias = np.round(constant(b) / (bias_scale if len(scales) > 1 else bias_scale[0])).astype(np.int32)
                _set(model, graph.tensors[b], bias, T.INT32, _quantization(bias_scale, np.zeros(len(bias_scale))))
                done.add(b)
        for out in operator.outputs:
            if code in _FIXED_OUTPUT:
                graph.tensors[out].type = T.INT8
                graph.tensors[out].quantization = _quantization(*_FIXED_OUTPUT[code])
                done.add(out)
    for index, tensor in enumerate(graph.tensors):
        if index in done or tensor.type != T.FLOAT32:
            continue
        values = constant(index)
        if values is None:
            tensor.type, tensor.quantization = T.INT8, _quantization(ACTIVATION_SCALE, 0)
        else:
            data, scale = _symmetric(values, None)
            _set(model, tensor, data, T.INT8, _quantization(scale, 0))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def int8_op_model(op: Op) -> bytes:
    """A full-integer TFLite model computing ``op`` on an int8 ``[1, H, W, C]`` input."""
    return quantize_model(op_model(op))


def input_conversion_model(resolution: int) -> bytes:
    """The QUANTIZE an int8 model with a uint8 input starts with, on a ``resolution`` square RGB
    image: uint8 pixels (scale 1/127.5, zero point 127, as the converter sets it for a [-1, 1]
    input calibrated on 0..255 pixels) to int8 (zero point -1). TFLite runs it in its own kernel,
    not XNNPACK (~2.5 ns per element here, 40x an int8 -> int8 requantization)."""
    from edgetailor.profiling.tflite_ops import _Graph

    g = _Graph()
    shape = [1, resolution, resolution, 3]
    pixels, out = g.tensor(shape, dtype=T.UINT8), g.tensor(shape, dtype=T.INT8)
    g.tensors[pixels].quantization = _quantization(1 / 127.5, 127)
    g.tensors[out].quantization = _quantization(1 / 127.5, -1)
    g.op(B.QUANTIZE, [pixels], [out])
    return g.to_bytes([pixels], [out])
