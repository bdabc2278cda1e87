"""Harness results (``edgetailor.measurements/1`` JSON) -> a device profile.

Rows whose ``arch`` names a zoo model or a spec become whole-model calibration samples. With
fewer than ``FIT_MIN_ROWS`` rows the base profile is transferred (scaled by one device factor,
checked leave-one-out); with more, the op-feature coefficients are fitted on the rows
themselves and checked leave-one-out.
"""
from __future__ import annotations

import json
from pathlib import Path

from edgetailor.profiling import calibration_data as data
from edgetailor.profiling.calibration import Recipe, fitted_profile, transferred_profile
from edgetailor.arch.layers import walk
from edgetailor.latency.profiles import DeviceProfile
from edgetailor.arch.zoo import resolve
from edgetailor.errors import ProfileError

SCHEMA = "edgetailor.measurements/1"
FIT_MIN_ROWS = 15


def load_measurements(path: Path) -> dict:
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ProfileError(f"{path}: not an edgetailor measurements file (schema {SCHEMA!r})")
    rows = document.get("measurements")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ProfileError(f"{path}: 'measurements' must be a list of objects")
    for i, row in enumerate(rows):
        latency = row.get("latency_ms")
        if not isinstance(latency, (int, float)) or latency <= 0:
            raise ProfileError(f"{path}: measurements[{i}].latency_ms must be a positive number")
    return document


def _op_profile(rows: list[dict], name: str, devices: set, runtime: dict, paths) -> dict:
    """Rows that each time one op (android-bench --blocks): the host-profile recipe."""
    from edgetailor.profiling.host import build_profile
    from edgetailor.latency.cost import op_from_key

    measured = {row["op"]: float(row["latency_ms"]) for row in rows}
    ops = [op_from_key(key) for key in sorted(measured)]
    return build_profile(
        ops, measured, 0.0, name=name, aliases=[name], device=", ".join(sorted(devices)),
        runtime=runtime.get("name", "unknown"),
        setting=", ".join(f"{k}={v}" for k, v in sorted(runtime.items()) if v is not None),
        provenance=[{"source": str(p), "use": "op table + fit"} for p in paths])


def profile_from_measurements(paths: list[Path], base: DeviceProfile, name: str) -> dict:
    samples, devices, runtimes, op_rows = [], set(), set(), []
    for path in paths:
        document = load_measurements(path)
        devices.add(document.get("device", {}).get("name", "unknown device"))
        runtime = document.get("runtime", {})
        runtimes.add(json.dumps(runtime, sort_keys=True))
        for row in document["measurements"]:
            if row.get("op"):
                op_rows.append(row)
            if not row.get("arch"):
                continue
            spec = resolve(row["arch"]).spec
            samples.append(data.Sample(f"{row['model']} ({row['arch']})", "model",
                                       tuple(walk(spec, 1000)), float(row["latency_ms"]),
                                       str(path), row["arch"]))
    if len(runtimes) > 1:
        raise ProfileError(f"measurements mix runtime settings {sorted(runtimes)}; "
                         "a profile is calibrated to one setting")
    if op_rows:
        return _op_profile(op_rows, name, devices, json.loads(next(iter(runtimes))), paths)
    if not samples:
        raise ProfileError("no measurement names its architecture ('arch'); "
                         "run the harness with --arch so rows can be calibrated")
    runtime = json.loads(runtimes.pop())
    recipe = Recipe(name=name, aliases=[name], device=", ".join(sorted(devices)),
                    runtime=runtime.get("name", "unknown"),
                    setting=", ".join(f"{k}={v}" for k, v in sorted(runtime.items()) if v is not None),
                    models=samples,
                    provenance=[{"source": str(p), "use": "import"} for p in paths])
    if len(samples) >= FIT_MIN_ROWS:
        return fitted_profile(recipe)
    return transferred_profile(recipe, {"name": base.name, "coefficients": list(base.coefficients),
                                        "expected_error_pct": base.expected_error_pct})
