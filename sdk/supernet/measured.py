"""Measured sub-networks and the accuracy predictor fitted on them, kept in the checkpoint folder.

``measure`` scores sub-networks (the largest, the smallest, then seeded random ones at the trained
resolutions), each with inherited weights and recalibrated batch norm on the held-out split, and
appends each result to ``measured.json`` as it comes, so an interrupted run keeps what it measured
and a rerun continues. Results belong to one set of weights: after more training they are
discarded. ``fit_predictor`` fits Once-for-All's MLP on them and writes
``accuracy_predictor.npz``; ``load_predictor`` reads it back for the search.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgetailor._io import write_json
from edgetailor.errors import SupernetError
from edgetailor.supernet import data
from edgetailor.supernet.checkpoint import State
from edgetailor.supernet.genome import Genomes
from edgetailor.supernet.predictor import AccuracyPredictor, fit
from edgetailor.supernet.subnet import ElasticSpace, Subnet

MEASURED = "measured.json"
PREDICTOR = "accuracy_predictor.npz"
FORMAT = "edgetailor-measured-subnets/1"


@dataclass(frozen=True)
class Measurement:
    subnet: Subnet
    top1: float        # held-out top-1 [%] after batch-norm recalibration
    val_images: int
    seconds: float

    def to_json(self) -> dict:
        return {"subnet": asdict(self.subnet), "top1": self.top1, "val_images": self.val_images,
                "seconds": self.seconds}


def layout(elastic: ElasticSpace, state: State) -> Genomes:
    """Sub-networks at the resolutions the supernet was trained at."""
    return Genomes(elastic, state.resolutions)


def fingerprint(elastic: ElasticSpace, state: State) -> str:
    """What a predictor is valid for: the space, the resolutions and these weights."""
    text = repr((elastic.fingerprint(), state.resolutions, state.weights))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read(folder: Path, state: State) -> list[Measurement]:
    """The measurements of ``state``'s weights (none when the file is missing or from older weights)."""
    path = Path(folder) / MEASURED
    if not path.exists():
        return []
    try:
        document = json.loads(path.read_text())
        if document["format"] != FORMAT:
            raise ValueError("unknown format")
        if document["weights"] != state.weights:
            return []
        return [Measurement(Subnet(**row["subnet"]), row["top1"], row["val_images"], row["seconds"])
                for row in document["subnets"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise SupernetError(f"{path} is damaged ({exc}); remove it and measure again") from None


def planned(genomes: Genomes, count: int, seed: int) -> list[Subnet]:
    """The sub-networks ``measure`` scores, in order: largest, smallest, then seeded random ones."""
    elastic, resolutions = genomes.elastic, genomes.resolutions
    subnets = [elastic.largest(resolutions[-1]), elastic.smallest(resolutions[0])]
    rng = np.random.default_rng(seed)
    while len(subnets) < count:
        subnets.append(genomes.subnet(genomes.random(rng, 1)[0]))
    return subnets[:count]


def measure(folder: Path, net, state: State, source: data.Source, count: int, seed: int = 0,
            progress: Callable[[int, int, Measurement | None], None] | None = None) -> list[Measurement]:
    """``count`` measured sub-networks in all, continuing from those already in ``measured.json``."""
    from edgetailor.supernet.evaluate import evaluate

    done = read(folder, state)
    todo = planned(layout(net.elastic, state), count, seed)
    for i, subnet in enumerate(todo):
        if i < len(done):
            continue
        if progress:
            progress(i, count, None)
        started = time.perf_counter()
        scored = evaluate(net, subnet, source)
        done.append(Measurement(subnet, scored.top1, scored.val_images, round(time.perf_counter() - started, 2)))
        write_json(Path(folder) / MEASURED, {"format": FORMAT, "weights": state.weights,
                                             "subnets": [m.to_json() for m in done]})
        if progress:
            progress(i + 1, count, done[-1])
    return done


def fit_predictor(folder: Path, elastic: ElasticSpace, state: State, measured: list[Measurement],
                  seed: int = 0) -> AccuracyPredictor:
    """Fit the accuracy predictor on ``measured`` and write it into ``folder``."""
    genomes = layout(elastic, state)
    rows = np.stack([genomes.row(m.subnet) for m in measured])
    predictor = fit(genomes.features(rows), np.array([m.top1 for m in measured]),
                    fingerprint(elastic, state), seed=seed)
    predictor.save(Path(folder) / PREDICTOR)
    return predictor


def load_predictor(folder: Path, elastic: ElasticSpace, state: State) -> AccuracyPredictor:
    path = Path(folder) / PREDICTOR
    if not path.exists():
        raise SupernetError(f"checkpoint {folder} has no accuracy predictor; run "
                            f"`edgetailor supernet predictor {folder}` first")
    return AccuracyPredictor.load(path, fingerprint(elastic, state))
