"""Block benchmarking by Pareto fronts: random networks of one block kind, compared by their fronts.

The study compares block types, not networks: for each block type it samples random networks
that share one macro-structure (``MACRO``: the stem, four stride-2 stages with fixed channel and
depth ranges, the head) and differ only in the blocks inside the stages, prices every network on
a device profile and proxy-trains it, and then summarises the type by the Pareto front of its
networks (latency down, accuracy up) and the hypervolume that front dominates, measured from one
reference point shared by every type. Pure Python: the training evaluator is passed in
(``edgetailor.tasks.classification.blocks_benchmark``).

Block types (``KINDS``) and the grammar kinds they are made of: ``ir`` (MBConv), ``fused``
(fused-MBConv), ``ds`` (depthwise separable), ``ghost``, ``shuffle`` (ShuffleNetV2 units),
``xblock`` (RegNet X), ``edgenext`` (``convenc`` + ``sdta``, downsampling by ``ln,patch_s2``), and
``efficientformerv2`` (``ffn`` + ``attn``, downsampling by a stride-2 ``conv`` + BN). ``gghost``
(a whole stage per block) and the NASNet cells are left out: they are not blocks a stage can be
filled with one at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from edgetailor.arch.spec import ArchSpec, Block
from edgetailor.choose.candidate import pareto_mask
from edgetailor.errors import SearchError

CHANNEL_STEP = 16  # stage widths are multiples of 16: xblock group widths and attention heads divide them
STRIDE = 32        # stem x four stages: the resolution must be a multiple of it (EdgeNeXt's patch convs)


@dataclass(frozen=True)
class StageRange:
    """One stage of the shared macro-structure: stride-2 entry, output channels and depth ranges."""

    channels: tuple[int, int]  # inclusive, multiples of CHANNEL_STEP
    depth: tuple[int, int]     # blocks, inclusive


@dataclass(frozen=True)
class Macro:
    """What every benchmarked network shares; only the blocks inside the stages vary."""

    stem: tuple[Block, ...] = (Block("conv", kernel=3, stride=2, channels=16, act="relu"),)
    stages: tuple[StageRange, ...] = (StageRange((16, 48), (1, 2)), StageRange((32, 80), (1, 3)),
                                      StageRange((64, 160), (2, 4)), StageRange((128, 256), (1, 3)))
    head: tuple[Block, ...] = (Block("pool"),)


MACRO = Macro()


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _ir(rng, channels, depth, stage):
    return [Block("ir", kernel=_pick(rng, (3, 5, 7)), stride=2 if i == 0 else 1, expand=_pick(rng, (3, 4, 6)),
                  channels=channels, act="relu") for i in range(depth)]


def _fused(rng, channels, depth, stage):
    return [Block("fused", kernel=_pick(rng, (3, 5)), stride=2 if i == 0 else 1, expand=_pick(rng, (1, 2, 4)),
                  channels=channels, act="relu") for i in range(depth)]


def _ds(rng, channels, depth, stage):
    return [Block("ds", kernel=_pick(rng, (3, 5, 7)), stride=2 if i == 0 else 1, channels=channels, act="relu")
            for i in range(depth)]


def _ghost(rng, channels, depth, stage):
    return [Block("ghost", kernel=_pick(rng, (3, 5)), stride=2 if i == 0 else 1, expand=_pick(rng, (2, 3, 4, 6)),
                  channels=channels) for i in range(depth)]


def _shuffle(rng, channels, depth, stage):
    return [Block("shuffle", kernel=_pick(rng, (3, 5, 7)), stride=2 if i == 0 else 1, channels=channels,
                  act="relu") for i in range(depth)]


def _xblock(rng, channels, depth, stage):
    width = _pick(rng, (8, 16))
    return [Block("xblock", stride=2 if i == 0 else 1, channels=channels, group_width=width) for i in range(depth)]


def _edgenext(rng, channels, depth, stage):
    blocks = [Block("ln"), Block("patch", stride=2, channels=channels)]
    blocks += [Block("convenc", kernel=_pick(rng, (3, 5, 7, 9)), expand=_pick(rng, (2, 3, 4)), channels=channels)
               for _ in range(depth)]
    if stage >= 1 and rng.random() < 0.5:  # EdgeNeXt ends stages 2-4 with one SDTA encoder
        blocks[-1] = Block("sdta", expand=4, channels=channels, heads=4, scales=_pick(rng, (2, 3)))
    return blocks


def _efficientformerv2(rng, channels, depth, stage):
    blocks = [Block("conv", kernel=3, stride=2, channels=channels, act="linear")]
    for _ in range(depth):
        if stage >= 2 and rng.random() < 0.5:  # EfficientFormerV2 mixes attention into stages 3-4
            blocks.append(Block("attn", expand=4, channels=channels, heads=4, key_dim=16))
        else:
            blocks.append(Block("ffn", kernel=3, expand=_pick(rng, (3, 4)), channels=channels))
    return blocks


KINDS: dict[str, Callable] = {"ir": _ir, "fused": _fused, "ds": _ds, "ghost": _ghost, "shuffle": _shuffle,
                              "xblock": _xblock, "edgenext": _edgenext, "efficientformerv2": _efficientformerv2}


def parse_kinds(text: str) -> tuple[str, ...]:
    """``"ir,ghost"`` -> ``("ir", "ghost")``; an unknown or repeated type is one error line."""
    kinds = tuple(part.strip() for part in text.split(",") if part.strip())
    if not kinds:
        raise SearchError(f"--blocks needs at least one block type; known: {', '.join(KINDS)}")
    for kind in kinds:
        if kind not in KINDS:
            raise SearchError(f"unknown block type {kind!r}; known: {', '.join(KINDS)}")
    if len(set(kinds)) != len(kinds):
        raise SearchError(f"--blocks names a block type twice: {text!r}")
    return kinds


def check_resolution(resolution: int) -> None:
    if resolution < STRIDE or resolution % STRIDE:
        raise SearchError(f"the resolution must be a positive multiple of {STRIDE} px (got {resolution})")


def random_network(kind: str, index: int, seed: int, resolution: int = 224, macro: Macro = MACRO) -> ArchSpec:
    """Network ``index`` of block type ``kind``: depths, widths and block settings drawn at random.

    Deterministic in (kind, index, seed): a resumed run redraws exactly the networks it skips.
    """
    check_resolution(resolution)
    if kind not in KINDS:
        raise SearchError(f"unknown block type {kind!r}; known: {', '.join(KINDS)}")
    rng = np.random.default_rng([seed, index, *kind.encode()])
    stages = []
    for position, stage in enumerate(macro.stages):
        low, high = stage.channels
        channels = CHANNEL_STEP * int(rng.integers(low // CHANNEL_STEP, high // CHANNEL_STEP + 1))
        depth = int(rng.integers(stage.depth[0], stage.depth[1] + 1))
        stages.append(tuple(KINDS[kind](rng, channels, depth, position)))
    return ArchSpec(stem=macro.stem, stages=tuple(stages), head=macro.head, resolution=resolution)


def front(latency_ms: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of the Pareto-optimal points (lower latency, higher accuracy), fastest first."""
    mask = pareto_mask(accuracy, latency_ms)
    return sorted(np.flatnonzero(mask).tolist(), key=lambda i: (latency_ms[i], -accuracy[i]))


def hypervolume(latency_ms: Sequence[float], accuracy: Sequence[float], ref_latency_ms: float,
                ref_accuracy: float = 0.0) -> float:
    """Area (ms x %) dominated by the points and bounded by the reference point, exact in 2-D.

    Points at or beyond the reference (slower, or less accurate) add nothing.
    """
    points = sorted((float(l), float(a)) for l, a in zip(latency_ms, accuracy)
                    if l < ref_latency_ms and a > ref_accuracy)
    area, best = 0.0, ref_accuracy
    # left to right: between consecutive latencies the dominated height is the best accuracy so far
    for position, (latency, acc) in enumerate(points):
        best = max(best, acc)
        right = points[position + 1][0] if position + 1 < len(points) else ref_latency_ms
        area += (right - latency) * (best - ref_accuracy)
    return area


@dataclass(frozen=True)
class KindSummary:
    """One block type's row of the table."""

    kind: str
    networks: int
    front: tuple[int, ...]          # indices into that kind's results, fastest first
    hypervolume: float              # ms x accuracy points, from the shared reference
    best_under_median: float | None  # best accuracy (%) among networks at most the median latency (ms)

    def to_dict(self) -> dict:
        return {"block": self.kind, "networks": self.networks, "front_size": len(self.front),
                "front": list(self.front), "hypervolume": round(self.hypervolume, 3),
                "best_accuracy_under_median_latency": self.best_under_median}


def summarise(results: dict[str, list[dict]]) -> tuple[list[KindSummary], dict]:
    """Per kind: front, hypervolume and best accuracy under the median latency of all networks.

    ``results[kind]`` holds records with ``latency_ms`` and ``accuracy``. The reference point is
    shared: (1.1 x the slowest network of any kind, accuracy 0); the median is over all networks.
    """
    every = [r for records in results.values() for r in records]
    if not every:
        raise SearchError("no benchmarked networks to summarise")
    reference = {"latency_ms": 1.1 * max(r["latency_ms"] for r in every), "accuracy": 0.0}
    median = float(np.median([r["latency_ms"] for r in every]))
    rows = []
    for kind, records in results.items():
        latency = [r["latency_ms"] for r in records]
        accuracy = [r["accuracy"] for r in records]
        under = [a for l, a in zip(latency, accuracy) if l <= median]
        rows.append(KindSummary(kind, len(records), tuple(front(latency, accuracy)) if records else (),
                                hypervolume(latency, accuracy, reference["latency_ms"]),
                                max(under) if under else None))
    return rows, {**reference, "median_latency_ms": median}


def table(rows: list[KindSummary], reference: dict) -> str:
    """The summary as a Markdown table, best hypervolume first."""
    lines = [f"reference point: {reference['latency_ms']:.2f} ms, accuracy {reference['accuracy']:g} %; "
             f"median latency {reference['median_latency_ms']:.2f} ms",
             "| block | networks | front size | hypervolume (ms x %) | best top-1 under median latency (%) |",
             "|---|---:|---:|---:|---:|"]
    for row in sorted(rows, key=lambda r: -r.hypervolume):
        best = "-" if row.best_under_median is None else f"{row.best_under_median:.1f}"
        lines.append(f"| {row.kind} | {row.networks} | {len(row.front)} | {row.hypervolume:.1f} | {best} |")
    return "\n".join(lines) + "\n"
