"""A registered space read as a differentiable search: candidate ops per layer slot and their latency.

Pure numpy. For every layer slot of a per-layer space (``fbnet``, ``proxyless``: one depth, one
width, an op chosen per layer) it lists the candidate ops the search supernet holds — the ``ir``
ops that share one weight set (every kernel x expand pair of the slot's ops: the largest kernel
and expansion hold the weights, smaller ones are Once-for-All's kernel transforms and first
channels) and ``skip`` where the space allows it (``Space.repair``'s rule) — and prices each op on
the device profile with ``SpacePredictor``'s per-slot tables. An op that cannot share those
weights (FBNet's grouped 1x1 convolutions ``g2``, whose shuffle and block-diagonal kernels are not
a slice of the dense ones) is left out of the search, and ``notes`` says so.

The expected latency of per-slot probabilities is ``fixed_ms + sum(probs * table)``; for one-hot
probabilities it equals ``profile.predict(space.decode(choice)).total_ms`` (a test checks it).
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from edgetailor.arch.spaces import Space
from edgetailor.arch.spec import ArchSpec, decode_block
from edgetailor.errors import SearchError
from edgetailor.latency.profiles import DeviceProfile
from edgetailor.latency.space import SpacePredictor

SKIP = -1  # kernel index of the skip op


@dataclass(frozen=True)
class Slot:
    """One layer slot: its stage, position, and its candidates as (space op index, kernel index,
    expand index), ``SKIP`` kernel index for skip."""

    stage: int
    layer: int
    kernels: tuple[int, ...]           # ascending kernel sizes of the shared ir ops
    expands: tuple[float, ...]         # ascending expand ratios
    candidates: tuple[tuple[int, int, int], ...]
    residual: bool                     # input and output shapes agree: the block adds its input


class DnasSpace:
    """``space`` at ``resolution`` [px] as a search: slots, candidates, latency on ``profile``."""

    def __init__(self, space: Space, profile: DeviceProfile, resolution: int, num_classes: int):
        self.space = dataclasses.replace(space, resolutions=(resolution,))
        self.resolution, self.profile, self.num_classes = resolution, profile, num_classes
        self.slots: list[Slot] = []
        left_out: set[str] = set()
        previous = self.space.stem_channels
        for s, stage in enumerate(self.space.stages):
            if stage.shared or len(stage.widths) != 1 or len(stage.depths) != 1:
                raise SearchError(f"space {space.name!r} is not a per-layer space (stage {s + 1} has shared "
                                  "ops, width or depth choices); the differentiable searches take fbnet and "
                                  "proxyless")
            shape_changes = stage.stride > 1 or stage.channels != previous
            for layer in range(stage.depths[0]):
                self.slots.append(_slot(space.name, s, layer, stage.ops, layer > 0 or not shape_changes, left_out))
            previous = stage.channels
        self.notes = tuple(f"op {op!r} left out: it cannot share the slot's weights (grouped 1x1 convolutions "
                           "and a channel shuffle are not slices of the dense ones)" for op in sorted(left_out))
        self.max_ops = max(len(slot.candidates) for slot in self.slots)
        predictor = SpacePredictor(self.space, profile, num_classes=num_classes)
        self._predictor = predictor
        self.fixed_ms = float(predictor.overhead + predictor.stem_ms[0] + predictor.head_ms[0, 0])
        self.table = np.zeros((len(self.slots), self.max_ops))      # ms per (slot, candidate)
        self.mask = np.zeros((len(self.slots), self.max_ops), bool)  # True where a candidate exists
        for i, (slot, (_, _, _, _, _, lut)) in enumerate(zip(self.slots, predictor.slots)):
            for c, (op, _, _) in enumerate(slot.candidates):
                self.table[i, c] = lut[0, 0, 0, op]
                self.mask[i, c] = True

    def expected_ms(self, probs: np.ndarray) -> float:
        """Latency [ms] expected under per-slot probabilities ``[slots, max_ops]``."""
        return self.fixed_ms + float(np.sum(np.where(self.mask, probs, 0.0) * self.table))

    def fastest(self) -> tuple[np.ndarray, float]:
        """The candidate index per slot of the fastest network, and its latency [ms]."""
        table = np.where(self.mask, self.table, np.inf)
        return np.argmin(table, axis=1), self.fixed_ms + float(table.min(axis=1).sum())

    def slowest_ms(self) -> float:
        return self.fixed_ms + float(np.where(self.mask, self.table, -np.inf).max(axis=1).sum())

    def within_budget(self, probs: np.ndarray, picks, budget_ms: float) -> np.ndarray:
        """``picks`` moved, one slot at a time, to a cheaper candidate until under ``budget_ms`` [ms]:
        each move the one losing the least log-probability per ms saved (needs budget >= fastest)."""
        picks = np.array(picks)
        log_p = np.log(np.where(self.mask, probs, 1.0) + 1e-12)
        rows = np.arange(len(picks))
        while self.latency_ms(picks) > budget_ms:
            saved = self.table[rows, picks][:, None] - self.table
            lost = log_p[rows, picks][:, None] - log_p
            cost = np.where(self.mask & (saved > 1e-12), lost / np.maximum(saved, 1e-12), np.inf)
            slot, candidate = np.unravel_index(np.argmin(cost), cost.shape)
            picks[slot] = candidate
        return picks

    def choice(self, picks) -> list[int]:
        """The space's choice vector for one candidate index per slot."""
        out, i = [0], 0
        for stage in self.space.stages:
            out += [0, 0]
            for _ in range(stage.depths[0]):
                out.append(self.slots[i].candidates[int(picks[i])][0])
                i += 1
        return out

    def spec(self, picks) -> ArchSpec:
        return self.space.decode(self.choice(picks))

    def latency_ms(self, picks) -> float:
        """Latency [ms] of one candidate index per slot, from the same tables as ``expected_ms``."""
        return float(self._predictor.predict(np.array([self.choice(picks)]))[0])

    def describe(self, picks) -> str:
        """Compact per-stage op list, e.g. ``k3e6 k5e3 skip | ...``."""
        words, i = [], 0
        for stage in self.space.stages:
            ops = []
            for _ in range(stage.depths[0]):
                op, k, e = self.slots[i].candidates[int(picks[i])]
                ops.append("skip" if k == SKIP else f"k{self.slots[i].kernels[k]}e{self.slots[i].expands[e]:g}")
                i += 1
            words.append(" ".join(ops))
        return " | ".join(words)


def _slot(space: str, stage: int, layer: int, ops: tuple[str, ...], skip_allowed: bool, left_out: set) -> Slot:
    blocks = {o: decode_block(f"{t}_c8") for o, t in enumerate(ops)}
    shared = {o: b for o, b in blocks.items() if b.kind == "ir" and b.groups == 1}
    left_out.update(ops[o] for o, b in blocks.items() if b.kind == "ir" and b.groups != 1)
    unknown = [ops[o] for o, b in blocks.items() if b.kind not in ("ir", "skip")]
    if unknown:
        raise SearchError(f"space {space!r}: the search supernet has no op {unknown[0]!r}")
    kernels = tuple(sorted({b.kernel for b in shared.values()}))
    expands = tuple(sorted({b.expand for b in shared.values()}))
    pairs = {(b.kernel, b.expand): o for o, b in shared.items()}
    rest = {(b.se, b.act, b.residual) for b in shared.values()}
    if len(rest) != 1 or len(pairs) != len(shared) or set(pairs) != set(itertools.product(kernels, expands)):
        raise SearchError(f"space {space!r}, stage {stage + 1}: its ir ops must be every kernel x expand pair "
                          "once and differ in nothing else to share weights")
    candidates = [(pairs[(k, e)], ki, ei) for ki, k in enumerate(kernels) for ei, e in enumerate(expands)]
    if skip_allowed:
        candidates += [(o, SKIP, 0) for o, b in blocks.items() if b.kind == "skip"]
    return Slot(stage, layer, kernels, expands, tuple(candidates), skip_allowed)
