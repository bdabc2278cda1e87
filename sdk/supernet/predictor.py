"""Accuracy predictor: an MLP from a sub-network's one-hot encoding to its measured top-1 (numpy only).

Once-for-All's shape (``AccuracyPredictor``, ofa/nas/accuracy_predictor/acc_predictor.py at
mit-han-lab/once-for-all@80a2e26ef04426213ad836b056234914d33a3c36): three hidden layers of 400
ReLU units, a last linear layer without bias, plus a fixed ``base_acc`` — the mean target — so the
network learns the deviation; targets are top-1 / 100, and the measured sub-networks are split
80 / 20 into fitting and held-out sets (``acc_dataset.py``, same commit). The held-out error is
reported and the predictor that ships is the one fitted on the 80 %, so the reported error is its
own. Stored as ``.npz`` arrays plus a JSON header, never a pickle.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetailor._io import write_bytes
from edgetailor.errors import SupernetError

HIDDEN, LAYERS = 400, 3          # acc_predictor.py hidden_size, n_layers
HELD_OUT = 0.2                   # acc_dataset.py: the last fifth is the validation set
FORMAT = "edgetailor-accuracy-predictor/1"


@dataclass(frozen=True)
class HeldOut:
    """The predictor's error on sub-networks it was not fitted on (percentage points)."""

    subnets: int
    mae_pp: float
    rmse_pp: float
    kendall_tau: float | None    # rank agreement, what a search relies on (None: one held out)
    baseline_mae_pp: float       # predicting the fitting set's mean for every one

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class AccuracyPredictor:
    """``predict(features)`` -> top-1 [%]; ``fingerprint`` names the encoding it was fitted on."""

    def __init__(self, weights: list[np.ndarray], biases: list[np.ndarray], base: float, fingerprint: str,
                 held_out: HeldOut | None = None, fitted_on: int = 0):
        self.weights, self.biases, self.base = weights, biases, float(base)
        self.fingerprint, self.held_out, self.fitted_on = fingerprint, held_out, fitted_on

    def predict(self, features: np.ndarray) -> np.ndarray:
        return 100.0 * (_forward(self.weights, self.biases, np.asarray(features, np.float32))[0] + self.base)

    def save(self, path: Path) -> None:
        header = {"format": FORMAT, "fingerprint": self.fingerprint, "base": self.base,
                  "fitted_on": self.fitted_on, "held_out": self.held_out.to_dict() if self.held_out else None}
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"b{i}": b for i, b in enumerate(self.biases)})
        buffer = io.BytesIO()
        np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
        write_bytes(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> "AccuracyPredictor":
        """The predictor in ``path``; refused when fitted on another encoding (space or resolutions)."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode())
                n = sum(1 for key in data.files if key.startswith("w"))
                weights = [data[f"w{i}"] for i in range(n)]
                biases = [data[f"b{i}"] for i in range(n - 1)]
            if header.get("format") != FORMAT:
                raise ValueError("unknown format")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise SupernetError(f"{path} is not an accuracy predictor ({exc})") from None
        if header["fingerprint"] != fingerprint:
            raise SupernetError(f"accuracy predictor {path} was fitted for another space or resolutions; "
                                "measure sub-networks again (edgetailor supernet predictor)")
        held = HeldOut(**header["held_out"]) if header["held_out"] else None
        return cls(weights, biases, header["base"], fingerprint, held, header["fitted_on"])


def _forward(weights, biases, x):
    """Output [n] and the hidden activations (for backprop)."""
    activations = [x]
    for w, b in zip(weights[:-1], biases):
        x = np.maximum(x @ w + b, 0.0)
        activations.append(x)
    return (x @ weights[-1])[:, 0], activations


def _init(n_in: int, rng: np.random.Generator):
    sizes = [n_in] + [HIDDEN] * LAYERS
    weights = [rng.uniform(-1, 1, (a, b)).astype(np.float32) / np.sqrt(a) for a, b in zip(sizes, sizes[1:])]
    weights.append(rng.uniform(-1, 1, (HIDDEN, 1)).astype(np.float32) / np.sqrt(HIDDEN))
    biases = [np.zeros(HIDDEN, np.float32) for _ in range(LAYERS)]
    return weights, biases


def _fit(x: np.ndarray, y: np.ndarray, base: float, seed: int, steps: int, learning_rate: float,
         weight_decay: float):
    """Full-batch Adam on the mean squared error of (top-1 / 100 - base)."""
    rng = np.random.default_rng(seed)
    weights, biases = _init(x.shape[1], rng)
    params = weights + biases
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    target = y / 100.0 - base
    for t in range(1, steps + 1):
        out, acts = _forward(weights, biases, x)
        grad_out = (2.0 / len(x)) * (out - target)[:, None]
        grads_w, grads_b = [None] * len(weights), [None] * len(biases)
        grads_w[-1] = acts[-1].T @ grad_out
        delta = grad_out @ weights[-1].T
        for i in range(LAYERS - 1, -1, -1):
            delta = delta * (acts[i + 1] > 0)
            grads_w[i] = acts[i].T @ delta
            grads_b[i] = delta.sum(axis=0)
            if i:
                delta = delta @ weights[i].T
        grads = [g + weight_decay * w for g, w in zip(grads_w, weights)] + grads_b
        for p, g, mi, vi in zip(params, grads, m, v):
            mi *= 0.9
            mi += 0.1 * g
            vi *= 0.999
            vi += 0.001 * g * g
            p -= learning_rate * (mi / (1 - 0.9 ** t)) / (np.sqrt(vi / (1 - 0.999 ** t)) + 1e-8)
    return weights, biases


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float | None:
    """Kendall's tau-a of two rankings (1: same order, 0: unrelated); None for fewer than two."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2:
        return None
    upper = np.triu_indices(len(a), 1)
    return float(np.mean(np.sign(a[:, None] - a[None, :])[upper] * np.sign(b[:, None] - b[None, :])[upper]))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def fit(features: np.ndarray, top1: np.ndarray, fingerprint: str, seed: int = 0, steps: int = 600,
        learning_rate: float = 1e-3, weight_decay: float = 1e-4) -> AccuracyPredictor:
    """Fit on a seeded 80 % of the measured sub-networks, report the error on the other 20 %."""
    features, top1 = np.asarray(features, np.float32), np.asarray(top1, np.float32)
    if len(top1) < 5:
        raise SupernetError(f"an accuracy predictor needs at least 5 measured sub-networks (got {len(top1)})")
    order = np.random.default_rng(seed).permutation(len(top1))
    cut = len(top1) - max(1, int(round(HELD_OUT * len(top1))))
    fit_rows, test_rows = order[:cut], order[cut:]
    base = float(np.mean(top1[fit_rows]) / 100.0)
    weights, biases = _fit(features[fit_rows], top1[fit_rows], base, seed, steps, learning_rate, weight_decay)
    predictor = AccuracyPredictor(weights, biases, base, fingerprint, fitted_on=len(fit_rows))
    error = predictor.predict(features[test_rows]) - top1[test_rows]
    held = HeldOut(len(test_rows), round(float(np.mean(np.abs(error))), 2),
                   round(float(np.sqrt(np.mean(error ** 2))), 2),
                   _rounded(kendall_tau(predictor.predict(features[test_rows]), top1[test_rows])),
                   round(float(np.mean(np.abs(top1[test_rows] - 100 * base))), 2))
    predictor.held_out = held
    return predictor
