"""Evolutionary search for the most accurate sub-network within a latency budget (numpy only).

Once-for-All's ``EvolutionFinder.run_evolution_search`` (ofa/nas/search_algorithm/evolution.py at
mit-han-lab/once-for-all@80a2e26ef04426213ad836b056234914d33a3c36), its defaults kept: a
population of 100 valid sub-networks; for 500 generations the best quarter are parents, half
the next population are mutants of random parents (kernel/expand and depth genes redrawn with
probability 0.1, the resolution with 0.5) and the rest crossovers of two random parents. A child
over the budget is drawn again, as there; here whole generations are drawn as arrays, a child
still over the budget after ``RETRIES`` redraws is replaced by its (valid) parent, and accuracy
and latency are predicted for all rows at once.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgetailor.errors import SupernetError
from edgetailor.supernet.genome import Genomes

Scores = Callable[[np.ndarray], np.ndarray]  # rows -> one value per row
RETRIES = 20


@dataclass(frozen=True)
class EvolutionOptions:
    """evolution.py's hyper-parameters (kwargs defaults at 80a2e26)."""

    population: int = 100           # population_size
    generations: int = 500          # max_time_budget
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5
    arch_mutate_prob: float = 0.1
    resolution_mutate_prob: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class EvolutionResult:
    row: np.ndarray          # the best sub-network's genome
    accuracy: float          # predicted top-1 [%]
    latency_ms: float        # predicted on the device
    evaluated: int           # sub-networks scored (accuracy and latency)
    seconds: float

    @property
    def per_second(self) -> float:
        return self.evaluated / max(self.seconds, 1e-9)


def fastest(layout: Genomes, latency: Scores) -> tuple[np.ndarray, float]:
    """The smallest sub-network at the lowest resolution, and its latency [ms]."""
    row = layout.row(layout.elastic.smallest(layout.resolutions[0]))
    return row, float(latency(row[None])[0])


def _valid(make: Callable[[], np.ndarray], latency: Scores, budget_ms: float, fallback: np.ndarray | None):
    """Rows from ``make`` redrawn until within budget (at most RETRIES times), then ``fallback``'s."""
    rows = make()
    ms = latency(rows)
    bad = ms > budget_ms
    for _ in range(RETRIES):
        if not bad.any():
            break
        fresh = make()
        rows[bad] = fresh[bad]
        ms[bad] = latency(rows[bad])
        bad = ms > budget_ms
    if bad.any():
        if fallback is None:
            rows, ms = rows[~bad], ms[~bad]
        else:
            rows[bad], ms[bad] = fallback[bad], latency(fallback[bad])
    return rows, ms


def evolve(layout: Genomes, accuracy: Scores, latency: Scores, budget_ms: float,
           options: EvolutionOptions = EvolutionOptions(),
           progress: Callable[[int, float], None] | None = None) -> EvolutionResult:
    """The sub-network with the highest predicted accuracy whose predicted latency <= ``budget_ms``."""
    started, rng = time.perf_counter(), np.random.default_rng(options.seed)
    low_row, low_ms = fastest(layout, latency)
    if low_ms > budget_ms:
        raise SupernetError(f"no sub-network meets {budget_ms:g} ms: the fastest, "
                            f"{layout.subnet(low_row).describe()}, is predicted at {low_ms:.1f} ms")
    size = options.population
    parents_size = max(1, int(round(options.parent_ratio * size)))
    mutants = int(round(options.mutation_ratio * size))
    population = np.empty((0, layout.width), np.int64)
    population_ms = np.empty(0)
    for _ in range(RETRIES):  # the first population: random sub-networks within the budget
        rows, ms = _valid(lambda: layout.random(rng, size), latency, budget_ms, None)
        population, population_ms = np.concatenate([population, rows]), np.concatenate([population_ms, ms])
        if len(population) >= size:
            break
    if not len(population):
        population, population_ms = low_row[None], np.array([low_ms])
    population, population_ms = population[:size], population_ms[:size]
    scores = accuracy(population)
    evaluated = len(population)
    for generation in range(options.generations):
        best = np.argsort(-scores, kind="stable")[:parents_size]
        parents, parents_ms, parent_scores = population[best], population_ms[best], scores[best]
        if progress:
            progress(generation, float(parent_scores[0]))
        first = parents[rng.integers(len(parents), size=mutants)]
        mutated, mutated_ms = _valid(lambda: layout.mutate(rng, first, options.arch_mutate_prob,
                                                           options.resolution_mutate_prob),
                                     latency, budget_ms, first)
        a = parents[rng.integers(len(parents), size=size - mutants)]
        b = parents[rng.integers(len(parents), size=size - mutants)]
        crossed, crossed_ms = _valid(lambda: layout.crossover(rng, a, b), latency, budget_ms, a)
        children = np.concatenate([mutated, crossed])
        children_scores = accuracy(children)
        evaluated += len(children)
        population = np.concatenate([parents, children])
        population_ms = np.concatenate([parents_ms, mutated_ms, crossed_ms])
        scores = np.concatenate([parent_scores, children_scores])
    top = int(np.argmax(scores))
    return EvolutionResult(population[top], float(scores[top]), float(population_ms[top]), evaluated,
                           time.perf_counter() - started)
