"""Read what ``edgetailor-coreml-bench`` writes and turn it into edgetailor measurements.

The Swift tool (``ios_harness/Package.swift``) writes one JSON file, schema
``edgetailor.coreml-bench/1``::

    {"schema": "edgetailor.coreml-bench/1",
     "device": {"model": "iPhone10,3", "os": "Version 16.7.10 (Build 20H350)"},
     "coremltools_note": "coremltools 9.0 (from the models' metadata)",    # or null
     "results": [
       {"model": "mobilenet_v2_100.mlpackage", "compute_units": "cpuOnly",
        "warmup": 10, "runs": 50, "load_ms": 301.2,
        "latency_ms": {"mean": 17.8, "median": 17.7, "min": 17.1, "max": 19.9, "std": 0.5}},
       {"model": "broken.mlpackage", "compute_units": "all", "warmup": 10, "runs": 50,
        "error": "compile failed: ..."}]}

``device.model`` is the hardware id (``hw.machine`` on iOS, ``hw.model`` on a Mac);
``compute_units`` is one of ``cpuOnly``, ``cpuAndGPU``, ``all``; times are milliseconds
(``std`` is the sample standard deviation). An entry holds ``latency_ms`` and ``load_ms``, or
``error`` (and ``load_ms`` when the model loaded but could not predict). The checker in this
module is the schema: every field is required unless said otherwise, unknown fields are
errors, and each error names its field path (``results[2].latency_ms.mean``).

``load_coreml_bench(path)`` returns a checked ``CoreMLBench``; ``to_measurements(bench, ...)``
returns an ``edgetailor.measurements/1`` dict for one compute unit setting.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgetailor.errors import HarnessError

SCHEMA = "edgetailor.coreml-bench/1"
MEASUREMENTS_SCHEMA = "edgetailor.measurements/1"
COMPUTE_UNITS = ("cpuOnly", "cpuAndGPU", "all")
MODEL_SUFFIXES = (".mlpackage", ".mlmodel", ".mlmodelc")
LATENCY_FIELDS = ("mean", "median", "min", "max", "std")
# Stats are written rounded to 1e-4 ms; orderings are checked with this much slack.
_SLACK_MS = 1e-3

# Hardware ids (hw.machine) of the phones worth naming; other ids are kept as they are.
IPHONE_NAMES = {
    "iPhone8,1": "iPhone 6s", "iPhone8,2": "iPhone 6s Plus", "iPhone8,4": "iPhone SE",  # A9
    "iPhone9,1": "iPhone 7", "iPhone9,3": "iPhone 7",  # A10
    "iPhone9,2": "iPhone 7 Plus", "iPhone9,4": "iPhone 7 Plus",
    "iPhone10,1": "iPhone 8", "iPhone10,4": "iPhone 8",  # A11
    "iPhone10,2": "iPhone 8 Plus", "iPhone10,5": "iPhone 8 Plus",
    "iPhone10,3": "iPhone X", "iPhone10,6": "iPhone X",
    "iPhone11,2": "iPhone XS", "iPhone11,4": "iPhone XS Max", "iPhone11,6": "iPhone XS Max",
    "iPhone11,8": "iPhone XR",  # A12
    "iPhone12,1": "iPhone 11", "iPhone12,3": "iPhone 11 Pro", "iPhone12,5": "iPhone 11 Pro Max",
    "iPhone12,8": "iPhone SE (2nd generation)",  # A13
    "iPhone13,1": "iPhone 12 mini", "iPhone13,2": "iPhone 12", "iPhone13,3": "iPhone 12 Pro",
    "iPhone13,4": "iPhone 12 Pro Max",  # A14
    "iPhone14,4": "iPhone 13 mini", "iPhone14,5": "iPhone 13", "iPhone14,2": "iPhone 13 Pro",
    "iPhone14,3": "iPhone 13 Pro Max", "iPhone14,6": "iPhone SE (3rd generation)",  # A15
    "iPhone14,7": "iPhone 14", "iPhone14,8": "iPhone 14 Plus",  # A15
    "iPhone15,2": "iPhone 14 Pro", "iPhone15,3": "iPhone 14 Pro Max",  # A16
    "iPhone15,4": "iPhone 15", "iPhone15,5": "iPhone 15 Plus",  # A16
    "iPhone16,1": "iPhone 15 Pro", "iPhone16,2": "iPhone 15 Pro Max",  # A17 Pro
}


class BenchFormatError(HarnessError):
    """A bench file that breaks the schema; ``errors`` lists every problem with its field path."""

    def __init__(self, source: str, errors: list[str]):
        self.source = source
        self.errors = list(errors)
        if len(self.errors) == 1:
            message = f"{source}: {self.errors[0]}"
        else:
            message = f"{source}: {len(self.errors)} problems\n" + "\n".join(
                f"  {error}" for error in self.errors)
        super().__init__(message)


@dataclass(frozen=True)
class Latency:
    """Summary of the timed predictions, milliseconds."""
    mean_ms: float
    median_ms: float
    min_ms: float
    max_ms: float
    std_ms: float


@dataclass(frozen=True)
class BenchResult:
    """One model on one compute unit setting: a latency, or the error that stopped it."""
    model: str
    compute_units: str
    warmup: int
    runs: int
    latency: Latency | None
    load_ms: float | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class CoreMLBench:
    """A checked ``edgetailor.coreml-bench/1`` file."""
    device_model: str
    os: str
    coremltools_note: str | None
    results: tuple[BenchResult, ...]

    @property
    def device_name(self) -> str:
        return device_name(self.device_model)


def device_name(hardware_id: str) -> str:
    """``iPhone10,3`` -> ``iPhone X``; an id not in ``IPHONE_NAMES`` is returned as it is."""
    return IPHONE_NAMES.get(hardware_id, hardware_id)


def load_coreml_bench(path: str | Path) -> CoreMLBench:
    """Read and check a bench file; raises ``BenchFormatError`` listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BenchFormatError(str(path), [f"not UTF-8 text: {exc.reason} at byte {exc.start}"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchFormatError(str(path), [
            f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]) from None
    return check_coreml_bench(data, source=str(path))


def check_coreml_bench(data: Any, source: str = "bench") -> CoreMLBench:
    """Check parsed JSON against the schema (see the module docstring) and type it."""
    errors: list[str] = []
    if not isinstance(data, dict):
        raise BenchFormatError(source, [f"the file must hold a JSON object (got {_kind(data)})"])
    _fields(data, "", {"schema", "device", "coremltools_note", "results"}, set(), errors)
    if "schema" in data and data["schema"] != SCHEMA:
        errors.append(f"schema must be {SCHEMA!r} (got {_show(data['schema'])})")
    device = data.get("device")
    device_model = device_os = None
    if isinstance(device, dict):
        _fields(device, "device", {"model", "os"}, set(), errors)
        device_model = _text(device, "model", "device", errors)
        device_os = _text(device, "os", "device", errors)
    elif "device" in data:
        errors.append(f"device must be an object (got {_kind(device)})")
    note = data.get("coremltools_note")
    if note is not None and not isinstance(note, str):
        errors.append(f"coremltools_note must be a string or null (got {_kind(note)})")
    results: list[BenchResult] = []
    raw_results = data.get("results")
    if isinstance(raw_results, list) and raw_results:
        first_at: dict[tuple[str, str], int] = {}
        for index, entry in enumerate(raw_results):
            result = _result(entry, f"results[{index}]", errors)
            if result is None:
                continue
            key = (result.model, result.compute_units)
            if key in first_at:
                errors.append(f"results[{index}] repeats model {result.model!r} on "
                              f"{result.compute_units} (first at results[{first_at[key]}])")
            first_at.setdefault(key, index)
            results.append(result)
    elif "results" in data:
        errors.append(f"results must be a non-empty list (got {_show(raw_results)})")
    if errors:
        raise BenchFormatError(source, errors)
    return CoreMLBench(device_model, device_os, note, tuple(results))


def to_measurements(bench: CoreMLBench, arch_by_model: dict[str, str] | None = None,
                    compute_units: str = "cpuOnly") -> dict:
    """An ``edgetailor.measurements/1`` dict: one measurement per model timed on
    ``compute_units`` (latency_ms is the mean), in file order.

    ``arch_by_model`` maps a model's file name (``m.mlpackage``) or stem (``m``) to its
    architecture (a zoo name or spec string); other models get ``arch: null``. Models that
    failed are left out and listed under ``skipped`` with their error. Raises ``HarnessError``
    when the file has no result for ``compute_units``, none succeeded, or ``arch_by_model``
    names a model the file does not have.
    """
    if compute_units not in COMPUTE_UNITS:
        raise HarnessError(f"compute_units must be one of {', '.join(COMPUTE_UNITS)} "
                         f"(got {compute_units!r})")
    chosen = [r for r in bench.results if r.compute_units == compute_units]
    if not chosen:
        present = sorted({r.compute_units for r in bench.results}, key=COMPUTE_UNITS.index)
        raise HarnessError(f"no results on {compute_units} in this file (it has: {', '.join(present)})")
    arch_by_model = dict(arch_by_model or {})
    names = {r.model for r in bench.results} | {Path(r.model).stem for r in bench.results}
    unknown = sorted(set(arch_by_model) - names)
    if unknown:
        raise HarnessError(f"arch_by_model names models not in the file: {', '.join(unknown)}")
    measurements, skipped = [], []
    for result in chosen:
        if not result.ok:
            skipped.append({"model": result.model, "error": result.error})
            continue
        arch = arch_by_model.get(result.model, arch_by_model.get(Path(result.model).stem))
        latency = result.latency
        measurements.append({
            "model": result.model, "arch": arch, "latency_ms": latency.mean_ms,
            "std_ms": latency.std_ms, "min_ms": latency.min_ms, "max_ms": latency.max_ms,
            "count": result.runs,
        })
    if not measurements:
        raise HarnessError(f"every model failed on {compute_units}: " + "; ".join(
            f"{s['model']}: {s['error']}" for s in skipped))
    return {
        "schema": MEASUREMENTS_SCHEMA,
        "source": "ios-harness",
        "device": {"name": bench.device_name, "os": bench.os},
        "runtime": {"name": "coreml", "compute_units": compute_units},
        "measurements": measurements,
        "skipped": skipped,
    }


def _result(entry: Any, path: str, errors: list[str]) -> BenchResult | None:
    """One ``results[i]`` entry, or None (with errors recorded) when it is broken."""
    if not isinstance(entry, dict):
        errors.append(f"{path} must be an object (got {_kind(entry)})")
        return None
    count = len(errors)
    failed = "error" in entry
    if failed:
        _fields(entry, path, {"model", "compute_units", "warmup", "runs", "error"},
                {"load_ms", "latency_ms"}, errors)
        if "latency_ms" in entry:
            errors.append(f"{path} has both error and latency_ms")
    else:
        _fields(entry, path, {"model", "compute_units", "warmup", "runs", "latency_ms", "load_ms"},
                set(), errors)
    model = _text(entry, "model", path, errors)
    if model is not None and not model.endswith(MODEL_SUFFIXES):
        errors.append(f"{path}.model must be a file name ending in {', '.join(MODEL_SUFFIXES)} "
                      f"(got {_show(model)})")
    units = entry.get("compute_units")
    if "compute_units" in entry and units not in COMPUTE_UNITS:
        errors.append(f"{path}.compute_units must be one of {', '.join(COMPUTE_UNITS)} "
                      f"(got {_show(units)})")
    warmup = _integer(entry, "warmup", path, 0, errors)
    runs = _integer(entry, "runs", path, 1, errors)
    load_ms = _number(entry, "load_ms", path, errors) if "load_ms" in entry else None
    error = _text(entry, "error", path, errors) if failed else None
    latency = None
    if not failed and "latency_ms" in entry:
        latency = _latency(entry["latency_ms"], f"{path}.latency_ms", errors)
    if len(errors) > count:
        return None
    return BenchResult(model, units, warmup, runs, latency, load_ms, error)


def _latency(value: Any, path: str, errors: list[str]) -> Latency | None:
    if not isinstance(value, dict):
        errors.append(f"{path} must be an object (got {_kind(value)})")
        return None
    count = len(errors)
    _fields(value, path, set(LATENCY_FIELDS), set(), errors)
    stats = {name: _number(value, name, path, errors, zero_ok=(name == "std"))
             for name in LATENCY_FIELDS if name in value}
    if len(errors) > count:
        return None
    low, high = stats["min"], stats["max"]
    for name in ("mean", "median"):
        if not low - _SLACK_MS <= stats[name] <= high + _SLACK_MS:
            errors.append(f"{path}.{name} must lie between min and max "
                          f"(got {stats[name]}, min {low}, max {high})")
    if stats["std"] > high - low + _SLACK_MS:
        errors.append(f"{path}.std cannot exceed max - min (got {stats['std']}, "
                      f"max - min {high - low:.4g})")
    if len(errors) > count:
        return None
    return Latency(stats["mean"], stats["median"], low, high, stats["std"])


def _fields(obj: dict, path: str, required: set[str], optional: set[str],
            errors: list[str]) -> None:
    prefix = f"{path}." if path else ""
    for name in sorted(required - obj.keys()):
        errors.append(f"{prefix}{name} is missing")
    for name in sorted(obj.keys() - required - optional):
        errors.append(f"{prefix}{name} is not a field of {SCHEMA}")


def _text(obj: dict, name: str, path: str, errors: list[str]) -> str | None:
    if name not in obj:
        return None
    value = obj[name]
    if not isinstance(value, str) or not value.strip():
        errors.append(f"{_join(path, name)} must be a non-empty string (got {_show(value)})")
        return None
    return value


def _integer(obj: dict, name: str, path: str, minimum: int, errors: list[str]) -> int | None:
    if name not in obj:
        return None
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        errors.append(f"{_join(path, name)} must be an integer >= {minimum} (got {_show(value)})")
        return None
    return value


def _number(obj: dict, name: str, path: str, errors: list[str],
            zero_ok: bool = False) -> float | None:
    value = obj[name]
    good = (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and (value >= 0 if zero_ok else value > 0))
    if not good:
        what = "a non-negative number" if zero_ok else "a positive number"
        errors.append(f"{_join(path, name)} must be {what} (got {_show(value)})")
        return None
    return float(value)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
