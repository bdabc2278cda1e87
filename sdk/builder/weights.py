"""Weights from Keras Applications: copy a Keras Applications model's weights into ours.

Works with models built with ``weights=None`` (tests) and with a downloaded ``.h5`` (ImageNet
weights); nothing is downloaded here. Our graph has the same weight-bearing layers in the same
order, so weights are matched one layer at a time by shape; Keras' 1x1-conv classifiers
(MobileNet, MobileNetV3) map onto our Dense classifier. Keras' in-graph preprocessing layers
(Rescaling, Normalization) are cloned in front of our model so both take the same input.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from edgetailor.builder import network as builder
from edgetailor.arch import zoo
from edgetailor.arch.spec import ArchSpec, SpecError

_PREPROCESSING = (tf.keras.layers.Rescaling, tf.keras.layers.Normalization)

# family -> (Keras Applications constructor, extra kwargs); width goes in as ``alpha``.
KERAS_APPLICATIONS = {
    "mobilenet_v1": ("MobileNet", {}),
    "mobilenet_v2": ("MobileNetV2", {}),
    "mobilenet_v3_large": ("MobileNetV3Large", {}),
    "mobilenet_v3_small": ("MobileNetV3Small", {}),
    "mobilenet_v3_large_minimal": ("MobileNetV3Large", {"minimalistic": True}),
    "mobilenet_v3_small_minimal": ("MobileNetV3Small", {"minimalistic": True}),
}


def keras_application(arch: str, weights: str | Path | None = None, resolution: int | None = None,
                      classifier_activation: str | None = "softmax") -> tf.keras.Model:
    """The Keras Applications model matching zoo entry ``arch`` (weights: None or an .h5 path)."""
    resolved = zoo.resolve(arch, resolution=resolution)
    entry = resolved.entry
    if entry is None:
        raise SpecError(f"{arch!r} is not a zoo entry; Keras weights need a named model")
    if entry.family == "efficientnet":
        constructor, kwargs = f"EfficientNet{entry.name.rsplit('_', 1)[1].upper()}", {}
    elif entry.family in KERAS_APPLICATIONS:
        constructor, kwargs = KERAS_APPLICATIONS[entry.family]
        kwargs = {**kwargs, "alpha": entry.width}
    else:
        raise SpecError(f"Keras Applications has no {arch!r}; models with Keras weights: "
                        f"{', '.join(sorted(KERAS_APPLICATIONS))}, efficientnet_b0..b7")
    if weights is not None and not Path(weights).is_file():
        raise SpecError(f"Keras weights file not found: {weights}")
    size = resolved.spec.resolution
    try:
        return getattr(tf.keras.applications, constructor)(
            input_shape=(size, size, 3), weights=None if weights is None else str(weights),
            classifier_activation=classifier_activation, **kwargs)
    except (OSError, ValueError, KeyError) as exc:  # h5py: not HDF5 or cut short; Keras: other layers
        if weights is None:
            raise
        message = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise SpecError(f"cannot read Keras weights {weights} for {arch}: {message}") from None


def _weight_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    return [layer for layer in model.layers if layer.weights and not isinstance(layer, _PREPROCESSING)]


def _leading_preprocessing(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    layers = []
    for layer in model.layers[1:]:
        if not isinstance(layer, _PREPROCESSING):
            break
        clone = type(layer).from_config(layer.get_config())
        layers.append((clone, layer))
    return layers


def from_keras(keras_model: tf.keras.Model, arch: str | ArchSpec,
               classifier_activation: str | None = "softmax") -> tf.keras.Model:
    """Our model of ``arch`` (a zoo entry, or the spec of a family point Keras has) carrying
    ``keras_model``'s weights; outputs agree."""
    size = keras_model.input_shape[1]
    resolved = (zoo.Resolved(arch.replace(resolution=size), keras_model.name) if isinstance(arch, ArchSpec)
                else zoo.resolve(arch, resolution=size))
    output_shape = keras_model.output_shape
    include_top = len(output_shape) == 2
    pairs = _leading_preprocessing(keras_model)
    ours = builder.build(resolved.spec, num_classes=output_shape[-1] if include_top else 1000,
                         include_top=include_top, classifier_activation=classifier_activation,
                         preprocessing=[clone for clone, _ in pairs], name=resolved.name)
    for clone, original in pairs:
        clone.set_weights(original.get_weights())
    theirs, mine = _weight_layers(keras_model), _weight_layers(ours)
    if len(theirs) != len(mine):
        raise SpecError(f"{keras_model.name} has {len(theirs)} weight layers, {arch} has "
                        f"{len(mine)}: not the same architecture (check width and variant)")
    for source, target in zip(theirs, mine):
        values = source.get_weights()
        shapes = [w.shape for w in target.get_weights()]
        if [v.shape for v in values] != shapes:
            if len(values) == len(shapes) and all(v.size == np.prod(s) for v, s in zip(values, shapes)):
                values = [v.reshape(s) for v, s in zip(values, shapes)]  # 1x1 conv -> Dense
            else:
                raise SpecError(f"weights of {source.name} {[v.shape for v in source.get_weights()]}"
                                f" do not fit {target.name} {shapes}")
        target.set_weights(values)
    return ours
