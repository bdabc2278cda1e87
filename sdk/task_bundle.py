"""App-ready bundles for detectors (SSDLite) and segmenters (LR-ASPP).

Same folder and manifest schema as classification bundles (``edgetailor.bundle``), with the
task's formats (CONVENTIONS.md):

    detection     model.tflite ends in TFLite_Detection_PostProcess (locations, classes, scores,
                  number of detections) with ObjectDetector metadata; model.mlpackage is a
                  pipeline ending in NonMaximumSuppression (``confidence``, ``coordinates``)
    segmentation  model.tflite with ImageSegmenter metadata (per-class scores); model.mlpackage
                  an ML Program with ``mask`` and ``probabilities`` outputs

The manifest records what both files hold (read back from them, not assumed), the predicted
latency of backbone + head and what it does not price, and the published references. Written
to a temp folder and renamed, as every bundle.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from edgetailor.bundle import (FILES, SCHEMA, Accuracy, BundleError, check_output_folder, file_entry,
                               tool_versions, write_atomically)
from edgetailor.profiles import DeviceProfile

NORMALIZATION = {"mean": [127.5] * 3, "std": [127.5] * 3}  # both heads' input: (pixel - 127.5) / 127.5
_UNPRICED = {
    "detection": "backbone + SSDLite head; TFLite_Detection_PostProcess (box decoding + NMS) is "
                 "not priced: no profile holds a measurement of it",
    "segmentation": "backbone + LR-ASPP head, including both bilinear resizes",
}


def package_dense(task: str, trained, out_dir: str | Path, *, profile: DeviceProfile, name: str,
                  weights: str, budget_ms: float | None, accuracy: Accuracy, predicted_ms: float,
                  references: list[dict] = (), progress: Callable[[str], None] | None = None,
                  quiet: bool = False) -> dict:
    """Export ``trained`` (a ``det_train.Detector`` or ``seg_train.Segmenter``) for both
    platforms into the bundle folder ``out_dir``; returns the manifest. ``quiet`` keeps the
    converters' native log lines and progress bars off stderr."""
    out_dir = Path(out_dir)
    say = progress or (lambda message: None)
    check_output_folder(out_dir)
    labels = list(trained.classes if task == "detection" else trained.labels)
    random_weights = weights == "random"
    warnings = ["built with random weights: a placeholder for app integration, not a "
                f"{'detector' if task == 'detection' else 'segmenter'}"] if random_weights else []
    within = None if budget_ms is None else predicted_ms <= budget_ms
    if within is False:
        warnings.append(f"predicted {predicted_ms:.1f} ms on {profile.name} exceeds the "
                        f"{budget_ms:g} ms budget")
    spec = trained.spec
    manifest = {
        "schema": SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": task,
        "arch": {"name": name, "spec": spec.encode(), "resolution": spec.resolution, "width": spec.width,
                 "head": {"detection": "ssdlite", "segmentation": "lraspp"}[task],
                 "head_config": _config_dict(trained.config)},
        "model_name": name, "weights": weights, "source_model": None, "warnings": warnings,
        "device": {"profile": profile.name, "version": profile.version, "setting": profile.setting,
                   "device": profile.device, "runtime": profile.runtime},
        "latency": {"predicted_ms": round(predicted_ms, 3), "expected_error_pct": profile.expected_error_pct,
                    "budget_ms": budget_ms, "within_budget": within, "priced": _UNPRICED[task],
                    "published_references": list(references)},
        "accuracy": asdict(accuracy),
        "input": {"name": "image", "shape": [1, spec.resolution, spec.resolution, 3], "layout": "NHWC",
                  "color": "RGB", "normalization": NORMALIZATION},
        "labels": labels,
    }

    def write(folder: Path) -> None:
        from edgetailor.converters import coreml, detection_export, segmentation_export, tflite

        exporter = {"detection": detection_export, "segmentation": segmentation_export}[task]
        folder.mkdir()
        say(f"converting the {task} model to TFLite (float32, with metadata)")
        exporter.export_tflite(trained, folder / "model.tflite")
        say("converting to Core ML" + (" (decoder + NMS pipeline)" if task == "detection" else ""))
        exporter.export_coreml(trained, folder / "model.mlpackage")
        say("writing bundle")
        described = tflite.describe((folder / "model.tflite").read_bytes())
        manifest["tflite"] = {"inputs": described["inputs"], "outputs": described["outputs"],
                              "ops": described["ops"],
                              "metadata_labels": (described["metadata"] or {}).get("labels")}
        package = coreml.describe_package(folder / "model.mlpackage")
        manifest["coreml"] = {k: package[k] for k in ("type", "specification_version", "inputs", "outputs")}
        manifest["coreml"]["predict"] = "not run: Core ML prediction needs macOS (see ios_harness)"
        (folder / "labels.txt").write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
        manifest["files"] = {f: file_entry(folder / f) for f in FILES[:-1]}
        manifest["tools"] = tool_versions()
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")

    from edgetailor.converters.base import native_output_captured

    try:
        with native_output_captured(quiet):
            write_atomically(out_dir, write)
    except (ValueError, RuntimeError) as exc:
        raise BundleError(f"cannot export the {task} model: {exc}") from None
    return manifest


def _config_dict(config) -> dict:
    return json.loads(json.dumps(asdict(config)))  # tuples as lists, as the manifest reads back
