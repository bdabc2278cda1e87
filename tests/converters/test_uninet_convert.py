"""UniNet's blocks convert: TFLite with builtin ops only (parity with Keras within 1e-4) and Core ML
(conversion and static checks; Core ML cannot predict on Linux)."""
import numpy as np
import pytest
import tensorflow as tf

from edgetailor.arch import layers
from edgetailor.arch.spec import decode
from edgetailor.builder import network as builder
from edgetailor.converters import ConvertOptions, Normalization, convert
from edgetailor.converters.coreml import describe_package
from edgetailor.converters.parity import parity_pixels, run_tflite
from edgetailor.converters.tflite import op_counts, to_tflite

pytestmark = pytest.mark.slow  # converts a model

LABELS = ("a", "b", "c")
# tests/arch/test_uninet.py's UNINET_TINY: every UniNet block at 32 px
TINY = ("res32 | conv_k3_s2_c8_ge | uconv_k3_e1_c16_hse0.25_ge,uconv_k3_e1_c16_hse0.25_ge"
        " | ldsm_s2_c16,uconv_k3_e2_c16_hse0.25_ge | lgdsm_c16_h2,mhsa_e2_c16_h2"
        " | lgdsm_s2_c24_h2,mhsa_e2_c24_h2 | head:conv_k1_c32_ge,pool")
# Core ML's conversion of the ops UniNet adds (BN alone, both attentions, max pool), smaller: the
# converter takes ~4x longer than TFLite's per op here (110 s for TINY under load).
CORE_ML_TINY = "res32 | conv_k3_s2_c8_ge | uconv_k3_e2_c8_hse0.25_ge | lgdsm_s2_c16_h2,mhsa_e2_c16_h2 | head:pool"


def _model(text: str) -> tf.keras.Model:
    """The tiny model, walk-exact, with every weight random: batch-norm statistics and layer scales
    too (at their initial 1e-6 the transformer blocks would barely reach the output)."""
    tf.keras.utils.set_random_seed(0)
    spec = decode(text)
    built = builder.build(spec, num_classes=len(LABELS))
    walked = layers.walk(spec, len(LABELS))
    assert built.count_params() == sum(layer.keras_params for layer in walked)
    assert builder.keras_macs(built) == sum(layer.macs for layer in walked)
    rng = np.random.default_rng(1)
    for layer in built.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
        elif layer.weights and type(layer).__module__.endswith("attention_layers"):
            layer.set_weights([rng.uniform(0.3, 0.7, w.shape).astype(np.float32) for w in layer.get_weights()])
    return built


def test_tflite_builtins_only_and_matches_keras():
    model = _model(TINY)
    flatbuffer = to_tflite(model)  # TFLITE_BUILTINS only: conversion fails on any op needing Flex
    ops = op_counts(flatbuffer)
    assert {"BATCH_MATMUL", "SOFTMAX", "MAX_POOL_2D", "GELU", "DEPTHWISE_CONV_2D"} <= set(ops)
    assert not any(op.startswith(("CUSTOM", "Flex")) for op in ops)
    x = Normalization().apply(parity_pixels((32, 32), 4, seed=3))
    expected = model(x).numpy()
    assert np.abs(run_tflite(flatbuffer, x) - expected).max() <= 1e-4


def test_core_ml_converts_and_passes_static_checks(tmp_path):
    artifact = convert(_model(CORE_ML_TINY), "coreml", ConvertOptions(labels=LABELS))
    info = describe_package(artifact.save(tmp_path / "uninet.mlpackage"))
    assert info["type"] == "mlProgram" and info["classes"] == list(LABELS)
    assert {"ml_program", "image_input", "class_labels"} <= set(artifact.details["verified"])
