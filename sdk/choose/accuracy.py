"""ImageNet top-1 for any candidate, with where it comes from.

* ``published``: the candidate is a published variant (a zoo entry, or a point of MnasNet-A1's
  width x resolution table in tensorflow/tpu's README) - the published figure.
* ``estimated``: a least-squares model ``top1 = a_family + b*x + c*x^2`` with ``x = log(MACs)``:
  one offset per family and a curve shared by all families, fitted on every published float
  top-1 of the convolutional mobile families (those pick and search produce; the hybrid attention,
  NASNet-cell and RegNet/G-Ghost entries keep their published figures but stay off the curve:
  one point each, they would only move the generic offset). A family with no published point uses
  the mean offset (``generic``). Its leave-one-out error (percentage points) is reported with every
  estimate.
* ``measured``: validation accuracy from training (``edgetailor.tasks.classification.train``), not here.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from edgetailor.arch import layers, zoo
from edgetailor.arch.spec import ArchSpec
from edgetailor.choose.candidate import Accuracy


@dataclass(frozen=True)
class Point:
    family: str
    width: float
    resolution: int
    top1: float
    macs: float
    source: str
    on_curve: bool = True  # fitted by Top1Model (a convolutional mobile family)


# block kinds of families that are not on the mobile-CNN curve (see the module docstring)
OFF_CURVE_KINDS = frozenset({"sdta", "convenc", "attn", "ffn", "gghost", "xblock", "nasnormal", "nasreduce",
                             "uconv", "ldsm", "lgdsm", "mhsa"})


def published_points() -> list[Point]:
    """Every published float top-1 tied to an architecture: the zoo and MnasNet-A1's table."""
    from edgetailor.arch.families import MNASNET_A1_TABLE, TPU_MNAS

    points = {}
    for entry in zoo.entries():
        if entry.published.top1 is not None:
            macs = layers.count(entry.spec)[1]
            on_curve = not any(block.kind in OFF_CURVE_KINDS for block in entry.spec.blocks)
            points[(entry.family, entry.width, entry.resolution)] = Point(
                entry.family, entry.width, entry.resolution, entry.published.top1, macs,
                entry.published.source, on_curve)
    for width, resolution, top1 in MNASNET_A1_TABLE:
        key = ("mnasnet_a1", width, resolution)
        if key not in points:
            spec = zoo.FAMILIES["mnasnet_a1"].spec(width, 1.0, resolution)
            points[key] = Point("mnasnet_a1", width, resolution, top1, layers.count(spec)[1],
                                f"{TPU_MNAS}: depth multiplier {width:g}, {resolution} px")
    return sorted(points.values(), key=lambda p: (p.family, p.width, p.resolution))


class Top1Model:
    """Per-family offsets and one shared quadratic in log(MACs)."""

    def __init__(self, points: list[Point]):
        self.families = sorted({p.family for p in points})
        self.coef = self._fit(points)
        self.loo_pp = self._leave_one_out(points)

    def _design(self, points: list[Point], families: list[str]) -> np.ndarray:
        x = np.log(np.array([p.macs for p in points]) / 1e6)
        onehot = np.array([[p.family == f for f in families] for p in points], dtype=float)
        return np.column_stack([onehot, x, x ** 2])

    def _fit(self, points: list[Point], families: list[str] | None = None) -> np.ndarray:
        families = families or self.families
        design = self._design(points, families)
        coef, *_ = np.linalg.lstsq(design, np.array([p.top1 for p in points]), rcond=None)
        return coef

    def _leave_one_out(self, points: list[Point]) -> float:
        errors = []
        for i, point in enumerate(points):
            rest = points[:i] + points[i + 1:]
            families = sorted({p.family for p in rest})
            coef = self._fit(rest, families)
            errors.append(abs(self._predict(coef, families, point.family, point.macs) - point.top1))
        return float(np.mean(errors))

    @staticmethod
    def _predict(coef, families, family, macs) -> float:
        n = len(families)
        offset = coef[families.index(family)] if family in families else float(np.mean(coef[:n]))
        x = np.log(np.asarray(macs, dtype=float) / 1e6)
        return coef[n] * x + coef[n + 1] * x ** 2 + offset

    def predict(self, family: str | None, macs) -> np.ndarray | float:
        """Top-1 (%) for a family (None: generic) at ``macs`` multiply-adds (vectorised)."""
        return self._predict(self.coef, self.families, family, macs)


@functools.lru_cache(maxsize=1)
def model() -> Top1Model:
    return Top1Model([point for point in published_points() if point.on_curve])


@functools.lru_cache(maxsize=1)
def published_index() -> dict[tuple[str, float, int], Point]:
    return {(p.family, p.width, p.resolution): p for p in published_points()}


def estimate(spec: ArchSpec, family: str | None = None, width: float | None = None,
             macs: float | None = None) -> Accuracy:
    """ImageNet top-1: published where the candidate is a published variant, else the fitted
    estimate (``macs``: the spec's, when the caller has already counted them)."""
    if family is not None:
        point = published_index().get((family, width or 1.0, spec.resolution))
        if point is not None:
            return Accuracy(point.top1, "published", point.source)
    top1_model = model()
    known = family in top1_model.families
    macs = layers.count(spec)[1] if macs is None else macs
    source = estimated_source(family if known else None)
    return Accuracy(round(float(top1_model.predict(family if known else None, macs)), 2),
                    "estimated", source, expected_error_pp=round(top1_model.loo_pp, 2))


def estimated_source(family: str | None) -> str:
    """Where an estimate comes from: the family's offset on the shared curve, or the generic curve."""
    points = sum(point.on_curve for point in published_index().values())
    if family is None:
        return f"estimated: generic log-MACs curve over {points} published points"
    return f"estimated: {family} offset + shared log-MACs curve over {points} published points"


def generic_estimator():
    """A cheap ``spec -> (top1, kind, source)`` for search: the generic curve of MACs."""
    def evaluate(spec: ArchSpec) -> tuple[float, str, str]:
        result = estimate(spec)
        return result.value, result.kind, result.source
    return evaluate
