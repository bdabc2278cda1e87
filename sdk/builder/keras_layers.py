"""Small Keras layers the architectures need and Keras lacks (serializable, converter-friendly).

Each one lowers to plain TFLite builtins (ADD, RELU6, MUL, RESHAPE, TRANSPOSE, SPLIT/SLICE)
and to Core ML ops; TFLite fuses ``x * relu6(x + 3) / 6`` into HARD_SWISH.

They are registered as ``edgetailor>Name`` and a saved ``.keras`` file names this module, but
Keras 2.15's ``load_model`` never imports a module named in a file: in a fresh process it finds
the layers only once this module has been imported (``import edgetailor.builder.keras_layers``,
as ``edgetailor.converters.inputs.load_keras`` does); before, it fails with "'str' object is not
callable".
"""
from __future__ import annotations

import tensorflow as tf

from edgetailor.builder.attention_layers import CUSTOM_OBJECTS as ATTENTION_OBJECTS

_PACKAGE = "edgetailor"


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class HardSigmoid(tf.keras.layers.Layer):
    """relu6(x + 3) / 6, as in MobileNetV3 (not Keras 2's 0.2x + 0.5)."""

    def call(self, inputs):
        return tf.nn.relu6(inputs + 3.0) * (1.0 / 6.0)


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class HardSwish(tf.keras.layers.Layer):
    """x * relu6(x + 3) / 6."""

    def call(self, inputs):
        return inputs * (tf.nn.relu6(inputs + 3.0) * (1.0 / 6.0))


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class ChannelShuffle(tf.keras.layers.Layer):
    """ShuffleNet's channel shuffle over ``groups`` (NHWC)."""

    def __init__(self, groups: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups

    def call(self, inputs):
        _, h, w, c = inputs.shape
        x = tf.reshape(inputs, [-1, h, w, self.groups, c // self.groups])
        x = tf.transpose(x, [0, 1, 2, 4, 3])
        return tf.reshape(x, [-1, h, w, c])

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class SplitChannels(tf.keras.layers.Layer):
    """Split the channel axis into ``parts`` equal tensors."""

    def __init__(self, parts: int, **kwargs):
        super().__init__(**kwargs)
        self.parts = parts

    def call(self, inputs):
        return tf.split(inputs, self.parts, axis=-1)

    def get_config(self):
        return {**super().get_config(), "parts": self.parts}


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class KeepChannels(tf.keras.layers.Layer):
    """The first ``channels`` channels (GhostNet trims its concatenation to the output width)."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, inputs):
        return inputs[..., : self.channels]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class TailChannels(tf.keras.layers.Layer):
    """The last ``channels`` channels (a G-Ghost stage's cheap part)."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, inputs):
        return inputs[..., inputs.shape[-1] - self.channels:]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class ChannelAffine(tf.keras.layers.Layer):
    """``x * scale + offset`` per channel: maps the [-1, 1] input every edgetailor model takes to the
    input normalisation weights trained elsewhere expect (Once-for-All: ImageNet mean and std), so
    the bundle's input stays [-1, 1] and the first convolution's zero padding stays exact."""

    def __init__(self, scale, offset, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = [float(v) for v in scale], [float(v) for v in offset]

    def call(self, inputs):
        return inputs * tf.constant(self.scale, inputs.dtype) + tf.constant(self.offset, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


CUSTOM_OBJECTS = {cls.__name__: cls for cls in (HardSigmoid, HardSwish, ChannelShuffle,
                                                SplitChannels, KeepChannels, TailChannels, ChannelAffine)}
CUSTOM_OBJECTS.update(ATTENTION_OBJECTS)  # the hybrid blocks' layers

