"""Keras -> TFLite conversion (float32 here; quantization modes arrive with the converters issue)."""
from __future__ import annotations

import tensorflow as tf


def to_tflite(model: tf.keras.Model) -> bytes:
    """A float32 TFLite flatbuffer of ``model``, builtin ops only."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()
