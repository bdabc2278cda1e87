"""Sub-networks as rows of an integer array, for search at numpy speed (pure Python, no TensorFlow).

A ``Genomes`` layout reads one row as ``[resolution, depth per stage, kernel per slot, expand per
slot]``, each an index into that dimension's choices. Rows convert to the space's choice vectors
(for ``latency.space.SpacePredictor``), to ``Subnet``s and to Once-for-All's predictor features:
one-hot resolution, and per layer slot one-hot kernel and one-hot expand, all zero for a slot past
its stage's depth (``MobileNetArchEncoder.arch2feature``, ofa/nas/accuracy_predictor/arch_encoder.py
at mit-han-lab/once-for-all@80a2e26ef04426213ad836b056234914d33a3c36). Mutation and crossover
follow that file's ``mutate_resolution`` / ``mutate_arch`` and ``evolution.py``'s
``crossover_sample``: a slot's kernel and expand are redrawn together, every gene of a child is
taken from either parent.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from edgetailor.arch.spaces import Space
from edgetailor.errors import SupernetError
from edgetailor.latency.space import SpacePredictor
from edgetailor.supernet.subnet import ElasticSpace, Subnet


class Genomes:
    """The row layout of ``elastic``'s sub-networks at ``resolutions`` [px]."""

    def __init__(self, elastic: ElasticSpace, resolutions: tuple[int, ...]):
        if not resolutions or any(r % 8 or not 32 <= r <= 1024 for r in resolutions):
            raise SupernetError(f"resolutions must be multiples of 8 in 32..1024 px (got {list(resolutions)})")
        self.elastic, self.resolutions = elastic, tuple(sorted(set(int(r) for r in resolutions)))
        stages = elastic.stages
        self.n_stages, self.n_slots = len(stages), elastic.slots
        self.slot_stage = np.concatenate([[s] * max(stage.depths) for s, stage in enumerate(stages)])
        self.slot_position = np.concatenate([np.arange(max(stage.depths)) for stage in stages])
        self.choices = np.array([len(self.resolutions)] + [len(s.depths) for s in stages]
                                + [len(stages[s].kernels) for s in self.slot_stage]
                                + [len(stages[s].expands) for s in self.slot_stage])
        # one-hot feature offsets: resolution, then kernels and expands per slot
        self._k_offsets = len(self.resolutions) + np.concatenate(
            [[0], np.cumsum([len(stages[s].kernels) for s in self.slot_stage])[:-1]]).astype(int)
        n_kernel = sum(len(stages[s].kernels) for s in self.slot_stage)
        self._e_offsets = len(self.resolutions) + n_kernel + np.concatenate(
            [[0], np.cumsum([len(stages[s].expands) for s in self.slot_stage])[:-1]]).astype(int)
        self.n_features = len(self.resolutions) + n_kernel + sum(len(stages[s].expands) for s in self.slot_stage)
        self._depths = [np.asarray(stage.depths) for stage in stages]
        # choice vector: op index of (kernel index, expand index) per slot
        self._op_index = [np.array([[stage.op_index(k, e) for e in stage.expands] for k in stage.kernels])
                          for stage in stages]

    @property
    def width(self) -> int:
        return len(self.choices)

    def _columns(self, genomes: np.ndarray):
        g = np.atleast_2d(np.asarray(genomes, np.int64))
        s, n = self.n_stages, self.n_slots
        return g[:, 0], g[:, 1:1 + s], g[:, 1 + s:1 + s + n], g[:, 1 + s + n:]

    def active(self, genomes: np.ndarray) -> np.ndarray:
        """[n, slots] True where a slot runs (its position is below its stage's depth)."""
        _, depth_index, _, _ = self._columns(genomes)
        depths = np.stack([self._depths[s][depth_index[:, s]] for s in range(self.n_stages)], axis=1)
        return self.slot_position[None, :] < depths[:, self.slot_stage]

    def random(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniformly random rows."""
        return (rng.random((n, self.width)) * self.choices).astype(np.int64)

    def mutate(self, rng: np.random.Generator, genomes: np.ndarray, arch_prob: float,
               resolution_prob: float) -> np.ndarray:
        """Each row with its resolution redrawn with ``resolution_prob``, each stage's depth and
        each slot's (kernel, expand) pair with ``arch_prob``."""
        g = np.array(genomes, np.int64, copy=True)
        fresh = self.random(rng, len(g))
        s, n = self.n_stages, self.n_slots
        redraw = np.empty(g.shape, bool)
        redraw[:, 0] = rng.random(len(g)) < resolution_prob
        redraw[:, 1:1 + s] = rng.random((len(g), s)) < arch_prob
        slot = rng.random((len(g), n)) < arch_prob
        redraw[:, 1 + s:1 + s + n] = slot
        redraw[:, 1 + s + n:] = slot
        return np.where(redraw, fresh, g)

    def crossover(self, rng: np.random.Generator, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Rows whose every gene comes from ``first`` or ``second`` with equal chance."""
        return np.where(rng.random(np.shape(first)) < 0.5, first, second)

    def features(self, genomes: np.ndarray) -> np.ndarray:
        """[n, n_features] float32 one-hot encoding (Once-for-All's ``arch2feature``)."""
        r, _, k, e = self._columns(genomes)
        rows = np.arange(len(r))
        out = np.zeros((len(r), self.n_features), np.float32)
        out[rows, r] = 1.0
        active = self.active(genomes)
        row_index, slot_index = np.nonzero(active)
        out[row_index, self._k_offsets[slot_index] + k[row_index, slot_index]] = 1.0
        out[row_index, self._e_offsets[slot_index] + e[row_index, slot_index]] = 1.0
        return out

    def space(self) -> Space:
        """The space with these resolutions, for ``SpacePredictor`` (its resolution index = column 0)."""
        return dataclasses.replace(self.elastic.space, resolutions=self.resolutions)

    def choice_vectors(self, genomes: np.ndarray) -> np.ndarray:
        """Rows as choice vectors of ``space()`` (``Space.dims`` layout; width index 0)."""
        r, d, k, e = self._columns(genomes)
        columns = [r]
        for s, stage in enumerate(self.elastic.stages):
            slots = np.nonzero(self.slot_stage == s)[0]
            columns += [d[:, s], np.zeros_like(r)]
            columns += [self._op_index[s][k[:, slot], e[:, slot]] for slot in slots]
        return np.stack(columns, axis=1)

    def subnet(self, row: np.ndarray) -> Subnet:
        r, d, k, e = (c[0] for c in self._columns(row))
        stages = self.elastic.stages
        return Subnet(self.resolutions[r], tuple(stages[s].depths[d[s]] for s in range(self.n_stages)),
                      tuple(stages[self.slot_stage[i]].kernels[k[i]] for i in range(self.n_slots)),
                      tuple(stages[self.slot_stage[i]].expands[e[i]] for i in range(self.n_slots)))

    def row(self, subnet: Subnet) -> np.ndarray:
        """The row of ``subnet``, whose resolution must be one of this layout's."""
        self.elastic.check(subnet)
        if subnet.resolution not in self.resolutions:
            raise SupernetError(f"resolution {subnet.resolution} px is not one of {list(self.resolutions)}")
        stages = self.elastic.stages
        return np.array([self.resolutions.index(subnet.resolution)]
                        + [stages[s].depths.index(subnet.depths[s]) for s in range(self.n_stages)]
                        + [stages[self.slot_stage[i]].kernels.index(subnet.kernels[i]) for i in range(self.n_slots)]
                        + [stages[self.slot_stage[i]].expands.index(subnet.expands[i]) for i in range(self.n_slots)],
                        np.int64)


class RowLatency:
    """Latency [ms] of genome rows in one fancy-indexing pass: ``SpacePredictor``'s per-slot tables
    re-indexed by (resolution, kernel, expand), for a supernet's single-width space."""

    def __init__(self, layout: Genomes, predictor: SpacePredictor):
        if predictor.space.resolutions != layout.resolutions:
            raise SupernetError("the latency predictor was built for other resolutions")
        self.layout = layout
        self.fixed = predictor.overhead + predictor.stem_ms + predictor.head_ms[:, 0]  # [resolution]
        stages = layout.elastic.stages
        n_k = max(len(s.kernels) for s in stages)
        n_e = max(len(s.expands) for s in stages)
        self.table = np.zeros((layout.n_slots, len(layout.resolutions), n_k, n_e))
        for slot, (s, _, _, _, _, lut) in enumerate(predictor.slots):
            for k in range(len(stages[s].kernels)):
                for e in range(len(stages[s].expands)):
                    self.table[slot, :, k, e] = lut[:, 0, 0, layout._op_index[s][k, e]]

    def __call__(self, genomes: np.ndarray) -> np.ndarray:
        r, _, k, e = self.layout._columns(genomes)
        slots = np.arange(self.layout.n_slots)[None, :]
        per_slot = self.table[slots, r[:, None], k, e]
        return self.fixed[r] + np.where(self.layout.active(genomes), per_slot, 0.0).sum(axis=1)
