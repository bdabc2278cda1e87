"""TFLite vs Keras on fixed inputs: max abs error for float models, top-1 agreement for quantized.

The inputs are deterministic pixel images (smooth colour fields plus noise, seed 0) pushed
through the same normalisation the app will use, and quantized with the TFLite input tensor's
own scale and zero point when the model takes integers, so the comparison covers the
artifact exactly as an app feeds it.

A classifier is compared on its logits, the tensor that feeds its final softmax, on both sides,
and the float bound is relative to the largest Keras logit. Its probabilities would hide a
broken conversion: a random-weight network's activations shrink layer by layer (to ~1e-20 in
MobileNetV2), so every softmax output is exactly 1/classes whatever the input, and a max abs
error of 0 proves nothing; the logits still differ from image to image.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from tensorflow.lite.python import schema_py_generated as schema

from edgetailor.converters.base import FLOAT_MODES, Normalization, ParityError


@dataclass(frozen=True)
class Parity:
    kind: str  # "max_abs_error" (float modes) or "top1_agreement" (quantized modes)
    samples: int
    compared: str  # "logits" (a classifier's softmax input, both sides) or "outputs"
    max_abs_error: float
    top1_agreement: float
    tolerance: float | None  # float modes only: max_abs_error's bound relative to max |Keras value|
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if self.kind == "max_abs_error":
            return (f"max abs error of the {self.compared} {self.max_abs_error:.2e} (tolerance "
                    f"{self.tolerance:.0e} of their largest magnitude)")
        return (f"top-1 agreement {self.top1_agreement:.0%} (max abs error of the {self.compared} "
                f"{self.max_abs_error:.3f})")


def parity_pixels(size: tuple[int, int], samples: int = 8, seed: int = 0) -> np.ndarray:
    """``[samples, H, W, 3]`` float32 pixel images in 0..255, the same on every call."""
    rng = np.random.default_rng(seed)
    height, width = size
    cells = max(2, min(height, width) // 16)
    coarse = rng.uniform(0, 255, (samples, cells, cells, 3))
    reps = -(-max(height, width) // cells)
    smooth = np.repeat(np.repeat(coarse, reps, axis=1), reps, axis=2)[:, :height, :width]
    noisy = smooth + rng.normal(0, 12, smooth.shape)
    return np.clip(noisy, 0, 255).astype(np.float32)


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float model input -> what the interpreter takes: quantized with the input tensor's own scale
    and zero point when it is an integer tensor (as an app feeds an int8 model), else float32."""
    dtype = detail["dtype"]
    if dtype == np.float32:
        return x.astype(np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (y.astype(np.float32) - zero_point) * scale


def run_tflite(model: bytes, inputs: np.ndarray, tensor: int | None = None) -> np.ndarray:
    """The first output of ``model`` (or the tensor with index ``tensor``, such as the logits from
    ``softmax_input``) for each row of float ``inputs``, dequantized to float32."""
    # An inner tensor is kept only when the interpreter preserves them all, which also leaves
    # out the XNNPACK delegate (it would fuse the tensor away): TFLite's builtin kernels run.
    interpreter = tf.lite.Interpreter(model_content=model, num_threads=1,
                                      experimental_preserve_all_tensors=tensor is not None)
    interpreter.allocate_tensors()
    in_detail = interpreter.get_input_details()[0]
    out_detail = interpreter.get_output_details()[0] if tensor is None else next(
        d for d in interpreter.get_tensor_details() if d["index"] == tensor)
    outputs = []
    for row in inputs:
        interpreter.set_tensor(in_detail["index"], quantize_input(row[None], in_detail))
        interpreter.invoke()
        outputs.append(_dequantize(interpreter.get_tensor(out_detail["index"]), out_detail)[0])
    return np.stack(outputs)


def run_as_app(model: bytes, pixels: np.ndarray, normalization: Normalization) -> list[np.ndarray]:
    """Every output of ``model``, dequantized to float32 (``[n, ...]`` each, in output order), for
    uint8 RGB ``pixels`` ``[n, H, W, 3]`` fed as the Task Library and MediaPipe Tasks feed them:
    a float input gets ``normalization``, a uint8 input the pixels unchanged (both clients ignore
    the normalisation of a uint8 input), an int8 input the normalised pixels quantized."""
    interpreter = tf.lite.Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    in_detail = interpreter.get_input_details()[0]
    out_details = interpreter.get_output_details()
    outputs = [[] for _ in out_details]
    for row in np.asarray(pixels, np.uint8):
        x = row[None] if in_detail["dtype"] == np.uint8 else quantize_input(normalization.apply(row[None]), in_detail)
        interpreter.set_tensor(in_detail["index"], x)
        interpreter.invoke()
        for collected, detail in zip(outputs, out_details):
            collected.append(_dequantize(interpreter.get_tensor(detail["index"]), detail)[0])
    return [np.stack(collected) for collected in outputs]


_OPS = schema.BuiltinOperator


def softmax_input(model: bytes) -> int | None:
    """Index of the tensor feeding the SOFTMAX that makes the first output (through the
    QUANTIZE/DEQUANTIZE of an integer model), or None when the output is not a softmax."""
    root = schema.Model.GetRootAsModel(model, 0)
    graph = root.Subgraphs(0)
    producer = {}
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        producer.update((op.Outputs(k), op) for k in range(op.OutputsLength()))
    tensor = graph.Outputs(0)
    while tensor in producer:
        op = producer[tensor]
        code = root.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == _OPS.SOFTMAX:
            return op.Inputs(0)
        if builtin not in (_OPS.QUANTIZE, _OPS.DEQUANTIZE):
            return None
        tensor = op.Inputs(0)
    return None


def _ends_in_softmax(model: tf.keras.Model) -> bool:
    last = model.layers[-1]
    return isinstance(last, tf.keras.layers.Softmax) or (
        isinstance(last, tf.keras.layers.Activation)
        and getattr(last.activation, "__name__", "") == "softmax")


def check_parity(keras_model: tf.keras.Model, tflite_model: bytes, mode: str,
                 normalization: Normalization, tolerance: float, samples: int = 8) -> Parity:
    """Compare ``tflite_model`` (converted with ``mode``) with ``keras_model`` on fixed images.

    Both are compared on their logits when both end in a softmax, else on their outputs. Float
    modes (none, fp16) raise ``ParityError`` when the max abs error exceeds ``tolerance * max
    |keras value|``; quantized modes report top-1 agreement.
    """
    size = (int(keras_model.input_shape[1]), int(keras_model.input_shape[2]))
    inputs = normalization.apply(parity_pixels(size, samples))
    tensor = softmax_input(tflite_model) if _ends_in_softmax(keras_model) else None
    if tensor is not None:
        keras_model = tf.keras.Model(keras_model.inputs, keras_model.layers[-1].input)
    compared = "outputs" if tensor is None else "logits"
    expected = keras_model(inputs, training=False).numpy().reshape(samples, -1)
    got = run_tflite(tflite_model, inputs, tensor).reshape(samples, -1)
    if got.shape != expected.shape:
        raise ParityError(f"TFLite {compared} shape {got.shape[1:]} differs from Keras' {expected.shape[1:]}")
    error = float(np.abs(got - expected).max())
    agreement = float((got.argmax(-1) == expected.argmax(-1)).mean())
    if mode in FLOAT_MODES:
        bound = tolerance * float(np.abs(expected).max())
        parity = Parity("max_abs_error", samples, compared, error, agreement, tolerance, error <= bound)
        if not parity.passed:
            raise ParityError(f"TFLite ({mode}) differs from the Keras model: max abs error of the "
                              f"{compared} {error:.3g} > {bound:.3g} ({tolerance:g} of their largest "
                              f"magnitude) on {samples} fixed images")
        return parity
    return Parity("top1_agreement", samples, compared, error, agreement, None, True)


def calibrate_batchnorm(model: tf.keras.Model, images: np.ndarray) -> tf.keras.Model:
    """Set every BatchNorm's moving statistics to its batch statistics on ``images`` (model input).

    Randomly initialised deep networks shrink activations to ~1e-10 (every output the same),
    which makes parity and quantization checks meaningless; with data-dependent statistics the
    activations stay O(1). For tests and benchmarks of random-weight models only.
    """
    layers = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    return model


def sharpen_classifier(model: tf.keras.Model, images: np.ndarray, logit_std: float = 3.0) -> tf.keras.Model:
    """Re-bias and scale the last Dense layer: per-class mean logit 0, logit std ``logit_std`` on ``images``.

    A random classifier over 1000 classes gives every class ~0.1%, below the 1/256 step of a
    uint8 softmax output, and one class wins for every input; a trained classifier is peaked
    and input-dependent. This makes a random one so (benchmarks and tests only). Random
    networks stay far more sensitive to quantization noise than trained ones, so quantized
    top-1 agreement on them is a lower bound.
    """
    dense = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Dense)][-1]
    logits = tf.keras.Model(model.inputs, dense.output)(images, training=False).numpy()
    kernel, bias = dense.get_weights()
    bias = bias - logits.mean(axis=0)
    factor = logit_std / max(float((logits - logits.mean(axis=0)).std()), 1e-12)
    dense.set_weights([kernel * factor, bias * factor])
    return model
