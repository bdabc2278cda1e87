"""One candidate, one accuracy record, one Pareto front, one budget check: every chooser's vocabulary.

Pick mode, the task pickers and search all hand the specializer a ``Candidate``: an ``ArchSpec``,
its latency priced once on the device (with the head and class count that will ship), and its
accuracy with where that figure comes from. The bundle reports these figures as they are; nothing
downstream prices or estimates again.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from edgetailor.arch.spec import ArchSpec
from edgetailor.errors import SpecError

ACCURACY_KINDS = ("published", "estimated", "measured")
IMAGENET_TOP1 = "ImageNet top-1 (%)"


@dataclass(frozen=True)
class Accuracy:
    """An accuracy figure (%) and where it comes from (``kind``: published, estimated, measured).

    ``value`` None means no figure is known; ``expected_error_pp`` is an estimate's mean absolute
    leave-one-out error in percentage points.
    """

    value: float | None
    kind: str | None
    source: str | None
    metric: str = IMAGENET_TOP1
    note: str = ""
    expected_error_pp: float | None = None

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in ACCURACY_KINDS:
            raise SpecError(f"accuracy kind must be one of {', '.join(ACCURACY_KINDS)} (got {self.kind!r})")

    def noted(self, note: str) -> "Accuracy":
        return replace(self, note=note)

    def to_dict(self) -> dict:
        """The manifest's form: the estimate's error only where there is one."""
        data = asdict(self)
        if data["expected_error_pp"] is None:
            del data["expected_error_pp"]
        return data


@dataclass(frozen=True)
class Candidate:
    """One architecture considered for one device: spec, predicted latency (ms), accuracy.

    ``exact`` is False for a screened latency (the profile's fitted model only); a chosen
    candidate is always re-priced exactly (lookup-table entries included). ``family`` and
    ``width`` are set for candidates drawn from a published family.
    """

    spec: ArchSpec
    latency_ms: float
    accuracy: Accuracy
    macs: int
    label: str
    family: str | None = None
    width: float | None = None
    exact: bool = True
    params: int | None = None
    head: str | None = None  # a dense task's head (detection: ssdlite, efficientdet, nasfpn)

    @property
    def resolution(self) -> int:
        return self.spec.resolution

    @property
    def top1(self) -> float | None:
        return self.accuracy.value

    def to_dict(self) -> dict:
        data = {"label": self.label, "family": self.family, "width": self.width,
                "resolution": self.resolution, "latency_ms": round(self.latency_ms, 2),
                "exact_latency": self.exact, "top1": self.accuracy.value,
                "accuracy_kind": self.accuracy.kind, "macs_m": round(self.macs / 1e6, 1)}
        if self.params is not None:
            data["params_m"] = round(self.params / 1e6, 3)
        data["spec"] = self.spec.encode()
        return data


def within_budget(latency_ms: float | None, budget_ms: float | None) -> bool | None:
    """Whether a latency meets a budget (None when either is unknown)."""
    if latency_ms is None or budget_ms is None:
        return None
    return latency_ms <= budget_ms


def check_budget(budget_ms: float) -> None:
    if not budget_ms > 0:  # NaN fails too
        raise SpecError(f"the latency budget must be a positive number of ms (got {budget_ms})")


def pareto_mask(accuracy: Sequence[float], latency_ms: Sequence[float]) -> np.ndarray:
    """True for points no other point beats (higher accuracy and lower latency, one strictly).

    Of identical points only the first is kept.
    """
    accuracy, latency = np.asarray(accuracy, float), np.asarray(latency_ms, float)
    order = np.lexsort((np.arange(len(accuracy)), -accuracy, latency))
    mask = np.zeros(len(accuracy), bool)
    best = -np.inf
    for i in order:
        if accuracy[i] > best:
            mask[i], best = True, accuracy[i]
    return mask


def pareto(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates no other beats on both latency and accuracy, fastest first."""
    if not candidates:
        return []
    mask = pareto_mask([c.accuracy.value for c in candidates], [c.latency_ms for c in candidates])
    return sorted((c for c, keep in zip(candidates, mask) if keep), key=lambda c: c.latency_ms)


def ranked_within(candidates: Iterable[Candidate], budget_ms: float) -> list[Candidate]:
    """Candidates that meet ``budget_ms``, most accurate first (faster first on a tie)."""
    return sorted((c for c in candidates if within_budget(c.latency_ms, budget_ms)),
                  key=lambda c: (-c.accuracy.value, c.latency_ms))
