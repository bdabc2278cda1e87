"""Keras -> Core ML ML Program (``.mlpackage``) for image classification, checked statically.

The package takes an RGB image (``ct.ImageType``) whose preprocessing ``y = x * scale + bias``
is derived from the model's normalisation (one global scale, per-channel bias), classifies
with ``ct.ClassifierConfig(labels)`` (outputs ``classLabel`` and ``classLabel_probs``), computes
in float16 unless float32 is asked for, and optionally compresses its weights with
``coremltools.optimize.coreml`` (8-bit linear quantization or n-bit palettization).

Core ML cannot run predictions on Linux (the Core ML framework is macOS/iOS only and
coremltools ships no ``libcoremlpython`` there), so models are converted with
``skip_model_load=True`` and the saved package is verified statically instead: spec type,
input image size and colour space, the program's scale/bias constants, outputs, class labels,
compute precision, compression ops, metadata and the weight file. Numerical checks of the Core
ML model need a Mac (the iOS harness).
"""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Iterable

import numpy as np

from edgetailor.converters.base import (Artifact, ConversionError, ConvertOptions, Stopwatch,
                                        first_line, native_output_captured)

_COMPRESSION_OPS = {"linear8": "constexpr_affine_dequantize", "palettize4": "constexpr_lut_to_dense",
                    "palettize6": "constexpr_lut_to_dense", "palettize8": "constexpr_lut_to_dense"}
_WEIGHT_THRESHOLD = 2048  # leave small tensors (biases, SE convs) uncompressed, as coremltools does
_FLOAT16 = 10  # MIL DataType.FLOAT16 in coremltools' MIL.proto


def _ct():
    import coremltools as ct  # imported late: ~1 s, and prints Linux proxy warnings

    return ct


def image_program(function, size: int, mean: float, std: float):
    """(spec, weights folder) of the ML Program of a TF concrete function taking one RGB ``image``
    [1, size, size, 3] that the model normalises itself as (pixel - mean) / std (the detection and
    segmentation heads' serving functions); ``save_package`` writes what the caller makes of them."""
    ct = _ct()
    program = ct.convert([function], source="tensorflow", convert_to="mlprogram",
                         inputs=[ct.ImageType(name="image", shape=(1, size, size, 3), scale=1 / std,
                                              bias=[-mean / std] * 3)],
                         minimum_deployment_target=ct.target.iOS15, skip_model_load=True)
    return program.get_spec(), program.weights_dir


def save_package(spec, weights_dir: str, path: str | Path) -> Path:
    """Write the ``.mlpackage`` folder ``path`` from a program (or pipeline) ``spec`` and its
    weights folder, serializing the spec once. An MLModel made of the spec and then saved
    serializes it twice and parses it back once: with the pure-Python protobuf here that took
    12-17 s for a 64 px SSDLite's pipeline, this 3 s (2 busy cores)."""
    path = Path(path)
    if path.suffix != ".mlpackage":
        raise ConversionError(f"{path}: a Core ML program is saved as a .mlpackage folder")
    _ct().utils.save_spec(spec, str(path), weights_dir=weights_dir)
    return path


def _compress(mlmodel, mode: str):
    import coremltools.optimize.coreml as cto

    if mode == "linear8":
        config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8",
                                             weight_threshold=_WEIGHT_THRESHOLD)
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=config))
    bits = int(mode.removeprefix("palettize"))
    # "uniform" needs no scikit-learn (k-means does, and it is not a dependency)
    config = cto.OpPalettizerConfig(nbits=bits, mode="uniform", weight_threshold=_WEIGHT_THRESHOLD)
    return cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=config))


def expectations(model, options: ConvertOptions) -> dict:
    """What the saved package must hold, derived from the Keras model and the options."""
    from edgetailor.converters.tflite import classes_of, input_size

    height, width = input_size(model)
    classes = classes_of(model)
    labels = list(options.labels) if options.labels is not None else [str(i) for i in range(classes)]
    if len(labels) != classes:
        raise ConversionError(f"{len(labels)} labels for a model with {classes} classes")
    scale, bias = options.normalization.coreml_scale_bias()
    info = options.info
    user_defined = {"edgetailor.normalization.mean": _floats(options.normalization.mean),
                    "edgetailor.normalization.std": _floats(options.normalization.std),
                    **dict(info.extra)}
    return {"height": height, "width": width, "labels": labels, "scale": scale, "bias": bias,
            "precision": options.precision, "compress": options.compress,
            "author": info.author, "version": info.version, "short_description": info.description,
            "user_defined": user_defined}


def _floats(values) -> str:
    return ",".join(f"{v:g}" for v in values)


class CoreMLConverter:
    """``Converter`` for Core ML. Calibration images are not used (weight compression is data-free)."""

    target = "coreml"
    suffix = ".mlpackage"

    def convert(self, model, options: ConvertOptions,
                calibration: Iterable[np.ndarray] | np.ndarray | None = None) -> Artifact:
        if options.quantize != "none":
            raise ConversionError("--quantize applies to TFLite; Core ML takes --precision "
                                  "float16|float32 and --compress")
        expect = expectations(model, options)
        clock = Stopwatch()
        with native_output_captured(options.quiet):
            ct = _ct()
            labels = expect["labels"] if options.labels is not None else list(range(len(expect["labels"])))
            with clock.step("convert_s"):
                try:
                    mlmodel = ct.convert(
                        model, source="tensorflow", convert_to="mlprogram",
                        inputs=[ct.ImageType(name="image", shape=(1, expect["height"], expect["width"], 3),
                                             scale=expect["scale"], bias=expect["bias"],
                                             color_layout=ct.colorlayout.RGB)],
                        classifier_config=ct.ClassifierConfig(labels),
                        compute_precision=(ct.precision.FLOAT16 if options.precision == "float16"
                                           else ct.precision.FLOAT32),
                        skip_model_load=True)  # Core ML cannot load models on Linux
                except Exception as exc:
                    raise ConversionError(f"Core ML conversion failed: {first_line(exc)}") from exc
            if options.compress != "none":
                with clock.step("compress_s"):
                    mlmodel = _compress(mlmodel, options.compress)
        mlmodel.author = expect["author"]
        mlmodel.version = expect["version"]
        mlmodel.short_description = expect["short_description"]
        mlmodel.input_description["image"] = "RGB image; normalised in the model"
        for key, value in expect["user_defined"].items():
            mlmodel.user_defined_metadata[key] = value
        details = {"precision": options.precision, "compress": options.compress,
                   "scale": expect["scale"], "bias": expect["bias"],
                   "exact_normalization": options.normalization.exact_in_coreml,
                   "specification_version": mlmodel.get_spec().specificationVersion,
                   "seconds": clock.steps, "predict": "not run: Core ML predicts on macOS/iOS only"}
        artifact = Artifact("coreml", mlmodel, details)
        artifact.verify = lambda path: verify_package(path, expect)  # run by save()
        return artifact


def _main_block(spec):
    function = spec.mlProgram.functions["main"]
    return function.block_specializations[function.opset]


def _tensor_values(value) -> list:
    tensor = value.immediateValue.tensor
    kind = tensor.WhichOneof("value")
    return list(getattr(tensor, kind).values) if kind else []


def _consts(block) -> dict[str, list]:
    out = {}
    for op in block.operations:
        if op.type == "const" and op.attributes["val"].WhichOneof("value") == "immediateValue":
            out[op.outputs[0].name] = _tensor_values(op.attributes["val"])
    return out


def _class_labels(block) -> list[str] | None:
    for op in block.operations:
        if op.type == "classify":
            items = op.inputs["classes"].arguments[0].value.immediateValue.list.values
            return [str(v) for item in items for v in _tensor_values(item)]
    return None


def _precision(block) -> str:
    fp16 = any(out.type.tensorType.dataType == _FLOAT16 for op in block.operations for out in op.outputs)
    return "float16" if fp16 else "float32"


def _compression(block) -> str | None:
    types = {op.type for op in block.operations}
    for name in ("constexpr_affine_dequantize", "constexpr_lut_to_dense", "constexpr_blockwise_shift_scale"):
        if name in types:
            return name
    return None


def _load_spec(path: Path):
    ct = _ct()
    if not (path / "Manifest.json").is_file():
        raise ConversionError(f"{path}: not an .mlpackage (no Manifest.json)")
    try:
        return ct.utils.load_spec(str(path))
    except Exception as exc:
        raise ConversionError(f"{path}: cannot read the Core ML package ({first_line(exc)})") from exc


def verify_package(path: str | Path, expect: dict) -> list[str]:
    """Check a saved .mlpackage against ``expect`` without loading it into Core ML.

    Returns the names of the checks that passed; raises ConversionError naming every failure.
    """
    path = Path(path)
    spec = _load_spec(path)
    failures, passed = [], []

    def check(name: str, ok: bool, detail: str) -> None:
        (passed.append(name) if ok else failures.append(f"{name}: {detail}"))

    check("ml_program", spec.WhichOneof("Type") == "mlProgram", f"type is {spec.WhichOneof('Type')}")
    weights = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    check("weights_file", weights.is_file(), "weights/weight.bin is missing")
    inputs = list(spec.description.input)
    image = inputs[0].type.imageType if len(inputs) == 1 else None
    check("image_input", image is not None and inputs[0].type.WhichOneof("Type") == "imageType"
          and inputs[0].name == "image", f"inputs are {[i.name for i in inputs]}")
    if image is not None:
        check("image_size", (image.height, image.width) == (expect["height"], expect["width"]),
              f"{image.height}x{image.width}, expected {expect['height']}x{expect['width']}")
        check("rgb", image.colorSpace == 20, f"colour space {image.colorSpace} is not RGB")
    outputs = {o.name: o.type.WhichOneof("Type") for o in spec.description.output}
    check("classifier_outputs", outputs.get("classLabel") in ("stringType", "int64Type")
          and outputs.get("classLabel_probs") == "dictionaryType"
          and spec.description.predictedFeatureName == "classLabel", f"outputs are {outputs}")
    if spec.WhichOneof("Type") == "mlProgram":
        block = _main_block(spec)
        consts = _consts(block)
        scale = consts.get("image__scaled___y_0", [1.0])
        bias = consts.get("image__biased___y_0", [0.0, 0.0, 0.0])
        check("preprocessing", np.allclose(scale, [expect["scale"]], rtol=1e-6)
              and np.allclose(bias, expect["bias"], rtol=1e-6, atol=1e-7),
              f"scale {scale} bias {bias}, expected {expect['scale']} {expect['bias']}")
        labels = _class_labels(block)
        check("class_labels", labels == [str(label) for label in expect["labels"]],
              f"{None if labels is None else len(labels)} labels, expected {len(expect['labels'])}")
        check("precision", _precision(block) == expect["precision"],
              f"program computes in {_precision(block)}")
        wanted = _COMPRESSION_OPS.get(expect["compress"])
        check("compression", _compression(block) == wanted,
              f"found {_compression(block)}, expected {wanted}")
    meta = spec.description.metadata
    check("metadata", meta.author == expect["author"] and meta.versionString == expect["version"]
          and meta.shortDescription == expect["short_description"]
          and all(meta.userDefined.get(k) == v for k, v in expect["user_defined"].items()),
          "author/version/description/user-defined metadata differ")
    if failures:
        raise ConversionError(f"{path.name} failed static checks: {'; '.join(failures)}")
    return passed


def describe_feature(feature) -> dict:
    """One input or output of a Core ML description: name, type, shape (-1 where a range allows
    several sizes, with ``shape_range``), element type, optional, and its short description."""
    from coremltools.proto import FeatureTypes_pb2

    kind = feature.type.WhichOneof("Type")
    out = {"name": feature.name, "type": kind.removesuffix("Type")}
    if kind == "imageType":
        image = feature.type.imageType
        out.update(height=image.height, width=image.width, color_space={10: "GRAYSCALE", 20: "RGB", 30: "BGR"}.get(
            image.colorSpace, str(image.colorSpace)))
    elif kind == "multiArrayType":
        array = feature.type.multiArrayType
        ranges = [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
        out["shape"] = ([low if low == high else -1 for low, high in ranges] if ranges else list(array.shape))
        if ranges:
            out["shape_range"] = [list(r) for r in ranges]
        out["dtype"] = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType).lower()
    if feature.type.isOptional:
        out["optional"] = True
    if feature.shortDescription:
        out["description"] = feature.shortDescription
    return out


def nms_settings(spec) -> dict | None:
    """The NonMaximumSuppression model of a pipeline spec, or None: its thresholds, per-class flag,
    the most boxes it returns (upper bound of its outputs' rows; None: unbounded) and labels."""
    models = spec.pipeline.models if spec.WhichOneof("Type") == "pipeline" else []
    model = next((m for m in models if m.WhichOneof("Type") == "nonMaximumSuppression"), None)
    if model is None:
        return None
    nms = model.nonMaximumSuppression
    confidence = next((o for o in model.description.output if o.name == nms.confidenceOutputFeatureName), None)
    rows = confidence.type.multiArrayType.shapeRange.sizeRanges if confidence is not None else []
    upper = rows[0].upperBound if rows else -1
    return {"iou_threshold": nms.iouThreshold, "confidence_threshold": nms.confidenceThreshold,
            "per_class": nms.pickTop.perClass, "max_boxes": upper if upper >= 0 else None,
            "labels": list(nms.stringClassLabels.vector)}


def describe_package(path: str | Path) -> dict:
    """What a .mlpackage holds (for ``inspect``): I/O, classes, metadata, precision, ops, size;
    for a pipeline, its models and the settings of its NonMaximumSuppression stage."""
    path = Path(path)
    spec = _load_spec(path)
    meta = spec.description.metadata
    info = {"format": "mlpackage", "bytes": sum(p.stat().st_size for p in path.rglob("*") if p.is_file()),
            "type": spec.WhichOneof("Type"), "specification_version": spec.specificationVersion,
            "inputs": [describe_feature(f) for f in spec.description.input],
            "outputs": [describe_feature(f) for f in spec.description.output],
            "metadata": {"author": meta.author, "version": meta.versionString,
                         "short_description": meta.shortDescription,
                         "user_defined": dict(sorted(meta.userDefined.items()))}}
    if spec.WhichOneof("Type") == "mlProgram":
        block = _main_block(spec)
        consts = _consts(block)
        ops = collections.Counter(op.type for op in block.operations if op.type != "const")
        info.update(classes=_class_labels(block), precision=_precision(block),
                    compression=_compression(block), ops=dict(sorted(ops.items())),
                    preprocessing={"scale": consts.get("image__scaled___y_0"),
                                   "bias": consts.get("image__biased___y_0")})
    if spec.WhichOneof("Type") == "pipeline":
        info["models"] = [m.WhichOneof("Type") for m in spec.pipeline.models]
        nms = nms_settings(spec)
        if nms is not None:
            info["classes"] = nms.pop("labels")
            info["nms"] = nms
    return info
