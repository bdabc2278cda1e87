"""Detection and segmentation for the specializer: the backbone + head that fits a budget.

Candidates are the pick-mode families at a grid of widths, each with its task head (SSDLite or
LR-ASPP) at the task's resolution, priced whole (backbone + head) by the device profile.
Detection mAP and segmentation mIoU are published for a handful of these combinations only, so
candidates are ranked by their backbone's ImageNet top-1 at 224 px (published or estimated, as
in pick mode): the transfer MobileNetV3 and MnasNet report for SSDLite. Every result names that
ranking metric, and the published SSDLite detectors (Pixel 1) are listed beside our prediction
of the same models.

TensorFlow is not imported here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from edgetailor import accuracy, lraspp, pick, ssdlite, zoo
from edgetailor.layers import totals
from edgetailor.profiles import DeviceProfile
from edgetailor.spec import ArchSpec, SpecError

RANKING_METRIC = "backbone ImageNet top-1 (%)"
_IMAGENET_RESOLUTION = 224


@dataclass(frozen=True)
class Task:
    """A dense-prediction task: its head module (``ssdlite`` or ``lraspp``) and defaults."""

    name: str
    head: ModuleType
    default_resolution: int
    placeholder_labels: tuple[str, ...]   # a bundle built without a dataset (COCO / Pascal VOC sized)
    metric: str                           # what a measured accuracy is
    make_config: Callable[[int], object]
    make_backbone: Callable[[str, float, int], ArchSpec]

    @property
    def head_name(self) -> str:
        return self.head.__name__.rsplit(".", 1)[-1]

    def config(self, labels) -> object:
        return self.make_config(len(labels))

    def backbone(self, family: str, width: float, resolution: int) -> ArchSpec:
        return self.make_backbone(family, width, resolution)


def _plain_backbone(family: str, width: float, resolution: int) -> ArchSpec:
    return zoo.FAMILIES[family].spec(width, 1.0, resolution)


TASKS = {
    "detection": Task(
        "detection", ssdlite, ssdlite.DEFAULT_RESOLUTION,
        tuple(f"class_{i:02d}" for i in range(90)),
        "COCO mAP@[.5:.95] (%) on the dataset's held-out split",
        lambda n: ssdlite.SSDLiteConfig(num_classes=n), ssdlite.detection_backbone),
    "segmentation": Task(
        "segmentation", lraspp, 256,
        ("background",) + tuple(f"class_{i:02d}" for i in range(1, 21)),
        "mean IoU (%) on the dataset's held-out split",
        lambda n: lraspp.LRASPPConfig(num_classes=n), _plain_backbone),
}


def adapt(task: Task, spec: ArchSpec, family: str | None) -> ArchSpec:
    """``spec`` (of zoo ``family``, if known) as ``task``'s head uses it: MobileNetV3 backbones
    get SSDLite's reduced tail, as ``make_backbone`` does."""
    if task.name == "detection" and family in ssdlite.REDUCED_TAIL:
        return ssdlite.reduce_tail(spec)
    return spec


def price(task: Task, spec: ArchSpec, profile: DeviceProfile, num_labels: int | None = None):
    """Latency Breakdown (ms) of backbone ``spec`` with ``task``'s head on ``profile``."""
    config = task.make_config(num_labels or len(task.placeholder_labels))
    return profile.predict_layers(task.head.layers(spec, config))


def get(name: str) -> Task:
    if name not in TASKS:
        raise SpecError(f"unknown task {name!r}; expected classification, {', '.join(TASKS)}")
    return TASKS[name]


@dataclass(frozen=True)
class TaskCandidate:
    family: str
    width: float
    resolution: int
    spec: ArchSpec
    latency_ms: float
    backbone_top1: float
    accuracy_kind: str      # of the backbone top-1: "published" or "estimated"
    accuracy_source: str
    params: int
    macs: int

    @property
    def label(self) -> str:
        return f"{self.family} width {self.width:g} at {self.resolution} px"

    def to_dict(self) -> dict:
        return {"family": self.family, "width": self.width, "resolution": self.resolution,
                "latency_ms": round(self.latency_ms, 2), "backbone_top1": self.backbone_top1,
                "accuracy_kind": self.accuracy_kind, "params_m": round(self.params / 1e6, 3),
                "macs_m": round(self.macs / 1e6, 1), "spec": self.spec.encode()}


@dataclass(frozen=True)
class TaskPick:
    task: str
    best: TaskCandidate
    runners_up: tuple[TaskCandidate, ...]
    pareto: tuple[TaskCandidate, ...]
    fastest: TaskCandidate
    candidates: int
    references: tuple[dict, ...]
    seconds: float


def candidates(task: Task, profile: DeviceProfile, resolution: int, num_labels: int,
               families=pick.FAMILIES, widths=pick.WIDTHS) -> list[TaskCandidate]:
    """Every family x width with the task's head, priced whole on ``profile``."""
    config = task.make_config(num_labels)
    out = []
    for family in families:
        for width in widths:
            spec = task.backbone(family, width, resolution)
            try:
                walked = task.head.layers(spec, config)
            except SpecError:  # a backbone without the strides the head reads
                continue
            params, macs = totals(walked)
            imagenet = zoo.FAMILIES[family].spec(width, 1.0, _IMAGENET_RESOLUTION)
            top1 = accuracy.estimate(imagenet, family, width)
            out.append(TaskCandidate(family, width, resolution, spec,
                                     profile.predict_layers(walked).total_ms, top1.top1, top1.kind,
                                     top1.source, params, macs))
    return out


def pick_task(task: Task, profile: DeviceProfile, budget_ms: float, num_labels: int,
              resolution: int | None = None, families=pick.FAMILIES, widths=pick.WIDTHS,
              runners_up: int = 4) -> TaskPick:
    """The candidate with the best backbone top-1 whose predicted latency is within ``budget_ms``."""
    if not budget_ms > 0:
        raise SpecError(f"the latency budget must be a positive number of ms (got {budget_ms})")
    started = time.perf_counter()
    resolution = resolution or task.default_resolution
    pool = candidates(task, profile, resolution, num_labels, families, widths)
    if not pool:
        raise SpecError(f"no backbone among {', '.join(families)} takes a {task.name} head")
    fastest = min(pool, key=lambda c: c.latency_ms)
    under = sorted((c for c in pool if c.latency_ms <= budget_ms),
                   key=lambda c: (-c.backbone_top1, c.latency_ms))
    if not under:
        raise SpecError(f"no {task.name} candidate meets {budget_ms:g} ms on {profile.name} at "
                        f"{resolution} px: the fastest is {fastest.label} at {fastest.latency_ms:.1f} ms")
    front, best = [], float("-inf")
    for c in sorted(pool, key=lambda c: (c.latency_ms, -c.backbone_top1)):
        if c.backbone_top1 > best:
            best = c.backbone_top1
            front.append(c)
    return TaskPick(task.name, under[0], tuple(under[1:runners_up + 1]), tuple(front), fastest,
                    len(pool), tuple(references(task, profile, num_labels)),
                    time.perf_counter() - started)


def references(task: Task, profile: DeviceProfile, num_labels: int) -> list[dict]:
    """Published detectors (Pixel 1) with our prediction of each on ``profile``, at COCO's 90
    classes and with ``num_labels`` classes (the bundle's)."""
    if task.name != "detection":
        return []
    out = []
    for ref in ssdlite.PUBLISHED:
        spec = ref.spec()
        ours = {n: ssdlite.predict_latency(spec, ssdlite.SSDLiteConfig(num_classes=n), profile).total_ms
                for n in {90, num_labels}}
        out.append({"name": ref.name, "spec": spec.encode(), "published_pixel1_ms": ref.pixel1_ms,
                    "published_coco_map": ref.coco_map, "source": ref.source,
                    "predicted_ms_90_classes": round(ours[90], 1),
                    "predicted_ms": round(ours[num_labels], 1),
                    "device": profile.name})
    return out


def published_reference(spec: ArchSpec) -> ssdlite.Reference | None:
    """The published detector whose architecture ``spec`` is, if any."""
    return next((ref for ref in ssdlite.PUBLISHED if ref.spec() == spec), None)
