"""Device profiles: named, versioned JSON data (schema-checked on load) that predict latency.

A profile holds a lookup table keyed by typed layer keys (``edgetailor.latency.layer_key``),
fitted coefficients for everything else, and its own error figures. Shipped profiles live in
``edgetailor.device_profiles`` as package data; a profile file path works wherever a name does.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from edgetailor.latency import FEATURES, Breakdown, predict_layers
from edgetailor.layers import walk
from edgetailor.spec import ArchSpec, SpecError

SCHEMA = "edgetailor.device-profile/1"
_REQUIRED = {
    "schema": str, "name": str, "aliases": list, "version": str, "device": str, "runtime": str,
    "setting": str, "unit": str, "provenance": list, "features": list, "coefficients": list,
    "table": dict, "error": dict, "expected_error_pct": (float, int, type(None)),
    "calibration": list,
}


class ProfileError(SpecError):
    """A profile name that does not exist or a profile file that fails the schema."""


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    aliases: tuple[str, ...]
    version: str
    device: str
    runtime: str
    setting: str
    coefficients: np.ndarray
    table: dict[str, float]
    error: dict[str, Any]
    expected_error_pct: float | None
    provenance: tuple[dict, ...]
    calibration: tuple[dict, ...]
    path: str = ""

    def predict(self, spec: ArchSpec, num_classes: int = 1000) -> Breakdown:
        """Latency of ``spec`` on this device in ms, with a per-layer breakdown."""
        return self.predict_layers(walk(spec, num_classes))

    def predict_layers(self, layers: list) -> Breakdown:
        """Latency of a layer list (a backbone with a task head, say) on this device in ms."""
        return predict_layers(layers, self.coefficients, self.table, self.expected_error_pct)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "aliases": list(self.aliases), "version": self.version,
                "device": self.device, "runtime": self.runtime, "setting": self.setting,
                "table_entries": len(self.table), "expected_error_pct": self.expected_error_pct,
                "error": self.error, "path": self.path}


def validate(data: Any, where: str) -> None:
    """Raise ProfileError naming the first field that does not fit the schema."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: a device profile must be a JSON object")
    for key, kind in _REQUIRED.items():
        if key not in data:
            raise ProfileError(f"{where}: missing field {key!r}")
        if not isinstance(data[key], kind):
            raise ProfileError(f"{where}: field {key!r} has the wrong type "
                               f"({type(data[key]).__name__})")
    if data["schema"] != SCHEMA:
        raise ProfileError(f"{where}: field 'schema' must be {SCHEMA!r} (got {data['schema']!r})")
    if data["unit"] != "ms":
        raise ProfileError(f"{where}: field 'unit' must be 'ms' (got {data['unit']!r})")
    if tuple(data["features"]) != FEATURES:
        raise ProfileError(f"{where}: field 'features' does not match this edgetailor's "
                           f"latency features {list(FEATURES)}")
    coefficients = data["coefficients"]
    if len(coefficients) != len(FEATURES) or not all(
            isinstance(c, (int, float)) and c >= 0 for c in coefficients):
        raise ProfileError(f"{where}: field 'coefficients' needs {len(FEATURES)} non-negative numbers")
    for key, value in data["table"].items():
        if not isinstance(value, (int, float)) or value < 0:
            raise ProfileError(f"{where}: table entry {key!r} must be a non-negative number of ms")


def from_dict(data: dict, where: str) -> DeviceProfile:
    validate(data, where)
    return DeviceProfile(
        name=data["name"], aliases=tuple(data["aliases"]), version=data["version"],
        device=data["device"], runtime=data["runtime"], setting=data["setting"],
        coefficients=np.asarray(data["coefficients"], dtype=float),
        table={k: float(v) for k, v in data["table"].items()}, error=data["error"],
        expected_error_pct=data["expected_error_pct"], provenance=tuple(data["provenance"]),
        calibration=tuple(data["calibration"]), path=where)


def load_file(path: str | Path) -> DeviceProfile:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProfileError(f"device profile file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{path}: not valid JSON ({exc})") from None
    return from_dict(data, str(path))


def shipped() -> list[DeviceProfile]:
    """The profiles shipped with edgetailor, by name."""
    folder = resources.files("edgetailor.device_profiles")
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            out.append(from_dict(json.loads(entry.read_text()), f"edgetailor.device_profiles/{entry.name}"))
    return out


def load(name_or_path: str) -> DeviceProfile:
    """A shipped profile by name or alias, or a profile file by path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".json" or candidate.exists():
        return load_file(candidate)
    profiles = shipped()
    for profile in profiles:
        if name_or_path == profile.name or name_or_path in profile.aliases:
            return profile
    known = [p.name for p in profiles] + [a for p in profiles for a in p.aliases]
    close = difflib.get_close_matches(name_or_path, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known devices: {', '.join(sorted(known))}"
    raise ProfileError(f"unknown device {name_or_path!r}{hint}")
