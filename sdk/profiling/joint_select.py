"""The joint fit's regularisation chosen by cross-validation, and scored on folds it never saw.

Two constants shape the joint fit: the source ridge (how far a publication's own factor may move
from 0, in model rows) and the shrink (how far a (device, setting)'s own cost shape may move from
the shared one). ``choose`` picks them on the training rows alone, by an inner
leave-one-family-out over those rows' model families (mean absolute log error of every model row,
every device). ``nested_held_out`` is the honest out-of-sample figure: for each held-out family
the constants are chosen again without it (nested cross-validation), so the reported error
never picked its own constants.
"""
from __future__ import annotations

import itertools

import numpy as np

from edgetailor.profiling import joint

GRID = {"source_ridge": (1.0, 4.0, 16.0, 64.0), "shrink": (0.3, 3.0, 30.0, 300.0)}


def _model_rows(design: joint.Design) -> np.ndarray:
    return np.array([r.sample.kind == "model" for r in design.rows])


def inner_error(design: joint.Design, train: np.ndarray, source_ridge: float, shrink: float) -> float:
    """Mean abs log error (natural log) of the training model rows, each predicted by a fit on
    ``train`` without its family; rows no such fit can price are left out."""
    models = _model_rows(design) & train
    errors = []
    for family in sorted(set(design.family[models])):
        held = models & (design.family == family)
        fitted = joint.fit(design, train & (design.family != family), shrink, source_ridge)
        predicted = fitted.predict(design, np.where(held)[0], with_source=False)
        priced = ~np.isnan(predicted)
        errors += list(np.abs(np.log(predicted[priced] / design.y[held][priced])))
    return float(np.mean(errors))


def choose(design: joint.Design, train: np.ndarray) -> tuple[float, float]:
    """(source_ridge, shrink) of ``GRID`` with the lowest inner error on ``train``."""
    scores = {pair: inner_error(design, train, *pair)
              for pair in itertools.product(GRID["source_ridge"], GRID["shrink"])}
    return min(scores, key=scores.get)


def nested_held_out(design: joint.Design, index: np.ndarray,
                    progress=None) -> tuple[np.ndarray, dict[str, tuple[float, float]]]:
    """Leave-one-family-out predictions (ms, NaN where unpriced) of rows ``index``, each family's
    fit using the constants ``choose`` picked without that family; and those constants."""
    out = np.full(len(index), np.nan)
    chosen = {}
    for family in sorted(set(design.family[index])):
        train = design.family != family
        chosen[family] = choose(design, train)
        fitted = joint.fit(design, train, chosen[family][1], chosen[family][0])
        mine = design.family[index] == family
        out[mine] = fitted.predict(design, index[mine], with_source=False)
        if progress is not None:
            progress(family, chosen[family])
    return out, chosen
