"""Converters: TFLite and Core ML export, metadata, parity checks, op-level TFLite models, timing.

The only package besides the builder that imports TensorFlow or coremltools, and only in its
submodules: ``import edgetailor.converters`` (the interface in ``base``) stays light.

    from edgetailor.converters import ConvertOptions, convert
    artifact = convert(model, "tflite", ConvertOptions(quantize="int8", labels=labels), calibration=images)
    artifact.save("model.tflite"); artifact.details["parity"]
"""
from edgetailor.converters.base import (COMPRESSIONS, IO_TYPES, MOBILENET, PRECISIONS,
                                        QUANTIZE_MODES, RAW_PIXELS, Artifact, ConversionError,
                                        Converter, ConvertOptions, ModelInfo, Normalization,
                                        ParityError, convert, get, native_output_captured,
                                        suffix, targets)

__all__ = ["COMPRESSIONS", "IO_TYPES", "MOBILENET", "PRECISIONS", "QUANTIZE_MODES", "RAW_PIXELS",
           "Artifact", "ConversionError", "Converter", "ConvertOptions", "ModelInfo",
           "Normalization", "ParityError", "convert", "get", "native_output_captured", "suffix",
           "targets"]
