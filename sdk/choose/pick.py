"""Pick mode: the most accurate published family x width x resolution under a latency budget.

Every candidate is screened at once: one layer walk per (family, width) splits each op's
features into per-output-pixel, per-input-pixel and constant parts, so latency and MACs for all
resolutions are one matrix product (hundreds of thousands of candidates per second). The
screen uses the profile's fitted model; candidates near the budget are then re-priced exactly
with ``profile.predict`` (table entries included) before one is chosen.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edgetailor.arch import pretrained, zoo
from edgetailor.arch.layers import walk
from edgetailor.arch.spec import ArchSpec
from edgetailor.choose import accuracy
from edgetailor.choose.candidate import Accuracy, Candidate, check_budget, pareto_mask
from edgetailor.errors import SpecError
from edgetailor.latency.cost import op_feature_parts
from edgetailor.latency.profiles import DeviceProfile

WIDTHS = (0.35, 0.5, 0.6, 0.75, 0.85, 1.0, 1.1, 1.25, 1.3, 1.4)
RESOLUTIONS = tuple(range(96, 321, 8))  # every 8 px, as TFLite-friendly sizes go
# Families a user gets by default: the published ImageNet families (EfficientNet B1+ are the
# b0 family at other depths, so "efficientnet" here is B0 depth at any width).
FAMILIES = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
            "mobilenet_v3_large_minimal", "mobilenet_v3_small_minimal", "mnasnet_a1", "mnasnet_b1",
            "efficientnet", "efficientnet_lite", "fbnet_a", "fbnet_b", "fbnet_c",
            "proxylessnas_mobile", "proxylessnas_cpu", "proxylessnas_gpu", "single_path_nas",
            "ghostnet", "shufflenet_v2")
_REFERENCE = 224  # walk resolution: divisible by every stride, so strides read off exactly


@dataclass(frozen=True)
class PickResult:
    best: Candidate
    runners_up: tuple[Candidate, ...]
    pareto: tuple[Candidate, ...]
    fastest: Candidate
    candidates: int
    seconds: float


class Grid:
    """Latency, MACs and top-1 of every family x width x resolution, vectorised."""

    def __init__(self, profile: DeviceProfile, families=FAMILIES, widths=WIDTHS, resolutions=RESOLUTIONS,
                 num_classes: int = 1000, pretrained_only: bool = False, max_width: float | None = None):
        self.profile = profile
        self.num_classes = num_classes  # the classifier that ships is priced, not ImageNet's
        self.resolutions = np.asarray(resolutions)
        self.rows: list[tuple[str, float]] = []
        latency, macs = [], []
        coefficients = profile.coefficients
        for family in families:
            for width in sorted(set(widths) | _published_widths(family)):
                if (pretrained_only and not pretrained.has_start(family, width)) or (
                        max_width is not None and width > max_width + 1e-9):
                    continue  # only points with published weights to start from, or narrow enough
                feats, family_macs = self._sweep(zoo.FAMILIES[family].spec(width, 1.0, _REFERENCE))
                latency.append(feats @ coefficients)
                macs.append(family_macs)
                self.rows.append((family, width))
        self.latency_ms = np.array(latency)  # [rows, resolutions]
        self.macs = np.array(macs)
        model = accuracy.model()
        published = {key: point.top1 for key, point in accuracy.published_index().items()}
        self.top1 = np.array([model.predict(f if f in model.families else None, m)
                              for (f, _), m in zip(self.rows, self.macs)])
        self.published = np.zeros_like(self.top1, dtype=bool)
        for i, (family, width) in enumerate(self.rows):
            for j, resolution in enumerate(self.resolutions):
                if (family, width, int(resolution)) in published:
                    self.top1[i, j] = published[(family, width, int(resolution))]
                    self.published[i, j] = True

    def _sweep(self, spec: ArchSpec) -> tuple[np.ndarray, np.ndarray]:
        """Features [resolutions, F] and MACs [resolutions] of one spec at every resolution."""
        ops = [op for layer in walk(spec, self.num_classes) for op in layer.ops]
        parts = np.array([op_feature_parts(op) for op in ops])  # [ops, 3, F]
        out_area = _areas(self.resolutions, np.array([op.out_shape[0] for op in ops]))
        in_area = _areas(self.resolutions, np.array([op.in_shape[0] for op in ops]))
        feats = out_area @ parts[:, 0] + in_area @ parts[:, 1] + parts[:, 2].sum(axis=0)
        feats[:, -1] = 1  # the per-inference constant
        pixels = np.array([op.out_shape[0] * op.out_shape[1] for op in ops], dtype=float)
        macs_per_pixel = np.array([op.macs for op in ops]) / pixels
        macs = out_area @ np.where(pixels > 1, macs_per_pixel, 0) + macs_per_pixel[pixels == 1].sum()
        return feats, macs

    @property
    def size(self) -> int:
        return self.latency_ms.size

    def candidate(self, i: int, j: int, exact: bool = False) -> Candidate:
        """Row ``i`` at resolution ``j``; ``exact`` re-prices it with ``profile.predict``."""
        family, width = self.rows[i]
        resolution = int(self.resolutions[j])
        spec = zoo.FAMILIES[family].spec(width, 1.0, resolution)
        latency = float(self.latency_ms[i, j])
        if exact:
            latency = self.profile.predict(spec, self.num_classes).total_ms
        return Candidate(spec, latency, self._accuracy(i, j), int(self.macs[i, j]),
                         f"{family} width {width:g} at {resolution} px", family, width, exact)

    def _accuracy(self, i: int, j: int) -> Accuracy:
        family, width = self.rows[i]
        top1 = round(float(self.top1[i, j]), 2)
        if self.published[i, j]:
            point = accuracy.published_index()[(family, width, int(self.resolutions[j]))]
            return Accuracy(top1, "published", point.source)
        model = accuracy.model()
        source = accuracy.estimated_source(family if family in model.families else None)
        return Accuracy(top1, "estimated", source, expected_error_pp=round(model.loo_pp, 2))


def _areas(resolutions: np.ndarray, sizes_at_reference: np.ndarray) -> np.ndarray:
    """[resolutions, maps] spatial areas of maps that are ``sizes_at_reference`` at 224 px;
    pooled (1 x 1) maps count as zero here (their cost is in the constant part)."""
    strides = _REFERENCE // np.maximum(sizes_at_reference, 1)
    areas = np.ceil(resolutions[:, None] / strides[None, :]) ** 2
    return np.where(sizes_at_reference[None, :] == 1, 0.0, areas)


def _published_widths(family: str) -> set[float]:
    return {e.width for e in zoo.entries() if e.family == family}


def pick(profile: DeviceProfile, budget_ms: float, grid: Grid | None = None,
         runners_up: int = 4, families=FAMILIES, num_classes: int = 1000,
         pretrained_only: bool = False, max_width: float | None = None) -> PickResult:
    """The most accurate candidate whose exact predicted latency (with a ``num_classes``
    classifier) is within ``budget_ms``; ``pretrained_only``: among family points that have
    published weights to start from (``arch.pretrained``), ``max_width``: no wider than this."""
    check_budget(budget_ms)
    started = time.perf_counter()
    if pretrained_only:
        families = tuple(f for f in families if f in pretrained.FAMILIES)
    if not families:
        raise SpecError("no family to pick from: those with a pretrained start are "
                        + ", ".join(pretrained.FAMILIES))
    grid = grid or Grid(profile, families, num_classes=num_classes, pretrained_only=pretrained_only,
                        max_width=max_width)
    order = np.argsort(-grid.top1, axis=None)
    chosen: list[Candidate] = []
    margin = 1.0 + max(profile.expected_error_pct or 10, 10) / 100
    for flat in order:
        i, j = np.unravel_index(flat, grid.top1.shape)
        if grid.latency_ms[i, j] > budget_ms * margin:
            continue
        candidate = grid.candidate(i, j, exact=True)
        if candidate.latency_ms <= budget_ms:
            chosen.append(candidate)
            if len(chosen) > runners_up:
                break
    fastest_flat = int(np.argmin(grid.latency_ms))
    fastest = grid.candidate(*np.unravel_index(fastest_flat, grid.latency_ms.shape), exact=True)
    if not chosen:
        raise SpecError(f"no candidate meets {budget_ms:g} ms on {profile.name}: the fastest is "
                        f"{fastest.label} at {fastest.latency_ms:.1f} ms")
    return PickResult(chosen[0], tuple(chosen[1:]), tuple(pareto_front(grid)), fastest, grid.size,
                      time.perf_counter() - started)


def pareto_front(grid: Grid) -> list[Candidate]:
    """Candidates no other beats on both screened latency and top-1, fastest first."""
    keep = np.flatnonzero(pareto_mask(grid.top1.ravel(), grid.latency_ms.ravel()))
    keep = keep[np.argsort(grid.latency_ms.ravel()[keep], kind="stable")]
    return [grid.candidate(*np.unravel_index(flat, grid.latency_ms.shape)) for flat in keep]
