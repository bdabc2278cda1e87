"""Hybrid attention blocks convert: TFLite with builtin ops only (parity with Keras within 1e-4)
and Core ML (conversion and static checks; Core ML cannot predict on Linux)."""
import numpy as np
import pytest
import tensorflow as tf

from edgetailor.arch.spec import decode
from edgetailor.builder import network as builder
from edgetailor.converters import ConvertOptions, Normalization, convert
from edgetailor.converters.coreml import describe_package
from edgetailor.converters.parity import parity_pixels, run_tflite
from edgetailor.converters.tflite import op_counts, to_tflite

pytestmark = pytest.mark.slow  # converts models

LABELS = ("a", "b", "c")
TINY = {  # every hybrid step at 32 px: patch, LN, conv encoder, SDTA with positions / FFN, both attentions
    "edgenext": "res32 | patch_s4_c8,ln | ln,patch_s2_c16,convenc_k5_e2_c16,sdta_e2_c16_h2_sc3_pe | head:pool,ln",
    "efficientformerv2": ("res32 | conv_k3_s2_c8_ge,conv_k3_s2_c16_ge | conv_k3_s2_c16_lin,attn_e2_c16_h2_kd4_sr2,"
                          "ffn_k3_e2_c16 | attn_s2_e2_c24_h2_kd4,attn_e2_c24_h2_kd4 | head:pool"),
}
ATTENTION_OPS = {"edgenext": {"BATCH_MATMUL", "SOFTMAX", "L2_NORMALIZATION", "GELU"},
                 "efficientformerv2": {"BATCH_MATMUL", "SOFTMAX", "RESIZE_BILINEAR", "GELU"}}


def _model(family: str) -> tf.keras.Model:
    """The tiny model with every weight random, layer scales and attention biases included (at their
    initial 1e-6 / zeros the attention paths would barely reach the output)."""
    tf.keras.utils.set_random_seed(0)
    model = builder.build(decode(TINY[family]), num_classes=len(LABELS))
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
        elif layer.weights and type(layer).__module__.endswith("attention_layers"):
            layer.set_weights([rng.uniform(0.3, 0.7, w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


@pytest.fixture(scope="module", params=sorted(TINY))
def family(request):
    return request.param, _model(request.param)


def test_tflite_builtins_only_and_matches_keras(family):
    name, model = family
    flatbuffer = to_tflite(model)  # TFLITE_BUILTINS only: conversion fails on any op needing Flex
    ops = op_counts(flatbuffer)
    assert ATTENTION_OPS[name] <= set(ops)
    assert not any(op.startswith(("CUSTOM", "Flex")) for op in ops)
    x = Normalization().apply(parity_pixels((32, 32), 4, seed=3))
    expected = model(x).numpy()
    assert np.abs(run_tflite(flatbuffer, x) - expected).max() <= 1e-4


def test_core_ml_converts_and_passes_static_checks(family, tmp_path):
    name, model = family
    artifact = convert(model, "coreml", ConvertOptions(labels=LABELS))
    info = describe_package(artifact.save(tmp_path / f"{name}.mlpackage"))
    assert info["type"] == "mlProgram" and info["classes"] == list(LABELS)
    assert {"ml_program", "image_input", "class_labels"} <= set(artifact.details["verified"])
