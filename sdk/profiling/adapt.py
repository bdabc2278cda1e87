"""A new device from few kernel measurements (LitePred's idea): keep a base kernel predictor's
trees (each kernel type's shape) and refit each type's linear baseline on the new device.

How each kernel type is fitted (a factor, a refitted baseline, or that plus correction trees,
chosen by cross-validation; a global factor for types measured too little) is
``edgetailor.profiling.adapt_fit``. The per-inference constant is the new device's empty-model
time. Whole models in the measurements (optional) fix one more factor on every kernel: what a
kernel costs inside a network over what it costs alone.

The measurements file is the host kernel journal (``OUT.kernels.jsonl``: one JSON object a line,
``key``, ``ms``, ``threads``) whose lines also carry the kernel's ``type`` and ``features``
(``KERNEL_FEATURES``), as ``edgetailor.profiling.adapt_measure`` writes them, so that it is
self-describing; a ``precision`` field says int8 (absent: float32); an ``empty-model`` line gives
the per-inference constant; ``input-conversion:<px>`` lines (int8, with ``elements``) time the
QUANTIZE of a uint8 image an int8 model starts with; a line with a ``spec`` (ArchSpec string) is a
whole model timed end to end. A journal of ``profile measure --kernels`` lacks features and is refused by name.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgetailor import _io
from edgetailor.arch.spec import decode
from edgetailor.errors import ProfileError
from edgetailor.latency.cost import FEATURES
from edgetailor.latency.kernel_predictor import KERNEL_FEATURES, KernelPredictor
from edgetailor.latency.profiles import SCHEMA, DeviceProfile
from edgetailor.profiling import adapt_fit
from edgetailor.profiling.timing_journal import EMPTY_MODEL_KEY

INPUT_KEY = "input-conversion:"  # the journal's lines of an int8 model's input QUANTIZE: this + the size in px

FLOOR_MS = 2e-4  # a kernel costs at least 0.2 us once the constant is taken off (kernels_fit.FLOOR_MS)
MIN_KERNELS = 10  # fewer cannot tell a device's per-type factors from noise
PRECISIONS = ("float32", "int8")


@dataclass(frozen=True)
class Measurements:
    """A new device's timings: per kernel key its type, features and best-of ms (gross, the
    per-inference constant included); the empty model's ms; whole models (name, spec, ms)."""

    setting: tuple[int, str]  # (threads, precision)
    kernels: dict[str, tuple[str, np.ndarray, float]]
    empty_ms: float | None
    models: list[tuple[str, str, float]]
    inputs: tuple[tuple[int, float], ...] = ()  # an int8 model's input conversion: (elements, ms) at a few sizes


def _entry(line: bytes) -> dict | None:
    """A journal line as a dict when it is a measurement, else None."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    ok = (isinstance(entry, dict) and isinstance(entry.get("key"), str)
          and isinstance(entry.get("ms"), (int, float)) and not isinstance(entry.get("ms"), bool)
          and entry["ms"] >= 0 and isinstance(entry.get("threads"), int)
          and entry.get("precision", "float32") in PRECISIONS)
    return entry if ok else None


def read(path: Path, repair: bool = False, say: Callable[[str], None] | None = None) -> Measurements:
    """The measurements in ``path``. With ``repair`` (a measuring run resuming), a cut-off last
    line (a killed run) is removed from the file and reported to ``say``; otherwise it, like any
    bad line, is a ``ProfileError`` naming its number. One file holds one setting."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ProfileError(f"measurements file not found: {path}") from None
    except OSError as exc:
        raise ProfileError(f"cannot read measurements {path}: {exc.strerror or exc}") from None
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    kernels, models, inputs, settings, empty_ms = {}, [], [], set(), None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        entry = _entry(line)
        last = number == len(lines)
        if (entry is None or (last and not data.endswith(b"\n"))) and repair and last:
            with _io.writing(path):
                path.write_bytes(data[: len(data) - len(line) - data.endswith(b"\n")])
            if say:
                say(f"{path}: dropped its cut-off last line {number} (an interrupted run)")
            break
        if entry is None:
            raise ProfileError(f"{path} line {number} is not a measurement (key, ms >= 0, threads): "
                               "fix or delete that line")
        settings.add((entry["threads"], entry.get("precision", "float32")))
        if entry["key"] == EMPTY_MODEL_KEY:
            empty_ms = float(entry["ms"])
        elif entry["key"].startswith(INPUT_KEY) and isinstance(entry.get("elements"), int):
            inputs.append((entry["elements"], float(entry["ms"])))
        elif "spec" in entry:
            models.append((entry["key"], str(entry["spec"]), float(entry["ms"])))
        else:
            features = entry.get("features")
            if not isinstance(entry.get("type"), str) or not isinstance(features, list) \
                    or len(features) != len(KERNEL_FEATURES):
                raise ProfileError(f"{path} line {number}: kernel {entry['key']!r} has no type and "
                                   f"{len(KERNEL_FEATURES)} features ({', '.join(KERNEL_FEATURES)}); measure "
                                   "with `edgetailor profile adapt --measure`")
            kernels[entry["key"]] = (entry["type"], np.asarray(features, dtype=float), float(entry["ms"]))
    if not settings and not repair:
        raise ProfileError(f"{path} holds no measurements")
    if len(settings) > 1:
        raise ProfileError(f"{path} mixes settings {sorted(settings)} (threads, precision): one device "
                           "setting per measurements file")
    setting = settings.pop() if settings else (1, "float32")
    return Measurements(setting, kernels, empty_ms, models, tuple(inputs))


def _input_ms(measured: Measurements, spec_text: str | None = None) -> float:
    """The input conversion's ms per million elements (least squares through zero on the timings
    less the per-inference constant; 0 without timings), or its ms for the spec ``spec_text``."""
    if not measured.inputs:
        return 0.0
    elements = np.array([e for e, _ in measured.inputs], float) / 1e6
    net = np.array([max(ms - measured.empty_ms, 0.0) for _, ms in measured.inputs])
    per_melement = float(elements @ net / (elements @ elements))
    if spec_text is None:
        return per_melement
    return per_melement * 3 * decode(spec_text).resolution ** 2 / 1e6


def adapt(base: KernelPredictor, measured: Measurements) -> tuple[KernelPredictor, dict]:
    """The base predictor fitted to the measured device (``adapt_fit``), and a report per kernel
    type (measurements, how its baseline was set, cross-validated and in-sample errors)."""
    if measured.empty_ms is None:
        raise ProfileError(f"the measurements hold no {EMPTY_MODEL_KEY!r} line (the per-inference "
                           "constant); measure with `edgetailor profile adapt --measure`")
    if len(measured.kernels) < MIN_KERNELS:
        raise ProfileError(f"too few kernel measurements: {len(measured.kernels)} (at least {MIN_KERNELS})")
    unknown = sorted({kind for kind, _, _ in measured.kernels.values()} - set(base.ensembles))
    if unknown:
        raise ProfileError(f"the measurements hold kernel type(s) the base predictor does not know: "
                           f"{', '.join(unknown)} (it knows {', '.join(sorted(base.ensembles))})")
    by_type: dict[str, tuple[list, list]] = {}
    for kind, features, ms in measured.kernels.values():
        rows, times = by_type.setdefault(kind, ([], []))
        rows.append(features)
        times.append(max(ms - measured.empty_ms, FLOOR_MS))  # what the kernel adds inside a model
    groups = {kind: (np.array(rows), np.array(times)) for kind, (rows, times) in by_type.items()}
    adapted, report = adapt_fit.adapt_kernels(base, groups, measured.empty_ms)
    # whole networks are chained kernels, with no input conversion; converted models ("model:") have one
    adapted, models = adapt_fit.whole_models(adapted, [
        (key, spec, ms - _input_ms(measured, spec) if key.startswith("model:") else ms)
        for key, spec, ms in measured.models])
    adapted = dataclasses.replace(adapted, input_ms_per_melement=_input_ms(measured))
    threads, precision = measured.setting
    meta = {**base.meta, "adapted": {"threads": threads, "precision": precision, "kernels_measured":
                                     len(measured.kernels), "global_factor": report["global_factor"],
                                     "input_ms_per_melement": round(adapted.input_ms_per_melement, 5), **models}}
    return dataclasses.replace(adapted, meta=meta), {**report, **models}


def document(base: DeviceProfile, adapted: KernelPredictor, report: dict, name: str,
             measurements: Path, npz_name: str, npz_sha256: str) -> dict:
    """The adapted device's profile JSON. Layers the kernel predictor cannot price fall back to
    the base's op tables and fitted model times the global factor (they were measured in the
    base's setting, not this one)."""
    threads, precision = adapted.meta["adapted"]["threads"], adapted.meta["adapted"]["precision"]
    factor = report["global_factor"]
    models = report.get("models_loo_mape_pct")  # whole models, each priced without having been fitted on
    return {
        "schema": SCHEMA, "name": name, "aliases": [], "version": "1.0.0",
        "device": f"adapted from {base.name} ({base.device})", "runtime": base.runtime,
        "setting": f"{threads} thread(s), {precision}: kernels measured on the new device, "
                   f"the rest of {base.name}'s setting ({base.setting})",
        "unit": "ms",
        "provenance": [*base.provenance, {
            "source": "profile adapt", "base": base.name, "base_version": base.version,
            "measurements": measurements.name,
            "kernels_measured": sum(k["measured"] for k in report["types"].values()),
            "what": "base kernel predictor's trees kept, each type's baseline scaled or refitted (plus "
                    "correction trees where cross-validation chose them) on the new device's kernel timings; "
                    "in-network terms from its whole models when they help; op tables and fitted model = "
                    "base x global factor"}],
        "features": list(FEATURES),
        "coefficients": [float(c) * factor for c in base.coefficients],
        "table": {key: float(ms) * factor for key, ms in base.table.items()},
        "error": {"adapt": report},
        "expected_error_pct": models,
        "calibration": [],
        "kernel_predictor": {"file": npz_name, "sha256": npz_sha256,
                             "kernels_measured": adapted.meta["adapted"]["kernels_measured"],
                             "adapted_from": base.name},
    }


def write(base: DeviceProfile, measurements_path: Path, name: str, out_path: Path) -> dict:
    """Adapt ``base`` to the measurements and write the profile (``out_path``) and its kernel
    predictor (``<out>.kernels.npz``) atomically; returns the profile document. Nothing is
    written when anything fails."""
    if base.kernels is None:
        raise ProfileError(f"base profile {base.name} has no kernel predictor to adapt; build one with "
                           "`edgetailor profile measure --kernels`")
    measured = read(measurements_path)
    adapted, report = adapt(base.kernels, measured)
    data = adapted.to_npz_bytes()
    npz = out_path.with_name(out_path.name + ".kernels.npz")
    doc = document(base, adapted, report, name, measurements_path, npz.name, hashlib.sha256(data).hexdigest())
    previous = npz.read_bytes() if npz.exists() else None  # an older profile's predictor, kept on failure
    _io.write_bytes(npz, data)
    try:
        _io.write_json(out_path, doc)
    except BaseException:
        if previous is None:
            npz.unlink(missing_ok=True)
        else:
            _io.write_bytes(npz, previous)
        raise
    return doc
