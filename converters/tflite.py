"""Keras -> TFLite: float32, float16, dynamic-range int8, full-integer int8, 16x8; builtin ops only.

Conversion goes through one traced concrete function (batch 1), frozen directly
(``experimental_lower_to_saved_model = False``), instead of ``TFLiteConverter.from_keras_model``:
the Keras path first saves and reloads the whole model as a SavedModel, which with the pinned
protobuf 3.20.3 (pure-Python on Python 3.11) costs 10-20x the conversion itself (MobileNetV2 at
224 px: ~6 s instead of ~95 s on the team machine under load). The flatbuffer is the same. Each conversion is followed by a parity check against the Keras model and the metadata
writer; the model is converted once.
"""
from __future__ import annotations

import collections
import struct
import warnings
from typing import Iterable

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

from edgetailor.converters.base import (Artifact, ConversionError, ConvertOptions, Stopwatch,
                                        calibration_array, first_line, native_output_captured)

_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
_IO_DTYPES = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}


def input_size(model: tf.keras.Model) -> tuple[int, int]:
    """(H, W) of a one-image-input Keras model; ConversionError for anything else."""
    shapes = model.input_shape if isinstance(model.input_shape, list) else [model.input_shape]
    if len(shapes) != 1 or len(shapes[0]) != 4 or shapes[0][3] != 3 or None in shapes[0][1:3]:
        raise ConversionError(f"the converters take one fixed-size RGB image input [1, H, W, 3]; "
                              f"this model takes {model.input_shape}")
    return int(shapes[0][1]), int(shapes[0][2])


def serving_function(model: tf.keras.Model):
    """The model's inference graph for one ``[1, H, W, 3]`` float32 image named ``image``."""
    height, width = input_size(model)

    @tf.function(input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32, name="image")])
    def serve(image):
        return model(image, training=False)

    return serve.get_concrete_function()


def _converter(model: tf.keras.Model, mode: str, io_type: str, calibration: np.ndarray | None,
               options: ConvertOptions) -> tf.lite.TFLiteConverter:
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serving_function(model)], model)
    # Freeze the function directly instead of saving and reloading the model as a SavedModel
    # first (TF 2.15's default): same flatbuffer, 10-20x faster with pure-Python protobuf.
    converter.experimental_lower_to_saved_model = False
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "none":
        return converter
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        full_integer(converter, calibration, options.normalization, io_type, io_type)
    elif mode == "int16x8":
        calibrate(converter, calibration, options.normalization)
        # ops without a 16x8 kernel (e.g. HARD_SWISH) stay float rather than failing
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def calibrate(converter: tf.lite.TFLiteConverter, calibration: np.ndarray, normalization) -> None:
    """Give ``converter`` the representative dataset: ``calibration`` pixels ``[N, H, W, 3]``
    (0..255) plus the range image, normalised as the model takes them."""
    pixels = np.concatenate([np.asarray(calibration, np.float32), _range_image(calibration.shape[1:3])])
    inputs = normalization.apply(pixels)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[None]] for row in inputs)


def full_integer(converter: tf.lite.TFLiteConverter, calibration: np.ndarray, normalization,
                 input_type: str = "uint8", output_type: str = "uint8", custom_ops: bool = False) -> None:
    """Set ``converter`` up for full-integer int8 (post-training, calibrated on ``calibration``
    pixels; a quantization-aware model's own ranges win where it has them). ``custom_ops``: keep
    a custom op (``TFLite_Detection_PostProcess``) in float, fed by a DEQUANTIZE."""
    calibrate(converter, calibration, normalization)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.allow_custom_ops = custom_ops
    converter.inference_input_type = _IO_DTYPES[input_type]
    converter.inference_output_type = _IO_DTYPES[output_type]


def _range_image(size: tuple[int, int]) -> np.ndarray:
    """Black and white halves: makes the calibrated input range span pixels 0..255 exactly.

    The input tensor's scale and zero point come from the range seen in calibration; with it
    covering 0..255, a uint8 input takes raw pixels (scale 1/127.5, zero point ~127.5 for the
    MobileNet normalisation), which is what the Task Library and apps feed quantized models.
    """
    image = np.zeros((1, *size, 3), np.float32)
    image[:, :, size[1] // 2:] = 255.0
    return image


def to_tflite(model: tf.keras.Model, calibration: np.ndarray | None = None,
              options: ConvertOptions = ConvertOptions()) -> bytes:
    """A TFLite flatbuffer of ``model``, builtin ops only (no metadata, no parity check): float32,
    or full-integer int8 (``options.io_type`` in and out) calibrated on ``calibration`` pixels,
    exactly as ``TFLiteConverter.convert`` makes it."""
    mode = "none" if calibration is None else "int8"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Statistics for quantized inputs")
        return _converter(model, mode, options.io_type, calibration, options).convert()


def op_counts(model: bytes) -> dict[str, int]:
    """Operator name -> count over all subgraphs, read from the flatbuffer (no interpreter)."""
    root = schema.Model.GetRootAsModel(model, 0)
    codes = []
    for i in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            codes.append(f"CUSTOM:{code.CustomCode().decode()}")
        else:
            codes.append(_OP_NAMES.get(builtin, f"BUILTIN_{builtin}"))
    counts: collections.Counter = collections.Counter()
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            counts[codes[subgraph.Operators(o).OpcodeIndex()]] += 1
    return dict(sorted(counts.items()))


def tensor_details(model: bytes) -> dict[str, list[dict]]:
    """Inputs and outputs: name, shape, dtype, quantization (scale, zero point) when integer.

    An output whose shape only its op knows (``TFLite_Detection_PostProcess``'s are empty until
    the op is prepared) is read after ``allocate_tensors``."""
    interpreter = tf.lite.Interpreter(
        model_content=model,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    if any(len(d["shape"]) == 0 for d in interpreter.get_output_details()):
        try:
            interpreter.allocate_tensors()
        except RuntimeError as exc:
            raise ConversionError(f"cannot prepare the model to read its output shapes: {first_line(exc)}") from None

    def describe(detail: dict) -> dict:
        out = {"name": detail["name"], "shape": [int(d) for d in detail["shape"]],
               "dtype": np.dtype(detail["dtype"]).name}
        scale, zero_point = detail["quantization"]
        if scale:
            out["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
        return out

    return {"inputs": [describe(d) for d in interpreter.get_input_details()],
            "outputs": [describe(d) for d in interpreter.get_output_details()]}


def custom_options(model: bytes) -> dict[str, dict]:
    """Custom op name -> the options (a FlexBuffer map) of its first use in the main graph, e.g.
    ``TFLite_Detection_PostProcess``'s thresholds."""
    from flatbuffers import flexbuffers

    root = schema.Model.GetRootAsModel(model, 0)
    graph = root.Subgraphs(0)
    options = {}
    for o in range(graph.OperatorsLength()):
        op = graph.Operators(o)
        code = root.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != schema.BuiltinOperator.CUSTOM:
            continue
        name = code.CustomCode().decode()
        if name not in options and op.CustomOptionsLength():
            options[name] = flexbuffers.Loads(op.CustomOptionsAsNumpy().tobytes())
    return options


def describe(model: bytes) -> dict:
    """What a .tflite holds: size, inputs, outputs, ops and metadata (for ``inspect``)."""
    from edgetailor.converters.metadata import normalization_of, read_metadata

    if len(model) < 8 or model[4:8] != b"TFL3":
        raise ConversionError("not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        # Read every table and vector first (50 ms for 14 MB): the interpreter does not verify
        # its buffer and crashes the process (segmentation fault) on a cut-off file.
        schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
        metadata = read_metadata(model)
        details = tensor_details(model)
        ops = op_counts(model)
        options = custom_options(model)
    except (struct.error, ValueError, IndexError, OverflowError) as exc:  # a read past the end
        raise ConversionError(f"not a complete TFLite flatbuffer ({len(model):,} bytes; truncated "
                              f"or corrupt): {first_line(exc)}") from None
    summary = None
    if metadata is not None:
        data = metadata["json"]
        summary = {"name": data.get("name"), "version": data.get("version"),
                   "author": data.get("author"), "description": data.get("description"),
                   "normalization": normalization_of(metadata), "files": metadata["files"],
                   "labels": metadata["labels"]}
    return {"format": "tflite", "bytes": len(model), **details, "ops": ops, "custom_options": options,
            "metadata": summary}


class TFLiteConverter:
    """``Converter`` for TFLite: convert, check parity, pack metadata."""

    target = "tflite"
    suffix = ".tflite"

    def convert(self, model: tf.keras.Model, options: ConvertOptions,
                calibration: Iterable[np.ndarray] | np.ndarray | None = None) -> Artifact:
        from edgetailor.converters.metadata import add_metadata
        from edgetailor.converters.parity import check_parity

        mode = options.quantize
        size = input_size(model)
        _check_labels(model, options)
        pixels = None
        if mode in ("int8", "int16x8"):
            pixels = calibration_array(calibration, size, mode)
        clock = Stopwatch()
        with native_output_captured(options.quiet):
            with clock.step("convert_s"):
                try:
                    with warnings.catch_warnings():  # spurious for integer inputs of concrete functions
                        warnings.filterwarnings("ignore", "Statistics for quantized inputs")
                        flatbuffer = _converter(model, mode, options.io_type, pixels, options).convert()
                except Exception as exc:  # the converter raises ConverterError, RuntimeError, ...
                    raise ConversionError(f"TFLite conversion ({mode}) failed: "
                                          f"{first_line(exc)}") from exc
            ops = op_counts(flatbuffer)
            foreign = [op for op in ops if op.startswith(("CUSTOM", "FlexDelegate"))]
            if foreign:
                raise ConversionError(f"TFLite model needs non-builtin ops: {', '.join(foreign)}")
            parity = None
            if options.parity:
                with clock.step("parity_s"):
                    parity = check_parity(model, flatbuffer, mode, options.normalization,
                                          options.float_tolerance(), options.parity_samples)
            with clock.step("metadata_s"):
                flatbuffer = add_metadata(flatbuffer, options.task, options.normalization,
                                          options.labels, options.info)
        details = {"quantize": mode, "io_type": options.io_type if mode == "int8" else None,
                   "calibration_images": None if pixels is None else len(pixels),
                   "bytes": len(flatbuffer), "ops": ops, **tensor_details(flatbuffer),
                   "parity": parity.to_dict() if parity else None, "seconds": clock.steps}
        return Artifact("tflite", flatbuffer, details)


def _check_labels(model: tf.keras.Model, options: ConvertOptions) -> None:
    classes = classes_of(model)
    if options.labels is not None and len(options.labels) != classes:
        raise ConversionError(f"{len(options.labels)} labels for a model with {classes} classes")


def classes_of(model: tf.keras.Model) -> int:
    """Number of classes of a classifier ``[1, N]`` (or ``[1, 1, 1, N]``) output."""
    shape = model.output_shape
    if isinstance(shape, list) or len(shape) not in (2, 4) or (len(shape) == 4 and shape[1:3] != (1, 1)):
        raise ConversionError(f"a classifier has one [1, N] output; this model outputs {shape}")
    return int(shape[-1])

