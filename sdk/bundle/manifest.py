"""The bundle's ``manifest.json`` (schema ``edgetailor.bundle/1``) as one typed record, for every task.

A folder's hash (the .mlpackage) is the sha256 of the lines ``<relative path>\\0<sha256 of the
file>\\n`` over its files in sorted path order.
"""
from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as dist
from pathlib import Path
from typing import Any

from edgetailor import __version__
from edgetailor.choose.candidate import Accuracy, within_budget
from edgetailor.errors import BundleError
from edgetailor.latency.profiles import DeviceProfile

SCHEMA = "edgetailor.bundle/1"
FILES = ("model.tflite", "model.mlpackage", "labels.txt", "manifest.json")
_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow", "tflite-support", "coremltools", "numpy",
                  "protobuf", "click")


@dataclass(frozen=True)
class LatencyReport:
    """What the bundle is predicted to cost on the device (ms), and against which budget."""

    predicted_ms: float | None
    expected_error_pct: float | None
    budget_ms: float | None
    priced: str | None = None                 # what the prediction covers, where not the whole model
    published_references: tuple[dict, ...] = ()

    @property
    def within_budget(self) -> bool | None:
        return within_budget(self.predicted_ms, self.budget_ms)

    def warnings(self, device: str) -> list[str]:
        if self.within_budget is False:
            return [f"predicted {self.predicted_ms:.1f} ms on {device} exceeds the "
                    f"{self.budget_ms:g} ms budget"]
        return []

    def to_dict(self) -> dict:
        data = {"predicted_ms": None if self.predicted_ms is None else round(self.predicted_ms, 3),
                "expected_error_pct": self.expected_error_pct, "budget_ms": self.budget_ms,
                "within_budget": self.within_budget}
        if self.priced is not None:
            data["priced"] = self.priced
            data["published_references"] = list(self.published_references)
        return data


@dataclass(frozen=True)
class QuantizationReport:
    """``--quantize int8``: the task's held-out figure (%) of the float32 and int8 TFLite models, each
    run in the TFLite interpreter, and which int8 model ships (post-training or quantization-aware)."""

    mode: str                          # "int8"
    metric: str                        # what the figures are (top-1, COCO mAP, mIoU; %)
    measured_on: str                   # the held-out split, and any post-processing applied
    float_value: float                 # float32 TFLite
    ptq_value: float                   # post-training int8, calibrated on the training images
    threshold_pp: float                # QAT runs when float - ptq exceeds this
    shipped: str                       # "ptq" or "qat": model.tflite's int8 model
    reason: str
    calibration_images: int
    qat_value: float | None = None     # quantization-aware int8, when QAT ran
    qat_epochs: int | None = None

    def to_dict(self) -> dict:
        int8 = self.qat_value if self.shipped == "qat" else self.ptq_value
        drop = lambda value: None if value is None else round(self.float_value - value, 2)  # noqa: E731
        return {"mode": self.mode, "metric": self.metric, "measured_on": self.measured_on,
                "float": {"value": self.float_value},
                "ptq": {"value": self.ptq_value, "drop_pp": drop(self.ptq_value),
                        "calibration_images": self.calibration_images},
                "qat": None if self.qat_value is None else {"value": self.qat_value, "drop_pp": drop(self.qat_value),
                                                            "epochs": self.qat_epochs},
                "int8": {"value": int8, "method": self.shipped}, "drop_pp": drop(int8),
                "threshold_pp": self.threshold_pp, "qat_ran": self.qat_value is not None, "reason": self.reason}


@dataclass
class Manifest:
    """Everything ``manifest.json`` says; ``tflite``, ``coreml``, ``files`` and ``tools`` are
    filled in by the writer from the files it wrote."""

    task: str
    model_name: str
    arch: dict | None
    weights: str                      # "random" or where the weights came from
    profile: DeviceProfile
    latency: LatencyReport
    accuracy: Accuracy
    input: dict
    labels: list[str]
    warnings: list[str] = field(default_factory=list)
    source_model: dict | None = None
    postprocess: dict | None = None   # detection: what both models return (PostprocessConfig)
    quantization: QuantizationReport | None = None  # --quantize int8: float vs int8, measured
    mixed_precision: dict | None = None  # quantize-mix: per-layer precision, errors, accuracy, latency
    tflite: dict = field(default_factory=dict)
    coreml: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    tools: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        if self.weights == "random":
            noun = {"classification": "classifier", "detection": "detector",
                    "segmentation": "segmenter"}[self.task]
            self.warnings.insert(0, f"built with random weights: a placeholder for app integration, "
                                    f"not a {noun}")
        self.warnings.extend(self.latency.warnings(self.profile.name))

    def to_dict(self) -> dict[str, Any]:
        p = self.profile
        data = {
            "schema": SCHEMA, "created": self.created, "task": self.task, "arch": self.arch,
            "model_name": self.model_name, "weights": self.weights, "source_model": self.source_model,
            "warnings": self.warnings,
            "device": {"profile": p.name, "version": p.version, "setting": p.setting,
                       "device": p.device, "runtime": p.runtime},
            "latency": self.latency.to_dict(), "accuracy": self.accuracy.to_dict(), "input": self.input,
            "labels": list(self.labels), "tflite": self.tflite, "coreml": self.coreml,
            "files": self.files, "tools": self.tools,
        }
        if self.postprocess is not None:
            data["postprocess"] = self.postprocess
        if self.quantization is not None:
            data["quantization"] = self.quantization.to_dict()
        if self.mixed_precision is not None:
            data["mixed_precision"] = self.mixed_precision
        return data


def read_labels(path: str | Path) -> list[str]:
    """Labels from a text file, one per line (blank lines at the end ignored)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(f"labels file not found: {path}") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise BundleError(f"cannot read labels file {path}: {exc}") from None
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if not labels or any(not label for label in labels):
        raise BundleError(f"labels file {path} needs one non-empty label per line")
    if len(set(labels)) != len(labels):
        raise BundleError(f"labels file {path} repeats a label")
    return labels


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_files(path: Path) -> dict[str, str]:
    """Relative POSIX path -> sha256 of every file under a folder, in sorted path order."""
    files = {p.relative_to(path).as_posix(): p for p in path.rglob("*") if p.is_file()}
    return {name: file_sha256(files[name]) for name in sorted(files)}


def path_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder's sorted ``path\\0sha256\\n`` lines."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for name, sha in tree_files(path).items():
        digest.update(f"{name}\0{sha}\n".encode())
    return digest.hexdigest()


def size_bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def file_entry(path: Path) -> dict:
    entry = {"sha256": path_sha256(path), "bytes": size_bytes(path)}
    if path.is_dir():
        entry["files"] = tree_files(path)
    return entry


def tool_versions() -> dict[str, str]:
    versions = {"edgetailor": __version__, "python": platform.python_version()}
    for name in _DISTRIBUTIONS:
        try:
            versions[name] = dist.version(name)
        except dist.PackageNotFoundError:
            pass
    return versions
