"""Converters: TFLite and Core ML export, op-level TFLite models, interpreter timing.

The only package besides the builder that imports TensorFlow or coremltools.
"""
