"""Device profiles: named, versioned JSON data (schema-checked on load) that predict latency.

A profile holds a lookup table keyed by typed layer keys (``edgetailor.latency.cost.layer_key``),
fitted coefficients for everything else, and its own error figures. Shipped profiles live in
``edgetailor.device_profiles`` as package data; a profile file path works wherever a name does.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from edgetailor.latency import kernel_predictor
from edgetailor.latency.cost import FEATURES, Breakdown, predict_layers
from edgetailor.latency.kernel_predictor import KernelPredictor
from edgetailor.arch.layers import walk
from edgetailor.arch.spec import ArchSpec
from edgetailor.errors import ProfileError

SCHEMA = "edgetailor.device-profile/1"
_REQUIRED = {
    "schema": str, "name": str, "aliases": list, "version": str, "device": str, "runtime": str,
    "setting": str, "unit": str, "provenance": list, "features": list, "coefficients": list,
    "table": dict, "error": dict, "expected_error_pct": (float, int, type(None)),
    "calibration": list,
}


@dataclass(frozen=True, eq=False)
class DeviceProfile:
    """A device's latency model. Two profiles are equal when their name, version and content
    (``digest``: sha256 of the canonical JSON they were read from) are; hashable by the same."""

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
    digest: str = ""
    kernels: KernelPredictor | None = None  # a host profile's kernel-level model, when measured

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceProfile):
            return NotImplemented
        return (self.name, self.version, self.digest) == (other.name, other.version, other.digest)

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.digest))

    def predict(self, spec: ArchSpec, num_classes: int = 1000) -> Breakdown:
        """Latency of ``spec`` on this device in ms, with a per-layer breakdown."""
        return self.predict_layers(walk(spec, num_classes))

    def predict_layers(self, layers: list) -> Breakdown:
        """Latency of a layer list (a backbone with a task head, say) on this device in ms; with a
        kernel predictor, the sum of its kernels."""
        if self.kernels is not None:
            return kernel_predictor.predict_layers(self.kernels, layers, self.coefficients, self.table,
                                                   self.expected_error_pct)
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
    if len(coefficients) != len(FEATURES) or not all(_non_negative(c) for c in coefficients):
        raise ProfileError(f"{where}: field 'coefficients' needs {len(FEATURES)} finite "
                           f"non-negative numbers")
    for key, value in data["table"].items():
        if not _non_negative(value):
            raise ProfileError(f"{where}: table entry {key!r} must be a finite non-negative number "
                               f"of ms (got {value!r})")
    pct = data["expected_error_pct"]
    if pct is not None and not _non_negative(pct):
        raise ProfileError(f"{where}: field 'expected_error_pct' must be a finite non-negative "
                           f"number or null (got {pct!r})")


def _non_negative(value: Any) -> bool:
    """A finite number >= 0. Python's json reads NaN and Infinity, which would print "inf ms";
    a bool is an int to isinstance but no number of ms."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def from_dict(data: dict, where: str) -> DeviceProfile:
    validate(data, where)
    return DeviceProfile(
        name=data["name"], aliases=tuple(data["aliases"]), version=data["version"],
        device=data["device"], runtime=data["runtime"], setting=data["setting"],
        coefficients=np.asarray(data["coefficients"], dtype=float),
        table={k: float(v) for k, v in data["table"].items()}, error=data["error"],
        expected_error_pct=data["expected_error_pct"], provenance=tuple(data["provenance"]),
        calibration=tuple(data["calibration"]), path=where,
        digest=hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest(),
        kernels=_kernels(data, where))


def _kernels(data: dict, where: str) -> KernelPredictor | None:
    """The kernel predictor a profile names (``kernel_predictor.file``, beside the profile file),
    checked against its recorded sha256."""
    entry = data.get("kernel_predictor")
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) \
            or not isinstance(entry.get("sha256"), str):
        raise ProfileError(f"{where}: field 'kernel_predictor' needs a 'file' and its 'sha256'")
    path = Path(where).parent / entry["file"]
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        raise ProfileError(f"{where}: its kernel predictor {path} cannot be read; rebuild it with "
                           "`edgetailor profile measure --kernels`") from None
    if digest != entry["sha256"]:
        raise ProfileError(f"{where}: {path} is not the kernel predictor this profile was built with "
                           "(sha256 differs)")
    return kernel_predictor.load(path)


def load_file(path: str | Path) -> DeviceProfile:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProfileError(f"device profile file not found: {path}") from None
    except IsADirectoryError:
        raise ProfileError(f"{path} is a folder; give a device profile name or .json file") from None
    except OSError as exc:  # unreadable: permissions, a device file
        raise ProfileError(f"cannot read device profile {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
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
