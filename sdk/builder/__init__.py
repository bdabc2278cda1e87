"""The only room where networks meet TensorFlow: spec -> tf.keras model, custom layers, weights.

``from edgetailor import builder; builder.build(spec)`` is the public entry point.
"""
from edgetailor.builder.network import BN_EPSILON, build, keras_macs

__all__ = ["BN_EPSILON", "build", "keras_macs"]
