"""Quantization-aware training (tensorflow-model-optimization 0.7.5, which runs on TF 2.15's Keras 2).

``quantize_aware(model)`` returns a copy of a Keras model with fake-quantization that the TFLite
int8 converter turns into an integer model; the ``fine_tune_*`` functions train that copy for a
few epochs on the task's data, as ``tfmot`` and Model Maker do before exporting.

``tfmot.quantization.keras.quantize_model`` refuses any layer its default 8-bit registry does not
know, and ours have several (HardSwish, HardSigmoid, the SE gate's Multiply, ChannelShuffle,
Resizing, Identity). So every layer is annotated one by one: the registry's own config where it
has one (Conv2D, DepthwiseConv2D, Dense, ReLU, Add, Concatenate, ...; BatchNormalization is
folded by its Conv+BN transforms), no quantizer at all for layers that only move values
(Identity, channel shuffle, split, keep, ZeroPadding2D's registry entry does the same), and an
8-bit moving-average quantizer on the output of everything else, which is what TFLite's integer
kernels of those ops need (one scale per output tensor). Ranges the fake-quant ops do not give
come from the int8 converter's calibration on the same training images.
Measured on MobileNetV3-Small 0.35 at 64 px: quantize_apply 19-34 s (2 shared cores); the int8
model has the PTQ model's ops plus 9 ADDs (the hard-sigmoid's ``+ 3`` is no longer folded into
the preceding convolution, which now has its own output range).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from edgetailor.builder import keras_layers

_qk = tfmot.quantization.keras
# layers that only move or select values: their output keeps their input's scale
_PASS_THROUGH = (tf.keras.layers.Identity, keras_layers.ChannelShuffle, keras_layers.SplitChannels,
                 keras_layers.KeepChannels)


class OutputQuantizeConfig(_qk.QuantizeConfig):
    """No weights to quantize; one 8-bit asymmetric range on the output (TFLite's activation scheme)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [_qk.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                      narrow_range=False)]

    def get_config(self):
        return {}


class PassThroughConfig(OutputQuantizeConfig):
    """No quantizer: the layer's output is its input's values, already on the input's scale."""

    def get_output_quantizers(self, layer):
        return []


def _annotate(registry) -> Callable:
    def annotate(layer):
        if isinstance(layer, tf.keras.layers.InputLayer):
            return layer
        if isinstance(layer, _PASS_THROUGH):
            return _qk.quantize_annotate_layer(layer, PassThroughConfig())
        if registry.supports(layer) or isinstance(layer, tf.keras.layers.BatchNormalization):
            return _qk.quantize_annotate_layer(layer)  # BN: folded by the Conv+BN transforms
        return _qk.quantize_annotate_layer(layer, OutputQuantizeConfig())
    return annotate


def quantize_aware(model: tf.keras.Model) -> tf.keras.Model:
    """A quantization-aware copy of the functional ``model`` with its weights (``model`` is unchanged)."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry)

    annotated = tf.keras.models.clone_model(model, clone_function=_annotate(registry.Default8BitQuantizeRegistry()))
    annotated.set_weights(model.get_weights())
    scope = {"OutputQuantizeConfig": OutputQuantizeConfig, "PassThroughConfig": PassThroughConfig,
             **keras_layers.CUSTOM_OBJECTS}
    with _qk.quantize_scope(scope):
        return _qk.quantize_apply(annotated)


def fine_tune_classifier(model: tf.keras.Model, images: np.ndarray, labels: np.ndarray, normalize,
                         epochs: int, learning_rate: float, batch_size: int = 32, seed: int = 0) -> list[dict]:
    """Train a quantization-aware classifier (softmax output) on uint8 ``images``; per-epoch losses."""
    tf.keras.utils.set_random_seed(seed)
    steps = epochs * -(-len(images) // batch_size)
    # eager below ~30 steps: tracing the fake-quant training graph costs ~40 s with pure-Python protobuf
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  run_eagerly=steps <= 30)
    history = model.fit(normalize(images), labels, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    return [{"epoch": i + 1, "loss": float(loss)} for i, loss in enumerate(history.history["loss"])]


def fine_tune_detector(detector, data, epochs: int, learning_rate: float, batch_size: int = 32,
                       seed: int = 0, progress=None) -> list[dict]:
    """Train ``detector`` (its model quantization-aware) on detection ``data`` with the trainer's loss."""
    from edgetailor.tasks.detection import heads, train

    assign, head_losses = heads.own_training(detector.config)  # YOLOX's own; else the SSD matcher's
    x = train.resize_uint8(data.images, detector.resolution)
    cls_t, box_t = train.targets(data, detector.anchors, assign=assign)
    step = train.training_step(detector.model, tf.keras.optimizers.legacy.Adam(learning_rate),
                               detector.config.num_classes, head_losses=head_losses)

    return train.run_epochs(step, lambda idx: (x[idx], cls_t[idx], box_t[idx]), len(x), batch_size, epochs,
                            False, seed, ("cls_loss", "box_loss"), progress)


def fine_tune_segmenter(segmenter, data, epochs: int, learning_rate: float, batch_size: int = 32,
                        seed: int = 0, progress=None) -> list[dict]:
    """Train ``segmenter`` (its model quantization-aware) on mask ``data`` with the trainer's loss."""
    from edgetailor.tasks.detection.train import resize_uint8, run_epochs
    from edgetailor.tasks.segmentation.train import resize_masks, training_step

    x, masks = resize_uint8(data.images, segmenter.resolution), resize_masks(data.masks, segmenter.resolution)
    step = training_step(segmenter.model, tf.keras.optimizers.legacy.Adam(learning_rate))

    return run_epochs(step, lambda idx: (x[idx], masks[idx]), len(x), batch_size, epochs, False, seed,
                      ("ce_loss",), progress)
