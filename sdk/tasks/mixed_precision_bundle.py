"""Run the mixed-precision search for a saved classifier and write its bundle (one writer, atomic).

``model.tflite`` is the searched mix (float32 input and output, metadata added), ``model.mlpackage``
the float model in Core ML (Core ML has no int8/float32 layer mix to express), and the manifest's
``mixed_precision`` section says per layer what stayed float and why. The exported float32, full
int8 and mixed models are also timed whole on this machine, so the prediction's error on the host
is reported (on a phone it cannot be measured here).
"""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Callable

import numpy as np

from edgetailor import __version__
from edgetailor.bundle.manifest import LatencyReport, Manifest
from edgetailor.bundle.writer import write_bundle
from edgetailor.choose.candidate import Accuracy
from edgetailor.errors import BundleError
from edgetailor.latency import profiles
from edgetailor.latency.cost import FEATURES
from edgetailor.tasks import mixed_precision as mp
from edgetailor.tasks import mixed_precision_latency as pricing
from edgetailor.tasks import quantize

HOST = "host"


def host_profile() -> profiles.DeviceProfile:
    """The manifest's description of this machine (the costs themselves are measured per model)."""
    import tensorflow as tf

    from edgetailor.profiling.host import cpu_name

    return profiles.DeviceProfile(
        name=f"host-tflite{tf.__version__}-1t", aliases=(HOST,), version=__version__,
        device=f"this machine: {cpu_name() or platform.machine()}", runtime="tflite",
        setting=f"TFLite {tf.__version__} interpreter, XNNPACK, 1 thread; each layer timed as a one-op model",
        coefficients=np.zeros(len(FEATURES)), table={}, error={}, expected_error_pct=None,
        provenance=({"source": "measured here, per model"},), calibration=())


def run(model, dataset: Path, device: str, request: mp.MixRequest, out_dir: Path,
        progress: Callable[[str], None], source_model: dict | None = None) -> dict:
    """Search, measure on the host, and write the bundle ``out_dir``; returns the manifest."""
    from edgetailor._io import check_output_folder
    from edgetailor.tasks.classification.train import folder_classes

    check_output_folder(out_dir)
    profile = host_profile() if device == HOST else profiles.load(device)
    if device != HOST:
        pricing.int8_partner(profile)  # a one-line error before any conversion
    labels = sorted(folder_classes(dataset))
    if len(labels) != int(model.output_shape[-1]):
        raise BundleError(f"{dataset} has {len(labels)} classes; the model has {model.output_shape[-1]} outputs")
    subject = quantize.classifier(model, dataset, learning_rate=1e-3)
    noise = {}

    def price(float_fb: bytes, int8_fb: bytes) -> pricing.Costs:
        if device != HOST:
            return pricing.phone_costs(int8_fb, profile)
        progress("timing every layer in float32 and int8, and the boundaries, on this machine")
        costs, noise["layers"] = pricing.host_costs(float_fb, int8_fb)
        return costs

    result = mp.search(subject, request, price, progress)
    measured = _measure_host(result, progress)
    section = mp.report(result, request, measured, noise.get("layers"), subject)
    return _write(model, out_dir, labels, profile, request, result, section, subject, source_model, progress)


def _measure_host(result: mp.MixResult, progress) -> dict:
    from edgetailor.profiling.precision_timing import measure_model

    progress("timing the float32, int8 and mixed models whole on this machine")
    out = {}
    for kind in ("float32", "int8", "mixed"):
        ms, spread = measure_model(result.flatbuffers[kind])
        out[kind] = {"ms": round(ms, 4), "spread_pct": round(spread, 1)}
    if result.costs.source.startswith("host"):
        for kind in out:
            predicted = result.predicted_ms[kind]
            out[kind]["prediction_error_pct"] = round((predicted - out[kind]["ms"]) / out[kind]["ms"] * 100, 1)
    return out


def _write(model, out_dir: Path, labels: list[str], profile, request: mp.MixRequest, result: mp.MixResult,
           section: dict, subject: quantize.Subject, source_model: dict | None, progress) -> dict:
    from edgetailor.converters import ConvertOptions, ModelInfo, convert
    from edgetailor.converters.inputs import normalization_of
    from edgetailor.converters.metadata import add_metadata
    from edgetailor.converters.tflite import op_counts, tensor_details

    normalization = normalization_of(model)
    info = ModelInfo(name=model.name, version="1", author=f"edgetailor {__version__}",
                     description=f"{model.name} image classifier, {len(labels)} classes, int8 with "
                                 f"{len(result.floats)} float32 layers, tailored to {profile.name}")
    options = ConvertOptions(labels=tuple(labels), normalization=normalization, info=info, quiet=True)
    flatbuffer = add_metadata(result.model, "classification", normalization, tuple(labels), info)
    progress("converting the float model to Core ML")
    coreml = convert(model, "coreml", options)
    details = tensor_details(flatbuffer)
    latency = LatencyReport(result.predicted_ms["mixed"], profile.expected_error_pct, request.budget_ms)
    manifest = Manifest(
        task="classification", model_name=model.name, arch=None, weights="saved model", profile=profile,
        latency=latency, accuracy=Accuracy(result.accuracy["mixed"], "measured", subject.measured_on,
                                           metric=subject.metric),
        labels=labels, source_model=source_model, warnings=[mp.DELEGATE_WARNING], mixed_precision=section,
        input={"name": "image", "shape": details["inputs"][0]["shape"], "layout": "NHWC", "color": "RGB",
               "normalization": normalization.to_dict(), "tflite": details["inputs"][0],
               "coreml": {"type": "image", "scale": coreml.details["scale"], "bias": coreml.details["bias"],
                          "exact": coreml.details["exact_normalization"]}})

    def write_models(folder: Path) -> tuple[dict, dict]:
        (folder / "model.tflite").write_bytes(flatbuffer)
        coreml.save(folder / "model.mlpackage")
        return ({"quantize": "mixed int8/float32", "ops": op_counts(flatbuffer), "outputs": details["outputs"]},
                {k: coreml.details[k] for k in ("precision", "compress", "specification_version", "predict",
                                                "verified")})

    return write_bundle(out_dir, manifest, write_models, progress=progress, quiet=True)
