"""Keras Applications: same parameter counts, and copied weights give the same outputs."""
import numpy as np
import pytest
import tensorflow as tf

from edgetailor.builder import network as builder, weights
from edgetailor.arch import layers, zoo
from edgetailor.arch.spec import SpecError

KERAS_MODELS = [e.name for e in zoo.entries()
                if e.family in weights.KERAS_APPLICATIONS or e.family == "efficientnet"]
# Keras' EfficientNet carries a Normalization layer: mean (3) + variance (3) + count (1).
PREPROCESSING_PARAMS = {"efficientnet": 7}


@pytest.mark.parametrize("name", KERAS_MODELS)
def test_same_parameter_count_as_keras_applications(name):
    entry = zoo.ZOO[name]
    keras_model = weights.keras_application(name)
    ours = sum(layer.keras_params for layer in layers.walk(entry.spec))
    assert keras_model.count_params() == ours + PREPROCESSING_PARAMS.get(entry.family, 0)


def _randomise(model: tf.keras.Model, rng: np.random.Generator) -> None:
    """Non-trivial weights (Keras' initial BN statistics would make every output alike)."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            shape = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.1, shape),
                               rng.normal(0, 0.1, shape), rng.uniform(0.5, 1.5, shape)])
        elif layer.weights and not isinstance(layer, tf.keras.layers.Normalization):
            values = []
            for w in layer.get_weights():
                fan_in = np.prod(w.shape[:-1]) if w.ndim > 1 else 1
                if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
                    fan_in = np.prod(w.shape[:2])
                values.append(rng.normal(0, 1, w.shape) / np.sqrt(max(fan_in, 1)))
            layer.set_weights(values)


@pytest.mark.parametrize("name", ["mobilenet_v1_100", "mobilenet_v2_035", "mobilenet_v3_large_075",
                                  "mobilenet_v3_small_100", "mobilenet_v3_small_minimal_100",
                                  "efficientnet_b0"])
def test_from_keras_outputs_agree(name):
    rng = np.random.default_rng(7)
    keras_model = weights.keras_application(name, resolution=64, classifier_activation=None)
    _randomise(keras_model, rng)
    ours = weights.from_keras(keras_model, name, classifier_activation=None)
    images = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    if zoo.ZOO[name].family in ("mobilenet_v1", "mobilenet_v2"):
        images = images / 127.5 - 1  # these two take [-1, 1] input, preprocessing outside
    expected = keras_model(images).numpy()
    got = ours(images).numpy()
    assert np.abs(expected).max() > 0.1  # the comparison is not between near-zero outputs
    assert np.abs(expected - got).max() <= 1e-4


def test_from_keras_rejects_another_architecture():
    keras_model = weights.keras_application("mobilenet_v2_050", resolution=64)
    with pytest.raises(SpecError, match="not the same architecture|do not fit"):
        weights.from_keras(keras_model, "mobilenet_v2_035")


def test_keras_weights_need_a_keras_model_and_an_existing_file(tmp_path):
    with pytest.raises(SpecError, match="Keras Applications has no 'ghostnet_100'"):
        weights.keras_application("ghostnet_100")
    with pytest.raises(SpecError, match="not found"):
        weights.keras_application("mobilenet_v2_100", tmp_path / "missing.h5")


def test_h5_weights_file_round_trip(tmp_path):
    """The path a downloaded ImageNet .h5 takes: Keras loads it, we copy from Keras."""
    rng = np.random.default_rng(3)
    source = weights.keras_application("mobilenet_v2_035", resolution=64)
    _randomise(source, rng)
    path = tmp_path / "mobilenet_v2_0.35_64.h5"
    source.save_weights(path)
    loaded = weights.keras_application("mobilenet_v2_035", path, resolution=64)
    ours = weights.from_keras(loaded, "mobilenet_v2_035")
    images = rng.uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(ours(images).numpy(), source(images).numpy(), atol=1e-5)


def test_builder_records_every_endpoint_the_features_name():
    from edgetailor.arch.features import feature_info

    spec = zoo.resolve("mobilenet_v3_large_100", resolution=96).spec
    model = builder.build(spec, include_top=False)
    names = {layer.name for layer in model.layers}
    for info in feature_info(spec):
        assert info.name in names
        assert model.get_layer(info.name).output.shape[-1] == info.channels
        assert 96 // model.get_layer(info.name).output.shape[1] == info.stride
