"""Phone profiles from the joint calibration, each checked against the per-device fit on the same folds.

The per-device fit is what shipped before the joint one: Pixel 1 by NNLS on its own block tables
and rows, every other phone as Pixel 1's coefficients times one device factor (geometric mean
of its rows' ratios). Both are priced model-only (no lookup table overrides the model), so a
profile's predictions are smooth in width and resolution.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetailor.latency.cost import FEATURES
from edgetailor.latency.profiles import SCHEMA
from edgetailor.profiling import joint, joint_data
from edgetailor.profiling.calibration import MODEL_WEIGHT, VERSION
from edgetailor.latency.cost import fit as nnls_fit


@dataclass(frozen=True)
class Phone:
    name: str
    aliases: tuple[str, ...]
    device: str        # joint_data.DEVICES key
    setting: str       # joint_data.setting_of value
    device_text: str
    setting_text: str


_PIXEL = {"pixel1": "Google Pixel 1 / Pixel XL (Snapdragon 821)", "pixel2": "Google Pixel 2 (Snapdragon 835)",
          "pixel3": "Google Pixel 3 (Snapdragon 845)", "pixel4": "Google Pixel 4 (Snapdragon 855)"}
_SETTING = {"tflite-fp32-1t": "TFLite float32, 1 thread on a big core",
            "tflite-int8-1t": "TFLite uint8 (quantized), 1 thread on a big core",
            "tflite-fp32-4t": "TFLite float32, 4 CPU threads",
            "tflite-int8-4t": "TFLite uint8/int8 (quantized), 4 CPU threads"}

# The profiles the joint fit makes for phones that had none (issue 14 item 3).
NEW_PHONES = tuple(
    Phone(f"{d}-tflite-{p}-{'1big' if t == '1t' else '4threads'}",
          (f"{d}{'' if p == 'fp32' else '_int8'}{'' if t == '1t' else '_4t'}",),
          d, f"tflite-{p}-{t}", _PIXEL[d], _SETTING[f"tflite-{p}-{t}"])
    for d, p, t in [("pixel2", "fp32", "1t"), ("pixel2", "int8", "1t"), ("pixel3", "fp32", "1t"),
                    ("pixel3", "int8", "1t"), ("pixel3", "fp32", "4t"), ("pixel3", "int8", "4t"),
                    ("pixel4", "fp32", "1t"), ("pixel4", "fp32", "4t"), ("pixel4", "int8", "4t")])
# Shipped profiles the joint fit may replace, with their (device, setting) in the joint data.
REPLACEABLE = {"pixel1-tflite-fp32-1big": ("pixel1", "tflite-fp32-1t"),
               "galaxy_s8-caffe2-nnpack-fp32": ("galaxy_s8", "caffe2-fp32"),
               "galaxy_s8-caffe2-qnnpack-int8": ("galaxy_s8", "caffe2-int8"),
               "iphone_x-coreml": ("a11", "coreml"),
               "iphone_x-tflite-fp32-1thread": ("a11", "tflite-fp32-1t")}


def design(root: Path) -> tuple[joint.Design, dict[str, int]]:
    rows, skipped = joint_data.published(root / "published_latency.csv")
    return joint.Design.of(rows + joint_data.lookup_tables(root)), skipped


def summary(predicted: np.ndarray, measured: np.ndarray) -> dict:
    """Error figures over the rows a fit could price; ``unpriced`` counts the others."""
    ok = ~np.isnan(predicted)
    pct = 100 * (predicted[ok] / measured[ok] - 1)
    if not ok.any():
        return {"n": 0, "unpriced": int(len(predicted))}
    return {"n": int(ok.sum()), "unpriced": int((~ok).sum()),
            "mape_pct": round(float(np.mean(np.abs(pct))), 2),
            "within_10pct": round(float(np.mean(np.abs(pct) <= 10)), 3),
            "max_abs_pct": round(float(np.max(np.abs(pct))), 2)}


class PerDevice:
    """The per-device fit (before the joint one), refitted on any training mask."""

    def __init__(self, d: joint.Design):
        self.d = d
        self.is_model = np.array([r.sample.kind == "model" for r in d.rows])
        self.pixel1 = (d.device == "pixel1") & (d.setting == "tflite-fp32-1t")

    def predict(self, train: np.ndarray, index: np.ndarray, device: str, setting: str) -> np.ndarray:
        d = self.d
        base_rows = train & self.pixel1
        weights = np.where(self.is_model[base_rows], MODEL_WEIGHT, 1.0)
        base = nnls_fit(d.x[base_rows], d.y[base_rows], weights)
        if (device, setting) == joint.REFERENCE:
            return d.x[index] @ base
        own = train & (d.device == device) & (d.setting == setting) & self.is_model
        if not own.any():
            return np.full(len(index), np.nan)
        factor = np.exp(np.mean(np.log(d.y[own] / (d.x[own] @ base))))
        return factor * (d.x[index] @ base)

    def held_out(self, fold: str, index: np.ndarray, device: str, setting: str) -> np.ndarray:
        d, out = self.d, np.full(len(index), np.nan)
        for k, i in enumerate(index):
            if fold == "leave_one_family_out":
                train = d.family != d.family[i]
            elif fold == "leave_one_family_out_this_device":
                train = (d.family != d.family[i]) | (d.device != d.device[i])
            else:
                train = d.source != d.source[i]
            out[k] = self.predict(train, np.array([i]), device, setting)[0]
        return out


@dataclass
class Evaluated:
    """A (device, setting)'s rows with the joint and per-device fits' figures."""

    device: str
    setting: str
    index: np.ndarray
    error: dict
    per_device: dict
    rows: list[dict]

    def better_than_per_device(self) -> bool | None:
        """Joint leave-one-family-out mean error below the per-device one on the same rows
        (None when either cannot price any of them)."""
        ours, theirs = self.error.get("leave_one_family_out", {}), self.per_device.get("leave_one_family_out", {})
        if not ours.get("n") or not theirs.get("n"):
            return None
        return ours["mape_pct"] < theirs["mape_pct"]


def evaluate(d: joint.Design, full: joint.JointFit, folds: joint.Folds, per_device: PerDevice,
             device: str, setting: str) -> Evaluated:
    index = np.where((d.device == device) & (d.setting == setting) & per_device.is_model)[0]
    measured = d.y[index]
    in_sample = full.predict(d, index, with_source=False)
    error, theirs, held = {}, {}, {}
    if len(index):
        error["models_in_sample"] = summary(in_sample, measured)
        theirs["models_in_sample"] = summary(per_device.predict(np.ones(len(d.y), bool), index, device, setting),
                                             measured)
        for fold, what in joint.FOLDS.items():
            held[fold], _ = folds.held_out(fold, index)
            error[fold] = {**summary(held[fold], measured), "what": what}
            theirs[fold] = summary(per_device.held_out(fold, index, device, setting), measured)
    rows = []
    for k, i in enumerate(index):
        out = held.get("leave_one_family_out", np.full(len(index), np.nan))[k]
        rows.append({"name": d.rows[i].sample.name, "kind": "model", "group": str(d.family[i]),
                     "measured_ms": float(d.y[i]), "predicted_ms": round(float(in_sample[k]), 2),
                     "out_of_sample_ms": None if np.isnan(out) else round(float(out), 2),
                     "source": d.rows[i].source})
    return Evaluated(device, setting, index, error, theirs, rows)


def expected_error(error: dict) -> float | None:
    """Leave-one-family-out mean abs error, else leave-one-source-out; None without either."""
    for fold in ("leave_one_family_out", "leave_one_source_out"):
        if error.get(fold, {}).get("n") and not error[fold]["unpriced"]:
            return error[fold]["mape_pct"]
    return None


def document(name: str, aliases, device_text: str, setting_text: str, runtime: str,
             full: joint.JointFit, evaluated: Evaluated, skipped: dict[str, int]) -> dict:
    error = {**evaluated.error, "per_device_fit_same_folds": evaluated.per_device}
    expected = expected_error(evaluated.error)
    if expected is None:
        error["note"] = ("no row of this device and setting can be held out and still priced: "
                         "the prediction is the device factor x the setting factor, unchecked")
    device, setting = evaluated.device, evaluated.setting
    provenance = [
        {"source": "shared/data/published_latency.csv + shared/data/luts/pixel1_*",
         "use": "joint fit of every device and setting (edgetailor.profiling.joint)",
         "rows_of_this_profile": len(evaluated.index), "rows_skipped": skipped},
        {"factors": {"device": round(full.factor(device, joint.REFERENCE[1]), 4),
                     "setting": round(full.factor(joint.REFERENCE[0], setting), 4)},
         "relative_to": f"{joint.REFERENCE[0]} {joint.REFERENCE[1]}",
         "own_cost_shape": f"{device}/{setting}" in full.own},
    ]
    return {
        "schema": SCHEMA, "name": name, "aliases": list(aliases), "version": VERSION,
        "device": device_text, "runtime": runtime, "setting": setting_text, "unit": "ms",
        "provenance": provenance, "features": list(FEATURES),
        "coefficients": [round(float(c), 6) for c in full.coefficients_of(device, setting)],
        "table": {}, "error": error,
        "expected_error_pct": None if expected is None else round(float(expected), 2),
        "calibration": evaluated.rows,
    }
