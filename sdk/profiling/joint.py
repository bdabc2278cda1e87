"""One calibration for every phone: latency = device factor x setting factor x source factor x cost.

    cost(model) = features(model) . coefficients        (the op model of ``latency.cost``)
    latency     = exp(a[device] + b[setting] + g[source]) * cost

All rows of ``shared/data`` that the zoo can walk (``joint_data``) are fitted at once. There is
one shared cost shape (12 non-negative coefficients), and each (device, setting) pair with rows
has its own shape shrunk toward the shared one (``SHRINK``): a pair with few rows keeps the shared
shape, so Pixel 2/3 rows of MobileNetV3 price hard-swish for Pixel 1, which has none. ``a`` is one
factor per phone (a system-on-chip), ``b`` one per runtime setting (``tflite-fp32-1t``,
``tflite-int8-4t``, ``caffe2-fp32``, ``coreml``, ...), ``g`` one per source (a publication or a
lookup-table file: its TFLite version, harness and timing method), pulled toward 0 by a ridge
penalty so that a source with few rows cannot explain them all away. A lookup table measured in
its own setting therefore gets its own factor instead of overriding the model. A profile is a
(device, setting) pair and predicts with ``g = 0``: what a new source in that setting is expected
to measure. Pixel 1 on ``tflite-fp32-1t`` is the reference (``a = b = 0``). A source is the
publication (``joint_data.publication``): one table cited with two notes on where its MACs came
from is one harness. The cost shape is the op model's (``latency.cost.FEATURES``): a measured
host's shape transfers worse to Pixel 1 (the idle AMD EPYC profile of 2026-11-30 with its kernel
predictor, not shipped; one Pixel 1 factor fitted on the other families: leave-one-family-out
18.2 % with its kernel predictor, 17.2 % with its op tables, ProxylessNAS +127 % / +139 %; this
fit 13.7 % on the same folds. ``benchmarks/profile_calibration.py --diagnose --host FILE``).

Fit: alternate (1) the coefficients by non-negative least squares on relative error with the
factors fixed, (2) the log factors by weighted ridge least squares on log(measured / cost);
at most ``ROUNDS`` rounds (fewer once the factors settle), then the reference pair's level moves
into the coefficients.
Pure numpy/scipy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetailor.latency.cost import FEATURES, fit as nnls_fit
from edgetailor.profiling.calibration import features
from edgetailor.profiling.joint_data import Labelled

REFERENCE = ("pixel1", "tflite-fp32-1t")
ROUNDS = 30
TOLERANCE = 1e-5        # stop early once no log factor moves more than this in a round
# Chosen by ``joint_select.choose`` on all rows (an inner leave-one-family-out over every model
# family on every device; grid source ridge 1/4/16/64 x shrink 0.3/3/30/300), never on the folds a
# profile reports: 16 and 30 (inner mean abs log error 0.160; 4 and 3, chosen before on pixel1's
# reported folds, 0.162). ``benchmarks/profile_calibration.py --nested`` chooses them again without
# each held-out family. Units: one model row's weight.
SOURCE_RIDGE = 16.0     # pull of each source's log factor toward 0
SHRINK = 30.0           # pull of a (device, setting)'s own cost shape toward the shared one
IDENTIFY_RIDGE = 1e-6   # splits confounded factors (a device seen in one setting only) evenly
TABLE_WEIGHT = 8.0      # a whole lookup-table file weighs as much as 8 model rows
# A pair's own NNLS can zero a work type its rows barely exercise (Pixel 2's classifier); no work
# type is free, so each own coefficient keeps at least this share of the shared one.
FLOOR = 0.1
# Whole-model latencies hardly separate elementwise work (adds, multiplies, pooling) from the
# activations it sits between, and NNLS zeroes it; but an op that touches an element pays at least
# one memory pass, as the cheapest per-element work type the data does price.
_PER_ELEMENT = [FEATURES.index(name) for name in ("pw_melems", "dw_melems", "act_melems")]
_ELTWISE = FEATURES.index("eltwise_melems")


def _memory_floor(coefficients: np.ndarray) -> np.ndarray:
    """``coefficients`` with elementwise work priced at least as the cheapest per-element work."""
    priced = coefficients[_PER_ELEMENT][coefficients[_PER_ELEMENT] > 0]
    out = coefficients.copy()
    if priced.size:
        out[_ELTWISE] = max(out[_ELTWISE], priced.min())
    return out


@dataclass(frozen=True)
class Design:
    """Features, latencies and labels of every sample, computed once."""

    rows: tuple[Labelled, ...]
    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    device: np.ndarray
    setting: np.ndarray
    source: np.ndarray
    family: np.ndarray

    @classmethod
    def of(cls, rows: list[Labelled]) -> "Design":
        source = np.array([r.source for r in rows])
        is_table = np.array([r.sample.kind == "block" for r in rows])
        weight = np.ones(len(rows))
        for name in set(source[is_table]):
            members = source == name
            weight[members] = TABLE_WEIGHT / members.sum()
        return cls(tuple(rows), np.array([features(r.sample) for r in rows]),
                   np.array([r.sample.latency_ms for r in rows]), weight,
                   np.array([r.device for r in rows]), np.array([r.setting for r in rows]), source,
                   np.array([r.family for r in rows]))


@dataclass(frozen=True)
class JointFit:
    coefficients: np.ndarray       # ms per unit of work on the reference (pixel1, tflite-fp32-1t)
    device: dict[str, float]       # log factors
    setting: dict[str, float]
    source: dict[str, float]
    own: dict[str, np.ndarray]     # "device/setting" -> its cost shape (shrunk to the shared one)

    def coefficients_of(self, device: str, setting: str) -> np.ndarray:
        """Coefficients of a profile: its own where it has rows, else the shared shape."""
        own = self.own.get(f"{device}/{setting}")
        own = self.coefficients if own is None else np.maximum(own, FLOOR * self.coefficients)
        return own * self.factor(device, setting)

    def knows(self, device: str, setting: str) -> bool:
        return device in self.device and setting in self.setting

    def factor(self, device: str, setting: str, source: str | None = None) -> float:
        return float(np.exp(self.device[device] + self.setting[setting] + self.source.get(source, 0.0)))

    def predict(self, design: Design, index: np.ndarray, with_source: bool = True) -> np.ndarray:
        """Predicted ms of the design's rows ``index``; NaN where device or setting is unseen."""
        out = np.full(len(index), np.nan)
        for k, i in enumerate(index):
            if self.knows(design.device[i], design.setting[i]):
                device, setting = design.device[i], design.setting[i]
                source = design.source[i] if with_source else None
                out[k] = (self.factor(device, setting, source) / self.factor(device, setting)
                          * (design.x[i] @ self.coefficients_of(device, setting)))
        return out


def fit(design: Design, train: np.ndarray | None = None, shrink: float = SHRINK,
        source_ridge: float = SOURCE_RIDGE) -> JointFit:
    """Fit on the rows where ``train`` is true (all rows by default)."""
    train = np.ones(len(design.y), bool) if train is None else train
    x, y, w = design.x[train], design.y[train], design.weight[train]
    groups = [f"{d}/{s}" for d, s in zip(design.device[train], design.setting[train])]
    names = sorted(set(groups))
    member = {g: np.array([h == g for h in groups]) for g in names}
    columns = _columns(design, train)
    one_hot = np.zeros((len(y), len(columns)))
    for j, (kind, name) in enumerate(columns):
        one_hot[:, j] = getattr(design, kind)[train] == name
    ridge = np.array([source_ridge if kind == "source" else IDENTIFY_RIDGE for kind, _ in columns])
    log_factor = np.zeros(len(y))
    theta = np.zeros(len(columns))
    own = {}
    previous = None
    for _ in range(ROUNDS):
        scaled = x * np.exp(log_factor)[:, None]
        shared = _memory_floor(nnls_fit(scaled, y, w))
        cost = np.zeros(len(y))
        for g in names:
            m = member[g]
            own[g] = _memory_floor(_shrunk(scaled[m], y[m], w[m], shared, shrink))
            cost[m] = x[m] @ own[g]
        theta = _ridge(one_hot, np.log(y / np.maximum(cost, 1e-9)), w, ridge)
        log_factor = one_hot @ theta
        if previous is not None and np.max(np.abs(theta - previous)) < TOLERANCE:
            break
        previous = theta
    parts = {"device": {}, "setting": {}, "source": {}}
    for (kind, name), value in zip(columns, theta):
        parts[kind][name] = float(value)
    # Gauge: the reference pair's factor is 1, its level goes into the coefficients.
    a, b = parts["device"].get(REFERENCE[0], 0.0), parts["setting"].get(REFERENCE[1], 0.0)
    parts["device"] = {k: v - a for k, v in parts["device"].items()}
    parts["setting"] = {k: v - b for k, v in parts["setting"].items()}
    scale = np.exp(a + b)
    return JointFit(shared * scale, parts["device"], parts["setting"], parts["source"],
                    {g: c * scale for g, c in own.items()})


def _shrunk(scaled: np.ndarray, y: np.ndarray, w: np.ndarray, prior: np.ndarray, shrink: float) -> np.ndarray:
    """A group's own coefficients: NNLS on its rows plus ``shrink`` x (change of the mean relative
    prediction each coefficient causes)^2, so a group with few rows keeps the shared shape."""
    from scipy.optimize import nnls

    rel = scaled / y[:, None]
    sensitivity = np.maximum(np.average(rel, axis=0, weights=w), 1e-12)
    lhs = np.vstack([rel * np.sqrt(w)[:, None], np.sqrt(shrink * len(y)) * np.diag(sensitivity)])
    rhs = np.concatenate([np.sqrt(w), np.sqrt(shrink * len(y)) * sensitivity * prior])
    return nnls(lhs, rhs, maxiter=50 * len(prior))[0]


def _columns(design: Design, train: np.ndarray) -> list[tuple[str, str]]:
    out = []
    for kind in ("device", "setting", "source"):
        out += [(kind, name) for name in sorted(set(getattr(design, kind)[train]))]
    return out


def _ridge(a: np.ndarray, r: np.ndarray, w: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """argmin sum w (r - a t)^2 + sum ridge t^2."""
    sw = np.sqrt(w)
    lhs = np.vstack([a * sw[:, None], np.diag(np.sqrt(ridge))])
    rhs = np.concatenate([r * sw, np.zeros(len(ridge))])
    return np.linalg.lstsq(lhs, rhs, rcond=None)[0]


# --- out-of-sample checks --------------------------------------------------------------------

FOLDS = {
    "leave_one_family_out": "each model family held out of every device and setting, then predicted",
    "leave_one_family_out_this_device": "each family held out of this device only (other phones keep it)",
    "leave_one_source_out": "each publication or table file held out everywhere, then predicted "
                            "with the setting's factor (its own source factor unknown)",
}


class Folds:
    """Out-of-sample predictions of the joint fit, each distinct fold fitted once."""

    def __init__(self, design: Design):
        self.design = design
        self._fits: dict[tuple, JointFit] = {}

    def _fit(self, key: tuple, train: np.ndarray) -> JointFit:
        if key not in self._fits:
            self._fits[key] = fit(self.design, train)
        return self._fits[key]

    def held_out(self, fold: str, index: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Predicted ms of rows ``index`` under ``fold`` (NaN: no fit could price it), per row
        the group it was held out with."""
        d = self.design
        out, groups = np.full(len(index), np.nan), []
        for k, i in enumerate(index):
            if fold == "leave_one_family_out":
                key, train = ("family", d.family[i]), d.family != d.family[i]
            elif fold == "leave_one_family_out_this_device":
                key = ("family", d.family[i], d.device[i])
                train = (d.family != d.family[i]) | (d.device != d.device[i])
            else:
                key, train = ("source", d.source[i]), d.source != d.source[i]
            out[k] = self._fit(key, train).predict(d, np.array([i]), with_source=False)[0]
            groups.append(key[1])
        return out, groups
