"""App-ready bundles: one folder an Android or iOS app loads as is, described by ``manifest.json``.

    DIR/model.tflite      TFLite with tflite-support metadata (normalisation, labels)
    DIR/model.mlpackage   Core ML ML Program (image input, classifier), verified statically
    DIR/labels.txt        one label per line, line i = class i
    DIR/manifest.json     schema ``edgetailor.bundle/1``: arch + spec, device profile, predicted
                          latency and its expected error, budget, accuracy and its kind, input
                          normalisation, labels, sha256 of every file, tool versions

The bundle is written to a hidden temp folder next to DIR and renamed into place, so a failure
or Ctrl-C leaves no half bundle. A folder's hash (the .mlpackage) is the sha256 of the lines
``<relative path>\\0<sha256 of the file>\\n`` over its files in sorted path order.

TensorFlow is not imported here; the converters are, lazily, when a bundle is written.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata as dist
from pathlib import Path
from typing import Any, Callable, Iterable

from edgetailor import __version__, layers, profiles, zoo
from edgetailor.spec import SpecError

SCHEMA = "edgetailor.bundle/1"
FILES = ("model.tflite", "model.mlpackage", "labels.txt", "manifest.json")
ACCURACY_KINDS = ("published", "estimated", "measured")
_DISTRIBUTIONS = ("tensorflow-cpu", "tensorflow", "tflite-support", "coremltools", "numpy",
                  "protobuf", "click")


class BundleError(SpecError):
    """A bundle that cannot be written or does not check out; the message is one line."""


@dataclass(frozen=True)
class Accuracy:
    """An accuracy figure and where it comes from (``kind``: published, estimated or measured)."""

    value: float | None
    kind: str | None
    source: str | None
    metric: str = "ImageNet top-1 (%)"
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in ACCURACY_KINDS:
            raise BundleError(f"accuracy kind must be one of {', '.join(ACCURACY_KINDS)} (got {self.kind!r})")


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


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def tool_versions() -> dict[str, str]:
    versions = {"edgetailor": __version__, "python": platform.python_version()}
    for name in _DISTRIBUTIONS:
        try:
            versions[name] = dist.version(name)
        except dist.PackageNotFoundError:
            pass
    return versions


def check_output_folder(out_dir: Path) -> None:
    """A bundle goes into a new (or empty) folder whose parent exists."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BundleError(f"output {out_dir} already exists and is not empty")
    if not out_dir.parent.is_dir():
        raise BundleError(f"output folder does not exist: {out_dir.parent}")


def write_atomically(out_path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temp)`` on a temp path next to ``out_path``, then rename it into place.

    ``temp`` is a fresh folder path (not yet created) for folder outputs and a file path for
    files; on any failure, Ctrl-C included, the temp path is removed and ``out_path`` untouched.
    """
    temp = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent))
    target = temp / out_path.name
    try:
        write(target)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(target, (0o777 if target.is_dir() else 0o666) & ~umask)
        if out_path.is_dir() and not any(out_path.iterdir()):
            out_path.rmdir()  # an empty folder the user made for us
        os.rename(target, out_path)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


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


def package(model: Any, out_dir: str | Path, *, labels: list[str], device: str | profiles.DeviceProfile,
            arch: zoo.Resolved | None = None, weights: str = "random", budget_ms: float | None = None,
            accuracy: Accuracy | None = None, quantize: str = "none", io_type: str = "uint8",
            precision: str = "float16", compress: str = "none",
            calibration: Iterable | None = None, normalization: Any = None,
            source_model: dict | None = None, progress: Callable[[str], None] | None = None,
            quiet: bool = False) -> dict:
    """Convert ``model`` (tf.keras) for both platforms and write the bundle folder ``out_dir``.

    ``weights`` is "random" for an untrained build (the manifest then warns) or a short
    description of where the weights came from. ``calibration`` images (pixels) are needed
    for ``quantize`` int8/int16x8. Returns the manifest.
    """
    from edgetailor.converters import ConversionError, ConvertOptions, ModelInfo, convert
    from edgetailor.converters.inputs import normalization_of
    from edgetailor.converters.tflite import classes_of

    out_dir = Path(out_dir)
    say = progress or (lambda message: None)
    check_output_folder(out_dir)
    profile = device if isinstance(device, profiles.DeviceProfile) else profiles.load(device)
    try:
        classes = classes_of(model)
    except ConversionError as exc:
        raise BundleError(str(exc)) from None
    if len(labels) != classes:
        raise BundleError(f"{len(labels)} labels for a model with {classes} classes")
    normalization = normalization or normalization_of(model)
    random_weights = weights == "random"
    warnings = []
    if random_weights:
        warnings.append("built with random weights: a placeholder for app integration, not a classifier")
    latency = _latency(profile, arch, classes, budget_ms, warnings)
    accuracy = accuracy or published_accuracy(arch, random_weights)
    name = arch.name if arch else model.name
    info = ModelInfo(
        name=name, version="1", author=f"edgetailor {__version__}",
        description=f"{name} image classifier, {classes} classes, tailored to {profile.name}"
                    + (" (random weights)" if random_weights else ""),
        extra=tuple((f"edgetailor.{k}", str(v)) for k, v in (
            ("device", profile.name), ("profile_version", profile.version),
            ("predicted_latency_ms", latency["predicted_ms"]),
            ("expected_error_pct", latency["expected_error_pct"]), ("budget_ms", budget_ms),
            ("spec", arch.spec.encode() if arch else None), ("weights", weights)) if v is not None))
    options = ConvertOptions(quantize=quantize, io_type=io_type, precision=precision,
                             compress=compress, labels=tuple(labels), normalization=normalization,
                             info=info, quiet=quiet)
    try:
        say(f"converting to TFLite ({quantize})")
        tflite = convert(model, "tflite", options, calibration)
        say(f"converting to Core ML ({precision}{'' if compress == 'none' else ', ' + compress})")
        coreml = convert(model, "coreml", options.replace(quantize="none"))
    except ConversionError as exc:
        raise BundleError(str(exc)) from None
    manifest = {
        "schema": SCHEMA, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": "classification",
        "arch": None if arch is None else {"name": arch.name, "spec": arch.spec.encode(),
                                           "resolution": arch.spec.resolution,
                                           "width": arch.spec.width},
        "model_name": name, "weights": weights, "source_model": source_model,
        "warnings": warnings,
        "device": {"profile": profile.name, "version": profile.version, "setting": profile.setting,
                   "device": profile.device, "runtime": profile.runtime},
        "latency": latency, "accuracy": asdict(accuracy),
        "input": {"name": "image", "shape": tflite.details["inputs"][0]["shape"], "layout": "NHWC",
                  "color": "RGB", "normalization": normalization.to_dict(),
                  "tflite": tflite.details["inputs"][0],
                  "coreml": {"type": "image", "scale": coreml.details["scale"],
                             "bias": coreml.details["bias"],
                             "exact": coreml.details["exact_normalization"]}},
        "labels": list(labels),
        "tflite": {k: tflite.details[k] for k in ("quantize", "io_type", "calibration_images",
                                                  "parity", "ops", "outputs", "seconds")},
        "coreml": {k: coreml.details[k] for k in ("precision", "compress", "specification_version",
                                                  "seconds", "predict")},
        "tools": tool_versions(),
    }

    def write(folder: Path) -> None:
        folder.mkdir()
        say("writing bundle")
        tflite.save(folder / "model.tflite")
        coreml.save(folder / "model.mlpackage")  # runs the static Core ML checks
        manifest["coreml"]["verified"] = coreml.details["verified"]
        (folder / "labels.txt").write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
        manifest["files"] = {name: file_entry(folder / name) for name in FILES[:-1]}
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")

    try:
        write_atomically(out_dir, write)
    except ConversionError as exc:
        raise BundleError(str(exc)) from None
    return manifest


def _latency(profile: profiles.DeviceProfile, arch: zoo.Resolved | None, classes: int,
             budget_ms: float | None, warnings: list[str]) -> dict:
    if arch is None:
        warnings.append("architecture unknown (pass --arch): no predicted latency")
        return {"predicted_ms": None, "expected_error_pct": profile.expected_error_pct,
                "budget_ms": budget_ms, "within_budget": None}
    predicted = round(profile.predict(arch.spec, classes).total_ms, 3)
    within = None if budget_ms is None else predicted <= budget_ms
    if within is False:
        warnings.append(f"predicted {predicted:.1f} ms on {profile.name} exceeds the "
                        f"{budget_ms:g} ms budget")
    return {"predicted_ms": predicted, "expected_error_pct": profile.expected_error_pct,
            "budget_ms": budget_ms, "within_budget": within}


def file_entry(path: Path) -> dict:
    entry = {"sha256": path_sha256(path), "bytes": _size(path)}
    if path.is_dir():
        entry["files"] = tree_files(path)
    return entry


def inspect_bundle(folder: str | Path) -> dict:
    """The manifest of a bundle folder and a fresh hash check of every file it lists.

    ``{"manifest": ..., "files": {name: {"sha256_ok": bool, ...}}, "unlisted": [...], "ok": bool}``
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{folder} is not a bundle (no manifest.json)") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{folder}/manifest.json is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise BundleError(f"{folder}/manifest.json is not an {SCHEMA} manifest")
    checks = {}
    for name, entry in sorted(manifest.get("files", {}).items()):
        path = folder / name
        if not path.exists():
            checks[name] = {"present": False, "sha256_ok": False}
            continue
        actual = path_sha256(path)
        checks[name] = {"present": True, "sha256_ok": actual == entry.get("sha256"),
                        "bytes": _size(path)}
        if path.is_dir() and actual != entry.get("sha256"):
            now = tree_files(path)
            listed = entry.get("files", {})
            checks[name]["changed"] = sorted(k for k in set(now) | set(listed) if now.get(k) != listed.get(k))
    unlisted = sorted(p.name for p in folder.iterdir()
                      if p.name not in checks and p.name != "manifest.json")
    ok = bool(checks) and all(c["sha256_ok"] for c in checks.values())
    return {"manifest": manifest, "files": checks, "unlisted": unlisted, "ok": ok}
