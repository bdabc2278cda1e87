"""TFLite vs Keras on fixed inputs: max abs error for float models, top-1 agreement for quantized.

The inputs are deterministic pixel images (smooth colour fields plus noise, seed 0) pushed
through the same normalisation the app will use, and quantized with the TFLite input tensor's
own scale and zero point when the model takes integers, so the comparison covers the
artifact exactly as an app feeds it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from edgetailor.converters.base import FLOAT_MODES, Normalization, ParityError


@dataclass(frozen=True)
class Parity:
    kind: str  # "max_abs_error" (float modes) or "top1_agreement" (quantized modes)
    samples: int
    max_abs_error: float
    top1_agreement: float
    tolerance: float | None  # float modes only: the bound max_abs_error was held to
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if self.kind == "max_abs_error":
            return f"max abs error {self.max_abs_error:.2e} (tolerance {self.tolerance:.0e})"
        return f"top-1 agreement {self.top1_agreement:.0%} (max abs error {self.max_abs_error:.3f})"


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


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
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


def run_tflite(model: bytes, inputs: np.ndarray) -> np.ndarray:
    """The first output of ``model`` for each row of float ``inputs``, dequantized to float32."""
    interpreter = tf.lite.Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    in_detail = interpreter.get_input_details()[0]
    out_detail = interpreter.get_output_details()[0]
    outputs = []
    for row in inputs:
        interpreter.set_tensor(in_detail["index"], _quantize(row[None], in_detail))
        interpreter.invoke()
        outputs.append(_dequantize(interpreter.get_tensor(out_detail["index"]), out_detail)[0])
    return np.stack(outputs)


def check_parity(keras_model: tf.keras.Model, tflite_model: bytes, mode: str,
                 normalization: Normalization, tolerance: float, samples: int = 8) -> Parity:
    """Compare ``tflite_model`` (converted with ``mode``) with ``keras_model`` on fixed images.

    Float modes (none, fp16) raise ``ParityError`` when the max abs error exceeds
    ``tolerance * max(1, max |keras output|)``; quantized modes report top-1 agreement.
    """
    size = (int(keras_model.input_shape[1]), int(keras_model.input_shape[2]))
    inputs = normalization.apply(parity_pixels(size, samples))
    expected = keras_model(inputs, training=False).numpy().reshape(samples, -1)
    got = run_tflite(tflite_model, inputs).reshape(samples, -1)
    if got.shape != expected.shape:
        raise ParityError(f"TFLite output shape {got.shape[1:]} differs from Keras' {expected.shape[1:]}")
    error = float(np.abs(got - expected).max())
    agreement = float((got.argmax(-1) == expected.argmax(-1)).mean())
    if mode in FLOAT_MODES:
        bound = tolerance * max(1.0, float(np.abs(expected).max()))
        parity = Parity("max_abs_error", samples, error, agreement, tolerance, error <= bound)
        if not parity.passed:
            raise ParityError(f"TFLite ({mode}) differs from the Keras model: max abs error "
                              f"{error:.3g} > {bound:.3g} on {samples} fixed images")
        return parity
    return Parity("top1_agreement", samples, error, agreement, None, True)


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
