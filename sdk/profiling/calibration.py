"""Build the shipped phone profiles from ``shared/data`` only, and measure their errors honestly.

    python -m edgetailor.profiling.recipes --data ../shared/data --out device_profiles

Three ways a profile learns a device, by how much data the device has:

* ``pixel1`` and ``note10`` are fitted: the per-block lookup tables go in the profile's table
  and, with the published whole-model latencies, into a non-negative least-squares fit of the
  op-feature coefficients. Errors: in-sample, leave-one-model-out, and leave-one-group-out
  (a whole family or table file held out at a time).
* Devices with a handful of published rows (Galaxy S8, iPhone X) are *transferred*: the
  Pixel 1 coefficients times one device factor fitted on those rows (geometric mean of the
  ratios). With two or more rows the factor is also checked leave-one-out; with one row no
  out-of-sample figure exists and the profile says so.
* Work types a device's data never exercises (e.g. hard-swish on Pixel 1) take the donor
  profile's coefficient scaled by the devices' median ratio on shared features; the profile's
  provenance lists each such borrowed coefficient.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgetailor.profiling import calibration_data as data
from edgetailor.latency.cost import FEATURES, fit, layer_features, model_features
from edgetailor.latency.profiles import SCHEMA

VERSION = "1.1.0"  # 1.1: joint calibration, no lookup-table overrides
MODEL_WEIGHT = 3.0  # a whole-model row counts as much as three block rows in the fit


def features(sample: data.Sample) -> np.ndarray:
    if sample.kind == "model":
        return model_features(list(sample.layers))
    return np.sum([layer_features(layer) for layer in sample.layers], axis=0)


def error_summary(predicted: np.ndarray, measured: np.ndarray) -> dict:
    pct = 100 * (predicted / measured - 1)
    return {"n": int(len(pct)), "mape_pct": round(float(np.mean(np.abs(pct))), 2),
            "within_10pct": round(float(np.mean(np.abs(pct) <= 10)), 3),
            "max_abs_pct": round(float(np.max(np.abs(pct))), 2)}


@dataclass
class Recipe:
    """What a profile is calibrated from."""

    name: str
    aliases: list[str]
    device: str
    runtime: str
    setting: str
    blocks: list[data.Sample] = field(default_factory=list)
    models: list[data.Sample] = field(default_factory=list)
    holdout: list[data.Sample] = field(default_factory=list)  # checked, never fitted
    provenance: list[dict] = field(default_factory=list)


def _fit_samples(samples: list[data.Sample]) -> np.ndarray:
    x = np.array([features(s) for s in samples])
    y = np.array([s.latency_ms for s in samples])
    w = np.array([MODEL_WEIGHT if s.kind == "model" else 1.0 for s in samples])
    return fit(x, y, w)


def _predict(sample: data.Sample, coefficients: np.ndarray, table: dict[str, float]) -> float:
    from edgetailor.latency.cost import predict_layers

    if sample.kind == "model":
        return predict_layers(list(sample.layers), coefficients, table).total_ms
    return float(features(sample) @ coefficients)


def _borrow(coefficients: np.ndarray, support: np.ndarray, donor: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Fill coefficients of unsupported features from a donor, scaled by the devices' ratio."""
    shared = support & (coefficients > 0) & (donor > 0)
    ratio = float(np.median(coefficients[shared] / donor[shared])) if shared.any() else 1.0
    filled = coefficients.copy()
    borrowed = []
    for i, name in enumerate(FEATURES):
        if not support[i] and donor[i] > 0:
            filled[i] = donor[i] * ratio
            borrowed.append(name)
    return filled, borrowed


def fitted_profile(recipe: Recipe, donor: dict | None = None) -> dict:
    """Fit on the recipe's blocks and models; report in-sample and out-of-sample errors."""
    samples = recipe.blocks + recipe.models
    x = np.array([features(s) for s in samples])
    support = np.abs(x).sum(axis=0) > 0
    coefficients = _fit_samples(samples)
    borrowed: list[str] = []
    if donor is not None:
        coefficients, borrowed = _borrow(coefficients, support, np.asarray(donor["coefficients"]))
    table = {s.table_key: round(s.latency_ms, 4) for s in recipe.blocks if s.table_key}
    rows, error = [], {}
    models = recipe.models
    if models:
        measured = np.array([s.latency_ms for s in models])
        in_sample = np.array([_predict(s, coefficients, table) for s in models])
        loo = []
        for i, sample in enumerate(models):
            rest = recipe.blocks + models[:i] + models[i + 1:]
            loo.append(_predict(sample, _fit_samples(rest), table))
        loo = np.array(loo)
        error["models_in_sample"] = error_summary(in_sample, measured)
        error["models_leave_one_out"] = error_summary(loo, measured)
        error["models_leave_one_group_out"] = _group_out(recipe, table)
        for s, p, q in zip(models, in_sample, loo):
            rows.append({"name": s.name, "kind": "model", "group": s.group, "measured_ms": s.latency_ms,
                         "predicted_ms": round(float(p), 2), "out_of_sample_ms": round(float(q), 2),
                         "source": s.source})
        expected = error["models_leave_one_group_out"]["mape_pct"]
    else:
        expected = None
    block_measured = np.array([s.latency_ms for s in recipe.blocks])
    block_pred = np.array([float(features(s) @ coefficients) for s in recipe.blocks])
    error["blocks_model_in_sample"] = error_summary(block_pred, block_measured)
    groups = sorted({s.group for s in recipe.blocks})
    if not models and len(groups) > 1:
        error["blocks_leave_one_group_out"] = _block_group_out(recipe)
        expected = error["blocks_leave_one_group_out"]["mape_pct"]
    for name in ("models_leave_one_out", "models_leave_one_group_out", "blocks_leave_one_group_out"):
        if name in error:
            error[name]["what"] = _WHAT[name]
    holdout = _holdout(recipe, coefficients, table)
    if holdout:
        error["holdout"] = holdout["error"]
        rows += holdout["rows"]
    provenance = list(recipe.provenance)
    if borrowed:
        provenance.append({"borrowed_coefficients": borrowed, "from": donor["name"],
                           "why": "no calibration row of this device exercises these work types"})
    return _document(recipe, coefficients, table, error, expected, provenance, rows)


_WHAT = {
    "models_leave_one_out": "each published model refitted without itself",
    "models_leave_one_group_out": "each model family refitted without any of its rows",
    "blocks_leave_one_group_out": "each lookup-table file predicted from a fit on the others",
}


def _group_out(recipe: Recipe, table: dict[str, float]) -> dict:
    predicted, measured = [], []
    for group in sorted({s.group for s in recipe.models}):
        rest = recipe.blocks + [s for s in recipe.models if s.group != group]
        coefficients = _fit_samples(rest)
        for sample in (s for s in recipe.models if s.group == group):
            predicted.append(_predict(sample, coefficients, table))
            measured.append(sample.latency_ms)
    return error_summary(np.array(predicted), np.array(measured))


def _block_group_out(recipe: Recipe) -> dict:
    predicted, measured = [], []
    for group in sorted({s.group for s in recipe.blocks}):
        coefficients = _fit_samples([s for s in recipe.blocks if s.group != group])
        for sample in (s for s in recipe.blocks if s.group == group):
            predicted.append(float(features(sample) @ coefficients))
            measured.append(sample.latency_ms)
    return error_summary(np.array(predicted), np.array(measured))


def _holdout(recipe: Recipe, coefficients: np.ndarray, table: dict[str, float]) -> dict:
    if not recipe.holdout:
        return {}
    measured = np.array([s.latency_ms for s in recipe.holdout])
    predicted = np.array([_predict(s, coefficients, table) for s in recipe.holdout])
    rows = [{"name": s.name, "kind": "holdout", "group": s.group, "measured_ms": s.latency_ms,
             "predicted_ms": round(float(p), 2), "source": s.source}
            for s, p in zip(recipe.holdout, predicted)]
    return {"error": {**error_summary(predicted, measured), "what": recipe.holdout[0].group}, "rows": rows}


def transferred_profile(recipe: Recipe, base: dict) -> dict:
    """The base profile's coefficients times one device factor fitted on the recipe's models."""
    base_coefficients = np.asarray(base["coefficients"])
    base_pred = np.array([_predict(s, base_coefficients, {}) for s in recipe.models])
    measured = np.array([s.latency_ms for s in recipe.models])
    log_ratio = np.log(measured / base_pred)
    factor = float(np.exp(log_ratio.mean()))
    error = {"models_in_sample": error_summary(base_pred * factor, measured)}
    rows = []
    loo = None
    if len(recipe.models) >= 2:
        loo = np.array([base_pred[i] * np.exp(np.delete(log_ratio, i).mean())
                        for i in range(len(measured))])
        error["models_leave_one_out"] = {**error_summary(loo, measured),
                                         "what": "device factor refitted without the row"}
        expected = error["models_leave_one_out"]["mape_pct"]
    else:
        expected = None
        error["note"] = ("one calibration row: the device factor is exact on it, so no "
                         "out-of-sample error exists; the base profile's out-of-sample error "
                         f"({base['expected_error_pct']}%) is a lower bound")
    for i, s in enumerate(recipe.models):
        rows.append({"name": s.name, "kind": "model", "group": s.group, "measured_ms": s.latency_ms,
                     "predicted_ms": round(float(base_pred[i] * factor), 2),
                     "out_of_sample_ms": None if loo is None else round(float(loo[i]), 2),
                     "source": s.source})
    provenance = recipe.provenance + [{"transferred_from": base["name"], "device_factor": round(factor, 4)}]
    return _document(recipe, base_coefficients * factor, {}, error, expected, provenance, rows)


def _document(recipe: Recipe, coefficients, table, error, expected, provenance, rows) -> dict:
    return {
        "schema": SCHEMA, "name": recipe.name, "aliases": recipe.aliases, "version": VERSION,
        "device": recipe.device, "runtime": recipe.runtime, "setting": recipe.setting, "unit": "ms",
        "provenance": provenance, "features": list(FEATURES),
        "coefficients": [round(float(c), 6) for c in coefficients],
        "table": dict(sorted(table.items())), "error": error,
        "expected_error_pct": None if expected is None else round(float(expected), 2),
        "calibration": rows,
    }
