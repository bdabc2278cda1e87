"""The measurement JSON (``edgetailor.measurements/1``) that ``profile import`` reads.

All times in milliseconds, memory in MB; optional keys are left out when the capture did
not hold them, never written as zero.
"""
from __future__ import annotations

from dataclasses import dataclass

from .results import BenchmarkResult

SCHEMA = "edgetailor.measurements/1"
SOURCE = "android-bench"
DELEGATES = ("xnnpack", "cpu", "gpu", "nnapi")


@dataclass(frozen=True)
class Device:
    """The phone: ``name`` from ro.product.model, ``os`` e.g. "Android 10"."""

    name: str
    serial: str | None = None
    os: str | None = None


def _ms(value_us: float | None) -> float | None:
    return None if value_us is None else round(value_us / 1000.0, 6)


def _put(target: dict, key: str, value) -> None:
    if value is not None:
        target[key] = value


def measurement(result: BenchmarkResult, model: str, arch: str | None = None) -> dict:
    """One entry of ``measurements``: latency is the mean of the regular runs."""
    entry = {"model": model, "arch": arch, "latency_ms": _ms(result.inference_avg_us)}
    stats = result.inference
    if stats is not None and stats.count > 0:
        _put(entry, "std_ms", _ms(stats.std_us))
        _put(entry, "min_ms", _ms(stats.min_us))
        _put(entry, "max_ms", _ms(stats.max_us))
        entry["count"] = stats.count
    _put(entry, "init_ms", _ms(result.init_us))
    _put(entry, "first_ms", _ms(result.first_us))
    _put(entry, "warmup_ms", _ms(result.warmup_avg_us))
    _put(entry, "memory_mb", result.memory_overall_mb)
    if result.ops:
        # Primary graph only: subgraph and delegate-internal rows are already inside the
        # time of the primary op that calls them (WHILE, the delegate kernel).
        entry["ops"] = [{"type": op.node_type, "name": op.name, "first_ms": op.first_ms,
                         "avg_ms": op.avg_ms, "percent": op.percent, "calls": op.calls}
                        for op in result.ops]
    return entry


def to_measurements(result: BenchmarkResult, *, model: str, device: Device,
                    arch: str | None = None, threads: int | None = None,
                    cpu_mask: str | None = None) -> dict:
    """The whole document for one run; ``threads`` defaults to what the capture logged."""
    device_json = {"name": device.name}
    _put(device_json, "serial", device.serial)
    _put(device_json, "os", device.os)
    delegate = result.delegate if result.delegate in DELEGATES else None
    runtime = {"name": "tflite", "version": None,
               "threads": threads if threads is not None else result.num_threads,
               "delegate": delegate}
    _put(runtime, "cpu_mask", cpu_mask)
    return {"schema": SCHEMA, "source": SOURCE, "device": device_json, "runtime": runtime,
            "measurements": [measurement(result, model, arch)]}

