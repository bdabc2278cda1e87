"""Price of ``TFLite_Detection_PostProcess`` (box decoding + NMS) on any device profile.

The op is measured on the host as a one-op TFLite model over a grid of anchors x classes x kept
detections (``profiling.postprocess_ops``); its time fits

    ms = c . (1, A, A x C, A x D, A x log2 A) / 1000        A anchors, C classes, D max detections

(per-anchor decoding, the best-class scan over every score, the greedy suppression of each
candidate against the boxes kept, the candidates' sort). The fit and its grid ship as plain JSON
(``device_profiles/ops/detection_postprocess_host.json``).

No phone measurement of the op exists in ``shared/data``, so a profile prices it as the host's
time times the profile's device factor measured on a whole network: the profile's predicted
latency of the reference network (MobileNetV2 1.0 at 224 px) over the host's latency of that
network measured with the grid (its ops as one-op models, summed: op-level like the grid, and
without the end-to-end scale a host profile applies, so a host profile of this machine prices the
op ~10-30% above its one-op time). The op is scalar code (sort,
compare) while the reference is mostly convolutions, so this transfers the host's shape at the
speed ratio of convolution-heavy work: stated as an approximation, not a phone measurement.
Pure numpy.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

import numpy as np

from edgetailor.arch.spec import decode
from edgetailor.errors import ProfileError
from edgetailor.latency.cost import Breakdown, LayerLatency

SCHEMA = "edgetailor.op-cost/1"
TERMS = ("per_inference", "anchors", "anchor_classes", "anchor_detections", "anchor_log2_anchors")
DATA = "detection_postprocess_host.json"


def terms(anchors: int, classes: int, max_detections: int) -> np.ndarray:
    """The model's terms in thousands (of anchors, anchor-classes, ...)."""
    a = float(anchors)
    return np.array([1.0, a, a * classes, a * max_detections, a * np.log2(max(a, 2.0))]) / 1e3


@dataclass(frozen=True)
class PostprocessCost:
    """The host's fitted cost of the op and the reference that carries it to other devices."""

    coefficients: np.ndarray     # host ms per unit of each term in ``TERMS``
    reference_spec: str          # the network whose latency ratio is the device factor
    reference_host_ms: float     # that network's latency on the host, its ops summed (ms)
    host: str
    error: dict

    def host_ms(self, anchors: int, classes: int, max_detections: int) -> float:
        return float(terms(anchors, classes, max_detections) @ self.coefficients)

    def device_factor(self, profile) -> float:
        """``profile``'s predicted ms of the reference network over the host's measured ms."""
        return _predicted_ms(profile, self.reference_spec) / self.reference_host_ms

    def price(self, profile, anchors: int, classes: int, max_detections: int) -> LayerLatency:
        ms = self.host_ms(anchors, classes, max_detections) * self.device_factor(profile)
        key = f"detection_postprocess@{anchors}x{classes}->{max_detections}"
        return LayerLatency("detection.postprocess", key, ms, "host-op x device factor")


@lru_cache(maxsize=64)
def _predicted_ms(profile, spec: str) -> float:
    """A profile's prediction of an encoded spec, once per profile (pick mode prices hundreds)."""
    return profile.predict(decode(spec)).total_ms


def from_dict(data: dict, where: str) -> PostprocessCost:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or tuple(data.get("terms", ())) != TERMS:
        raise ProfileError(f"{where}: not an {SCHEMA} file with terms {list(TERMS)}")
    coefficients = np.asarray(data["coefficients"], dtype=float)
    reference = data["reference"]
    if coefficients.shape != (len(TERMS),) or np.any(coefficients < 0) or reference["host_ms"] <= 0:
        raise ProfileError(f"{where}: needs {len(TERMS)} non-negative coefficients and a positive reference time")
    return PostprocessCost(coefficients, reference["spec"], float(reference["host_ms"]), data["host"],
                           data.get("error", {}))


@lru_cache(maxsize=1)
def shipped() -> PostprocessCost:
    """The host measurement shipped with edgetailor."""
    entry = resources.files("edgetailor.device_profiles") / "ops" / DATA
    return from_dict(json.loads(entry.read_text()), f"edgetailor.device_profiles/ops/{DATA}")


def with_postprocess(breakdown: Breakdown, profile, anchors: int, classes: int,
                     max_detections: int) -> Breakdown:
    """``breakdown`` (a detector's layers on ``profile``) plus the post-processing op's price."""
    layer = shipped().price(profile, anchors, classes, max_detections)
    return replace(breakdown, total_ms=breakdown.total_ms + layer.latency_ms,
                   layers=breakdown.layers + (layer,))


def fit(shapes: list[tuple[int, int, int]], measured_ms: list[float]) -> tuple[np.ndarray, dict]:
    """Coefficients by non-negative least squares on relative error, and their leave-one-out
    error on the grid (mean and max absolute %)."""
    from edgetailor.latency.cost import fit as nnls

    x = np.array([terms(*s) for s in shapes])
    y = np.asarray(measured_ms, dtype=float)
    coefficients = nnls(x, y)
    out = np.array([x[i] @ nnls(np.delete(x, i, 0), np.delete(y, i)) for i in range(len(y))])
    pct = np.abs(out / y - 1) * 100
    return coefficients, {"leave_one_out_mape_pct": round(float(pct.mean()), 2),
                          "leave_one_out_max_pct": round(float(pct.max()), 2),
                          "within_10pct": round(float(np.mean(pct <= 10)), 3), "n": int(len(y))}
