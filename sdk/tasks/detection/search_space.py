"""The detection-backbone search's side of the search engine (pure Python/numpy, no TensorFlow).

A point is a choice vector of a registered space (``edgetailor.arch.spaces``): each stage's depth,
width ratio and op (kernel x expansion, ...), as the space defines them. The detector is that
backbone with a head (``ssdlite`` or ``yolox``) priced WHOLE by the head module's
``predict_latency`` (``heads.module_for(config)``), the function the detection task prices each head
with: the backbone up to the deepest feature the head reads, the head, and whatever else that
function prices (the post-processing op, where it does). ``DetectionSearch`` is the engine's
``Search`` with that pricing; everything else (NSGA-II, the RDB study, resume, the report) is the
engine's.

The parent whose weights every candidate inherits is the space's largest network
(``parent_choices``): each stage's deepest depth and widest width, and its largest ``ir`` op
(largest expansion, then kernel, then squeeze-excite): the op whose weights the other ``ir`` ops
are slices of.
"""
from __future__ import annotations

import numpy as np

from edgetailor.arch.spaces import Space
from edgetailor.arch.spec import ArchSpec, SpecError, decode_block
from edgetailor.choose.search.engine import Search, latency_bounds
from edgetailor.errors import SearchError
from edgetailor.latency.space import SpacePredictor
from edgetailor.tasks.detection import heads, ssdlite, yolox

HEADS = ("ssdlite", "yolox")
METRIC = "COCO mAP@[.5:.95] (%)"
EXTREME_SAMPLES = 16   # sampled backbones (fastest and slowest by the backbone predictor) priced whole


def head_config(head: str, num_classes: int):
    """The head's config for ``num_classes`` classes (the published SSDLite / YOLOX-nano settings)."""
    if head == "ssdlite":
        return ssdlite.SSDLiteConfig(num_classes=num_classes)
    if head == "yolox":
        return yolox.YOLOXConfig(num_classes=num_classes)
    raise SearchError(f"unknown detection head {head!r}; heads: {', '.join(HEADS)}")


def parent_choices(space: Space) -> np.ndarray:
    """The choice vector of the space's largest network (see the module docstring)."""
    def weight(template: str) -> tuple:
        if template.startswith("skip"):
            return (False, 0, 0.0, 0, 0.0)
        block = decode_block(f"{template}_c8")
        return (block.kind == "ir", -block.groups, block.expand, block.kernel, block.se)

    choice = [int(np.argmax(space.resolutions))]
    for stage in space.stages:
        best_op = max(range(len(stage.ops)), key=lambda i: (weight(stage.ops[i]), -i))
        choice += [int(np.argmax(stage.depths)), int(np.argmax(stage.widths))]
        choice += [best_op] * (1 if stage.shared else max(stage.depths))
    return space.repair(np.array([choice]))[0]


def check_features(space: Space, config) -> ArchSpec:
    """The parent's spec, after checking that the space's networks have the features the head reads
    (their strides come from the stages', the same for every point of the space)."""
    spec = space.decode(parent_choices(space))
    try:
        heads.module_for(config).layers(spec, config)
    except SpecError as exc:
        raise SearchError(f"space {space.name!r} has no detection features for the "
                          f"{heads.name_of(config)} head: {exc}") from None
    return spec


class WholePricer:
    """Detector latency (ms) of choice vectors on ``profile``: backbone + head, each spec priced once."""

    def __init__(self, space: Space, profile, config):
        self.space, self.profile, self.config = space, profile, config
        self._ms: dict[str, float] = {}

    def price(self, spec: ArchSpec) -> float:
        """The detection task's whole-model pricing of ``spec`` with this head (ms)."""
        key = spec.encode()
        if key not in self._ms:
            self._ms[key] = float(heads.module_for(self.config).predict_latency(spec, self.config,
                                                                                self.profile).total_ms)
        return self._ms[key]

    def predict(self, choices) -> np.ndarray:
        return np.array([self.price(self.space.decode(row)) for row in np.atleast_2d(choices)])


class DetectionSearch(Search):
    """The engine's search with the detector priced whole; NSGA-II on (mAP, ms) only."""

    def __init__(self, config, evaluator, head: str, profile=None, *, open_study: bool = True):
        if config.strategy != "nsga2" or config.resolved_objective != "pareto":
            raise SearchError("the detection-backbone search is NSGA-II on (mAP, latency): strategy nsga2, "
                              f"objective pareto (got {config.strategy}, {config.resolved_objective})")
        self.head = head
        self.head_config = head_config(head, getattr(evaluator, "num_classes", None) or 1)
        super().__init__(config, evaluator, profile, open_study=open_study)

    def make_predictor(self) -> WholePricer:
        check_features(self.space, self.head_config)
        return WholePricer(self.space, self.profile, self.head_config)

    def latency_bounds(self):
        """The fastest and slowest detectors found among the backbone predictor's extremes, the
        parent, and the ``EXTREME_SAMPLES`` fastest and slowest of 2,000 sampled backbones, each
        priced whole (a full sweep of whole pricings takes minutes: ~10-30 ms each). The head's
        cost follows the backbone's feature widths, so the backbone's extremes carry the detector's."""
        backbone = SpacePredictor(self.space, self.profile)
        (_, fastest), (_, slowest) = latency_bounds(self.space, backbone)
        sample = self.space.sample(np.random.default_rng(0), 2000)
        order = np.argsort(backbone.predict(sample), kind="stable")
        pool = np.concatenate([np.stack([fastest, slowest, parent_choices(self.space)]),
                               sample[order[:EXTREME_SAMPLES]], sample[order[-EXTREME_SAMPLES:]]])
        ms = self.predictor.predict(pool)
        low, high = int(np.argmin(ms)), int(np.argmax(ms))
        return (float(ms[low]), pool[low]), (float(ms[high]), pool[high])
