"""App-ready bundles: one folder an Android or iOS app loads as is, described by ``manifest.json``.

    DIR/model.tflite      TFLite with tflite-support metadata (normalisation, labels)
    DIR/model.mlpackage   Core ML (classifier: ML Program; detector: pipeline ending in NMS;
                          segmenter: ML Program with mask + probabilities), verified statically
    DIR/labels.txt        one label per line, line i = class i
    DIR/manifest.json     ``edgetailor.bundle.manifest.Manifest``

``write_bundle`` is the one writer for every task: the task's exporter writes the two models into
a hidden temp folder next to DIR, the writer adds labels, hashes and the manifest and renames the
folder into place, so a failure or Ctrl-C leaves no half bundle. ``package`` bundles a tf.keras
classifier; detectors and segmenters come with their task's exporter (``tasks``).

TensorFlow is not imported here; the converters are, lazily, when a bundle is written.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

from edgetailor import __version__
from edgetailor._io import check_output_folder, write_atomically
from edgetailor.arch import layers, zoo
from edgetailor.bundle.manifest import (FILES, LatencyReport, Manifest, file_entry, read_labels,  # noqa: F401
                                        tool_versions)
from edgetailor.choose.candidate import Accuracy
from edgetailor.errors import BundleError, ConversionError, SpecError
from edgetailor.latency.profiles import DeviceProfile

# writes model.tflite and model.mlpackage into a folder; returns the manifest's tflite and coreml parts
ModelWriter = Callable[[Path], tuple[dict, dict]]


def write_bundle(out_dir: str | Path, manifest: Manifest, write_models: ModelWriter, *,
                 progress: Callable[[str], None] | None = None, quiet: bool = False) -> dict:
    """Write the bundle folder ``out_dir`` atomically; returns the manifest as written.

    ``quiet`` keeps the converters' native log lines off stderr."""
    from edgetailor.converters.base import native_output_captured

    out_dir = Path(out_dir)
    say = progress or (lambda message: None)
    check_output_folder(out_dir)

    def write(folder: Path) -> None:
        folder.mkdir()
        manifest.tflite, manifest.coreml = write_models(folder)
        say("writing bundle")
        (folder / "labels.txt").write_text("".join(f"{label}\n" for label in manifest.labels), encoding="utf-8")
        manifest.files = {name: file_entry(folder / name) for name in FILES[:-1]}
        manifest.tools = tool_versions()
        (folder / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=1, allow_nan=False) + "\n",
                                              encoding="utf-8")

    try:
        with native_output_captured(quiet):
            write_atomically(out_dir, write)
    except ConversionError as exc:
        raise BundleError(f"cannot export the {manifest.task} model: {exc}") from None
    return manifest.to_dict()


def published_accuracy(resolved: zoo.Resolved | None, random_weights: bool) -> Accuracy:
    """The zoo's published top-1 when the model is exactly a zoo entry, else an unknown figure."""
    entry = resolved.entry if resolved else None
    if entry is None or entry.published.top1 is None or resolved.spec != entry.spec:
        return Accuracy(None, None, None, note="no published figure for this architecture "
                        "at this width and resolution")
    note = ("the architecture's published figure with its reference ImageNet weights; this "
            "bundle's weights are random" if random_weights else
            "the architecture's published figure; not measured on these weights")
    return Accuracy(entry.published.top1, "published", entry.published.source, note=note)


def identify_arch(model: Any, arch: str | None, width: float | None = None) -> zoo.Resolved | None:
    """The architecture of a saved Keras model: ``arch`` if given (checked), else its name if a zoo name.

    The check compares parameter counts with the layer walk; a mismatch with an explicit
    ``arch`` is an error, with a guessed one it means "unknown" (None).
    """
    size = int(model.input_shape[1])
    classes = int(model.output_shape[-1])
    candidates = [arch] if arch else [model.name]
    for name in candidates:
        try:
            resolved = zoo.resolve(name, width=width, resolution=size)
        except SpecError as exc:
            if arch:
                raise BundleError(f"--arch: {exc}") from None
            return None
        expected = sum(layer.keras_params for layer in layers.walk(resolved.spec, classes))
        actual = _weight_params(model)
        if expected == actual:
            return resolved
        if arch:
            raise BundleError(f"the model does not match {arch} at {size} px: {actual:,} parameters, "
                              f"{resolved.name} has {expected:,}")
    return None


def _weight_params(model: Any) -> int:
    skip = ("Rescaling", "Normalization")  # Keras Applications' preprocessing layers
    return sum(layer.count_params() for layer in model.layers if type(layer).__name__ not in skip)


def package(model: Any, out_dir: str | Path, *, labels: list[str], profile: DeviceProfile,
            arch: zoo.Resolved | None = None, weights: str = "random", budget_ms: float | None = None,
            predicted_ms: float | None = None, accuracy: Accuracy | None = None,
            quantize: str = "none", io_type: str = "uint8", precision: str = "float16",
            compress: str = "none", calibration: Iterable | None = None, normalization: Any = None,
            source_model: dict | None = None, progress: Callable[[str], None] | None = None,
            quiet: bool = False, tflite_model: Any = None, quantization: Any = None) -> dict:
    """Convert the tf.keras classifier ``model`` for both platforms and write the bundle ``out_dir``.

    ``weights`` is "random" for an untrained build (the manifest then warns) or a short
    description of where the weights came from. ``predicted_ms`` is the latency a chooser already
    checked against ``budget_ms`` (priced here from ``arch`` when not given). ``calibration``
    images (pixels) are needed for ``quantize`` int8/int16x8. ``tflite_model``: the Keras model the
    TFLite file is converted from when it is not ``model`` (a quantization-aware copy; Core ML
    still converts ``model``), and ``quantization`` its measured ``QuantizationReport``. Returns
    the manifest.
    """
    from edgetailor.converters import ConvertOptions, ModelInfo, convert
    from edgetailor.converters.inputs import normalization_of
    from edgetailor.converters.tflite import classes_of

    say = progress or (lambda message: None)
    check_output_folder(Path(out_dir))
    try:
        classes = classes_of(model)
    except ConversionError as exc:
        raise BundleError(str(exc)) from None
    if len(labels) != classes:
        raise BundleError(f"{len(labels)} labels for a model with {classes} classes")
    normalization = normalization or normalization_of(model)
    warnings = []
    if predicted_ms is None and arch is not None:
        predicted_ms = profile.predict(arch.spec, classes).total_ms
    if arch is None:
        warnings.append("architecture unknown (pass --arch): no predicted latency")
    latency = LatencyReport(predicted_ms, profile.expected_error_pct, budget_ms)
    name = arch.name if arch else model.name
    info = ModelInfo(
        name=name, version="1", author=f"edgetailor {__version__}",
        description=f"{name} image classifier, {classes} classes, tailored to {profile.name}"
                    + (" (random weights)" if weights == "random" else ""),
        extra=tuple((f"edgetailor.{k}", str(v)) for k, v in (
            ("device", profile.name), ("profile_version", profile.version),
            ("predicted_latency_ms", latency.to_dict()["predicted_ms"]),
            ("expected_error_pct", latency.expected_error_pct), ("budget_ms", budget_ms),
            ("spec", arch.spec.encode() if arch else None), ("weights", weights)) if v is not None))
    options = ConvertOptions(quantize=quantize, io_type=io_type, precision=precision,
                             compress=compress, labels=tuple(labels), normalization=normalization,
                             info=info, quiet=quiet)
    try:
        say(f"converting to TFLite ({quantize})")
        tflite = convert(model if tflite_model is None else tflite_model, "tflite", options, calibration)
        say(f"converting to Core ML ({precision}{'' if compress == 'none' else ', ' + compress})")
        coreml = convert(model, "coreml", options.replace(quantize="none"))
    except ConversionError as exc:
        raise BundleError(str(exc)) from None
    manifest = Manifest(
        task="classification", model_name=name, weights=weights, profile=profile, latency=latency,
        arch=None if arch is None else {"name": arch.name, "spec": arch.spec.encode(),
                                        "resolution": arch.spec.resolution, "width": arch.spec.width},
        accuracy=accuracy or published_accuracy(arch, weights == "random"), labels=list(labels),
        source_model=source_model, warnings=warnings, quantization=quantization,
        input={"name": "image", "shape": tflite.details["inputs"][0]["shape"], "layout": "NHWC",
               "color": "RGB", "normalization": normalization.to_dict(),
               "tflite": tflite.details["inputs"][0],
               "coreml": {"type": "image", "scale": coreml.details["scale"],
                          "bias": coreml.details["bias"], "exact": coreml.details["exact_normalization"]}})

    def write_models(folder: Path) -> tuple[dict, dict]:
        tflite.save(folder / "model.tflite")
        coreml.save(folder / "model.mlpackage")  # runs the static Core ML checks
        return ({k: tflite.details[k] for k in ("quantize", "io_type", "calibration_images", "parity",
                                                "ops", "outputs", "seconds")},
                {k: coreml.details[k] for k in ("precision", "compress", "specification_version",
                                                "seconds", "predict", "verified")})

    return write_bundle(out_dir, manifest, write_models, progress=say)
