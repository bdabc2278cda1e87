"""Fitting a base kernel predictor to a new device's kernel timings (``edgetailor.profiling.adapt``).

The base prices a kernel as ``baseline(x) x exp(trees(x))``. Per kernel type one of three fits,
whichever predicts the type's measurements best under ``FOLDS``-fold cross-validation:

- ``type factor`` (``SCALE_MIN`` measurements or more): the base baseline times one factor;
- ``refit`` (``REFIT_MIN`` or more): the trees kept, the baseline's coefficients refitted by
  non-negative least squares on the relative error (LitePred's idea: a device differs smoothly);
- ``refit + trees`` (``TREES_MIN`` or more): that, plus shallow gradient-boosted trees on the
  remaining log error, joined to the base trees. Needed where the new setting changes a type's
  shape, not its scale: int8 7x7 depthwise runs ~4x slower here than the float trees' shape says
  (a proxyless-space net's depthwise kernels measured 59.9 ms, refit baseline 16.2 ms).

A type with fewer measurements takes one global factor fitted on every measurement. Whole models
timed on the new device (optional) then refit what kernels cost inside a network (``whole_models``:
the predictor's in-network terms, or with few models one factor), each only when it prices models
left out better. One factor cannot fix what a factor does not describe: in int8 here a small network costs ~15-20 us per
kernel more than its kernels timed alone (efficientnet-w0.9-r112: 4.74 ms of kernels, 6.45 ms
whole), a large one up to 8 % less (mobilenet_v3_large-w1.25-r272: 31.4 vs 29.0 ms).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from edgetailor.arch.layers import walk
from edgetailor.arch.spec import decode
from edgetailor.errors import ProfileError, SpecError
from edgetailor.latency.kernel_predictor import KernelPredictor, TreeEnsemble, basis, baseline_ms, detect_kernels

SCALE_MIN = 3
REFIT_MIN = 6    # four coefficients
TREES_MIN = 12   # and trees on top
FOLDS = 5
# Depth-2 trees, few and strongly shrunk: a correction of the base shape from a dozen or so points,
# not a new model (scikit-learn GradientBoostingRegressor).
CORRECTION = {"n_estimators": 40, "max_depth": 2, "learning_rate": 0.1, "min_samples_leaf": 2}

# A fit takes the training rows and returns (baseline coefficients, a fitted correction or None).
Fit = Callable[[np.ndarray], tuple[np.ndarray, object]]


def log_factor(measured: np.ndarray, predicted: np.ndarray) -> float:
    """The factor minimising the squared log error: the geometric mean of measured / predicted."""
    return float(np.exp(np.mean(np.log(measured / predicted))))


def _refit(x: np.ndarray, ms: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Non-negative baseline coefficients with ``basis(x) . c x shape ~ ms``, relative error."""
    from scipy.optimize import nnls

    terms = basis(x) * shape[:, None]
    coefficients, _ = nnls(terms / ms[:, None], np.ones(len(ms)), maxiter=50 * terms.shape[1])
    return coefficients


def _refit_trees(x: np.ndarray, ms: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, object]:
    from sklearn.ensemble import GradientBoostingRegressor

    coefficients = _refit(x, ms, shape)
    model = GradientBoostingRegressor(**CORRECTION, random_state=0)
    model.fit(x, np.log(ms / (baseline_ms(coefficients, x) * shape)))
    return coefficients, model


def _predict(fitted: tuple[np.ndarray, object], x: np.ndarray, shape: np.ndarray) -> np.ndarray:
    coefficients, model = fitted
    correction = 1.0 if model is None else np.exp(model.predict(x))
    return baseline_ms(coefficients, x) * shape * correction


def _cross_validated_pct(fit: Fit, x: np.ndarray, ms: np.ndarray, shape: np.ndarray) -> float:
    """Mean absolute % error of each measurement predicted by ``fit`` on the other folds."""
    folds = np.arange(len(ms)) % min(FOLDS, len(ms))
    errors = np.zeros(len(ms))
    for fold in np.unique(folds):
        held, rows = folds == fold, folds != fold
        errors[held] = np.abs(_predict(fit(np.flatnonzero(rows)), x[held], shape[held]) / ms[held] - 1)
    return 100 * float(errors.mean())


def joined(base: TreeEnsemble, correction) -> TreeEnsemble:
    """One ensemble predicting ``base``'s value plus a fitted scikit-learn correction's."""
    from edgetailor.profiling.kernels_fit import export

    extra = export(correction)
    size = len(base.left)
    shift = lambda links: np.where(links < 0, -1, links + size).astype(np.int32)  # noqa: E731
    return TreeEnsemble(
        np.concatenate([base.feature, extra.feature]), np.concatenate([base.threshold, extra.threshold]),
        np.concatenate([base.left, shift(extra.left)]), np.concatenate([base.right, shift(extra.right)]),
        np.concatenate([base.value * base.scale / base.divisor, extra.value * extra.scale / extra.divisor]),
        np.concatenate([base.roots, extra.roots + size]).astype(np.int32),
        base.offset / base.divisor + extra.offset / extra.divisor, 1.0, 1.0)


def fit_type(base: KernelPredictor, kind: str, x: np.ndarray, ms: np.ndarray) -> tuple[np.ndarray, TreeEnsemble, dict]:
    """One measured type's baseline and trees (see the module docstring) and its report."""
    shape = base.type_ms(kind, x) / baseline_ms(base.baselines[kind], x)  # what the trees multiply by
    base_ms = base.type_ms(kind, x)
    fits: dict[str, Fit] = {"type factor": lambda rows: (base.baselines[kind] * log_factor(ms[rows], base_ms[rows]),
                                                         None)}
    if len(ms) >= REFIT_MIN:
        fits["refit"] = lambda rows: (_refit(x[rows], ms[rows], shape[rows]), None)
    if len(ms) >= TREES_MIN:
        fits["refit + trees"] = lambda rows: _refit_trees(x[rows], ms[rows], shape[rows])
    scores = {how: _cross_validated_pct(fit, x, ms, shape) for how, fit in fits.items()}
    how = min(scores, key=scores.get)
    coefficients, model = fits[how](np.arange(len(ms)))
    ensemble = base.ensembles[kind] if model is None else joined(base.ensembles[kind], model)
    report = {"measured": len(ms), "baseline": how,
              **{f"cv_mape_pct_{h.replace(' + ', '_').replace(' ', '_')}": round(e, 2) for h, e in scores.items()}}
    return coefficients, ensemble, report


def adapt_kernels(base: KernelPredictor, groups: dict[str, tuple[np.ndarray, np.ndarray]],
                  overhead_ms: float) -> tuple[KernelPredictor, dict]:
    """The base refitted to net kernel ms per type (``groups``: features, ms) and the report."""
    base_ms = {kind: base.type_ms(kind, x) for kind, (x, _) in groups.items()}
    overall = log_factor(np.concatenate([ms for _, ms in groups.values()]),
                         np.concatenate([base_ms[kind] for kind in groups]))
    baselines, ensembles, report = {}, dict(base.ensembles), {}
    for kind in sorted(base.ensembles):
        x, ms = groups.get(kind, (None, np.zeros(0)))
        if len(ms) < SCALE_MIN:
            baselines[kind] = base.baselines[kind] * overall
            report[kind] = {"measured": len(ms), "baseline": "global factor"}
            continue
        baselines[kind], ensembles[kind], report[kind] = fit_type(base, kind, x, ms)
    adapted = dataclasses.replace(base, baselines=baselines, ensembles=ensembles, overhead_ms=overhead_ms)
    for kind, (x, ms) in groups.items():
        report[kind].update(mape_pct_global_factor=round(100 * float(np.abs(base_ms[kind] * overall / ms - 1).mean()), 2),
                            mape_pct=round(100 * float(np.abs(adapted.type_ms(kind, x) / ms - 1).mean()), 2))
    return adapted, {"types": report, "global_factor": round(overall, 4)}


def _layers(spec_text: str, name: str) -> list:
    try:
        return walk(decode(spec_text))
    except SpecError as exc:
        raise ProfileError(f"measured model {name!r}: {exc}") from None


def _factor(scaling: np.ndarray, rest: np.ndarray, measured: np.ndarray) -> float:
    """The f >= 0 minimising sum ((f x scaling + rest) / measured - 1)^2."""
    a, b = scaling / measured, 1 - rest / measured
    return max(float(a @ b / (a @ a)), 0.0)


def _scaled(predictor: KernelPredictor, factor: float) -> KernelPredictor:
    return dataclasses.replace(predictor, baselines={k: v * factor for k, v in predictor.baselines.items()})


def _in_model_factor(predictor: KernelPredictor, layers: list, measured: np.ndarray) -> tuple[KernelPredictor, dict]:
    """Every baseline times one factor, fitted on the whole models (least relative squares), when
    that factor, fitted on all models but one, prices the one left out better than none."""
    # a model's ms is linear in a common factor on the baselines, whatever in-network terms the
    # predictor has: ms(f) = rest + f x scaling, read off at f = 1 and f = 2
    one = np.array([predictor.predict_ms(l) for l in layers])
    two = np.array([_scaled(predictor, 2.0).predict_ms(l) for l in layers])
    scaling, rest = two - one, 2 * one - two
    others = [np.delete(np.arange(len(layers)), i) for i in range(len(layers))]
    loo = float(np.mean([abs(100 * ((_factor(scaling[o], rest[o], measured[o]) * scaling[i] + rest[i])
                                    / measured[i] - 1)) for i, o in enumerate(others)]))
    before = float(np.mean(np.abs(100 * (one / measured - 1))))
    if loo >= before:
        return predictor, {"in_model": "none: a factor does not carry to models left out",
                           "models_loo_mape_pct": round(before, 2)}
    factor = _factor(scaling, rest, measured)
    return _scaled(predictor, factor), {"in_model": f"factor {factor:.4f}", "models_loo_mape_pct": round(loo, 2)}


def _network_terms(predictor: KernelPredictor, layers: list, measured: np.ndarray) -> tuple[KernelPredictor, dict]:
    """The in-network terms refitted on the whole models (``kernels_fit.fit_network``) when they
    price models left out better than the base's terms carried over."""
    from edgetailor.profiling.kernels_fit import fit_network

    carried = float(np.mean(np.abs(100 * (np.array([predictor.predict_ms(l) for l in layers]) / measured - 1))))
    network, fitted = fit_network(predictor, [(detect_kernels(l), ms) for l, ms in zip(layers, measured)])
    loo = fitted.get("leave_one_out_mape_pct")
    if loo is None or loo >= carried:
        return predictor, {"in_model": "base's in-network terms carried", "models_loo_mape_pct": round(carried, 2)}
    return dataclasses.replace(predictor, network=network), {"in_model": "in-network terms refitted",
                                                            "models_loo_mape_pct": loo}


def whole_models(predictor: KernelPredictor, models: list[tuple[str, str, float]]) -> tuple[KernelPredictor, dict]:
    """Fit what kernels cost inside a network on the new device from whole models timed there:
    with ``NETWORK_MIN`` or more, the in-network terms refitted; with 3 or more, one factor on
    every baseline; each only when it prices models left out better than the predictor as it
    is. The report's ``models_loo_mape_pct`` is the error on models not fitted on."""
    from edgetailor.profiling.kernels_fit import NETWORK_MIN

    if not models:
        return predictor, {}
    layers = [_layers(spec, name) for name, spec, _ in models]
    measured = np.array([ms for _, _, ms in models])
    report = {"models_measured": len(models),
              "models_mape_pct_before": round(float(np.mean(np.abs(100 * (np.array(
                  [predictor.predict_ms(l) for l in layers]) / measured - 1)))), 2)}
    if len(models) >= NETWORK_MIN:
        predictor, fitted = _network_terms(predictor, layers, measured)
    elif len(models) >= 3:
        predictor, fitted = _in_model_factor(predictor, layers, measured)
    else:
        fitted = {"in_model": "none: fewer than 3 whole models", "models_loo_mape_pct": report["models_mape_pct_before"]}
    return predictor, {**report, **fitted}
