"""Build a kernel predictor on this machine: time kernels, fit one tree ensemble per kernel type,
sample more where it misses (nn-Meter's adaptive rounds), export the trees as plain arrays.

Timings (best-of ms, kernels timed a chunk at a time in rounds, CPU time of the invoking thread
with one thread: see ``timing.interleaved_best_ms``) are appended to a JSONL journal as they are
made, in ``host``'s format, so a run resumes where it stopped; given the journal, every sample drawn is the same again.
scikit-learn only fits: the fitted trees become ``TreeEnsemble`` arrays, predicted by numpy.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgetailor import _io
from edgetailor.latency.kernel_predictor import (GROUPS, NETWORK_TERMS, Kernel, KernelPredictor, TreeEnsemble, basis,
                                                  baseline_ms, network_terms)
from edgetailor.profiling import kernels as kernel_space
from edgetailor.profiling.host import read_journal, time_empty_model
from edgetailor.profiling.timing_journal import EMPTY_MODEL_KEY

# progress(label, total) -> a context manager giving update(n): a progress bar per batch
Progress = Callable[[str, int], contextlib.AbstractContextManager]
# Sample sizes (kernels). nn-Meter used ~10k conv, 5k depthwise, 3k other samples on a phone; here
# the build must fit in minutes on 2 cores (about 12 kernels/s timed), so a tenth of that.
SOBOL = {"pwconv": 160, "dwconv": 160, "conv": 80, "se": 50, "fc": 40}
SOBOL_OTHER = 25        # every other free type
OBSERVED_PER_TYPE = 60  # kernels drawn from the spaces' own networks, per type
ROUNDS = 3              # adaptive rounds, as nn-Meter
ROUND_FRESH = 120       # new kernels checked per round
NEIGHBOURS = 5          # new samples around each kernel predicted off by > 10 % (nn-Meter: 20)
ROUND_CAP = 100         # at most this many neighbours per round
MISS_PCT = 10.0
HELD_OUT = 240          # never trained on until the method per type is chosen
FLOOR_MS = 2e-4         # a kernel no slower than an empty model still costs something (0.2 us)
# Networks walked per space and per family for the pools the training, check and held-out kernels
# are drawn from (three seeds apart, so the three pools differ).
POOL_NETWORKS = {"train": 6, "check": 4, "held_out": 3}
NETWORKS_PER_SPACE = 3  # networks per space and per family timed whole, for the in-network terms
# A drawn network predicted slower than this is not timed. The networks the terms are fitted on
# should span the models they price: at 60 ms the fit's networks had a median of 6.8 ms (max 54)
# while the benchmark's held-out models have 15.5 ms (max 505), and the error grew with size.
# At 600 ms, 15 of the 95 drawn networks join, adding ~2.5 s per round (~10 s in all).
NETWORK_MAX_MS = 600.0
NETWORK_MIN = 12        # fewer networks timed: the plain sum of kernels is kept
NETWORK_CAP = 96        # at most this many networks timed
NETWORK_KEY = "network:"  # the journal's lines of whole networks: this + the spec
# Whole networks are timed in one set, round after round, over at least 40 s: a slow state of
# this machine can hold for seconds (``timing.interleaved_best_ms``; 12 networks timed three
# times over 5 s each: the second time all 1-27 % slower), and the in-network terms are fitted on them
NETWORK_TIMING = {"passes": 16, "window_s": 0.01, "min_span_s": 40.0}
METHODS = ("random_forest", "gradient_boosting")
TREES = {"random_forest": 60, "gradient_boosting": 200}  # the npz stays ~1 MB and loads in a fraction of a second


CHUNK = 64  # kernels timed together, round after round (``timing.interleaved_best_ms``)


def best_ms(model: bytes, threads: int, warmup: int = 2, runs: int = 8, min_seconds: float = 0.02) -> float:
    """Best-of ``invoke()`` time in ms of one model in one stretch of time (at least ``runs`` runs
    and ``min_seconds``): CPU time of the invoking thread with one thread, else wall time. On this
    machine a stretch can fall in its slow state (``timing.interleaved_best_ms``): kernels and whole
    models are timed interleaved instead; this is for a model timed alone."""
    import time

    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=model, num_threads=threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], rng.uniform(-1, 1, detail["shape"]).astype(detail["dtype"]))
    for _ in range(warmup):
        interpreter.invoke()
    clock = time.thread_time if threads == 1 else time.perf_counter
    best, count, started = float("inf"), 0, time.perf_counter()
    while count < runs or time.perf_counter() - started < min_seconds:
        t0 = clock()
        interpreter.invoke()
        best, count = min(best, clock() - t0), count + 1
    return best * 1e3


def measure_kernels(kernels: list[Kernel], journal: Path, threads: int, done: dict[str, float],
                    progress: Callable[[int], None] | None = None) -> dict[str, float]:
    """Best-of ms of each kernel not in ``done``, timed ``CHUNK`` at a time interleaved
    (``timing.interleaved_best_ms``), each chunk appended to ``journal`` when timed; returns
    ``done`` grown. A kernel whose model the runtime refuses (a rare attention shape) is left
    out: it is not in ``done``."""
    from edgetailor.profiling.timing import runs
    from edgetailor.profiling.timing_journal import time_into

    # models are made again a chunk at a time when timed: thousands at once would hold gigabytes
    todo = {k.key: k for k in kernels if k.key not in done and runs(kernel_space.kernel_model(k))}
    if progress:
        progress(len(kernels) - len(todo))
    done.update(time_into(journal, list(todo), lambda key: kernel_space.kernel_model(todo[key]), threads,
                          chunk=CHUNK, progress=progress))
    return done


def fit_baseline(x: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """Non-negative coefficients on ``basis(x)`` minimising the relative error."""
    from scipy.optimize import nnls

    terms = basis(x)
    coefficients, _ = nnls(terms / ms[:, None], np.ones(len(ms)), maxiter=50 * terms.shape[1])
    return coefficients


def fit_ensemble(x: np.ndarray, ms: np.ndarray, method: str, seed: int = 0) -> tuple[np.ndarray, TreeEnsemble]:
    """One type's baseline and its trees on log(ms / baseline), exported as arrays."""
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

    if method == "random_forest":
        model = RandomForestRegressor(n_estimators=TREES[method], min_samples_leaf=2, max_features=0.6,
                                      random_state=seed, n_jobs=1)
    elif method == "gradient_boosting":
        model = GradientBoostingRegressor(n_estimators=TREES[method], max_depth=4, learning_rate=0.05,
                                          subsample=0.8, random_state=seed)
    else:
        raise ValueError(f"unknown method {method!r}")
    baseline = fit_baseline(x, ms)
    model.fit(x, np.log(ms / baseline_ms(baseline, x)))
    return baseline, export(model)


def export(model) -> TreeEnsemble:
    """A fitted scikit-learn forest or gradient-boosting regressor as flat node arrays."""
    if hasattr(model, "init_"):  # gradient boosting: constant + learning rate x sum of trees
        trees = [stage[0].tree_ for stage in model.estimators_]
        offset, scale, divisor = float(model.init_.constant_.ravel()[0]), float(model.learning_rate), 1.0
    else:
        trees = [estimator.tree_ for estimator in model.estimators_]
        offset, scale, divisor = 0.0, 1.0, float(len(trees))
    fields = {name: [] for name in ("feature", "threshold", "left", "right", "value")}
    roots, start = [], 0
    for tree in trees:
        roots.append(start)
        leaf = tree.children_left < 0
        fields["feature"].append(np.where(leaf, 0, tree.feature))
        fields["threshold"].append(tree.threshold)
        fields["left"].append(np.where(leaf, -1, tree.children_left + start))
        fields["right"].append(np.where(leaf, -1, tree.children_right + start))
        fields["value"].append(tree.value[:, 0, 0])
        start += tree.node_count
    joined = {name: np.concatenate(parts) for name, parts in fields.items()}
    return TreeEnsemble(joined["feature"].astype(np.int32), joined["threshold"].astype(np.float64),
                        joined["left"].astype(np.int32), joined["right"].astype(np.int32),
                        joined["value"].astype(np.float64), np.array(roots, np.int32), offset, scale, divisor)


def _errors_pct(predictor: KernelPredictor, kernels: list[Kernel], measured: dict[str, float]) -> np.ndarray:
    """Per kernel (all of one type), predicted vs measured in %."""
    x = np.array([k.features() for k in kernels])
    y = np.array([measured[k.key] for k in kernels])
    return 100 * (predictor.type_ms(kernels[0].type, x) / y - 1)


def _fit_all(kernels: list[Kernel], measured: dict[str, float], method: str) -> KernelPredictor:
    """Every type's baseline and trees by ``method`` (a predictor without the constant)."""
    by_type: dict[str, list[Kernel]] = {}
    for kernel in kernels:
        by_type.setdefault(kernel.type, []).append(kernel)
    fitted = {kind: fit_ensemble(np.array([k.features() for k in group]),
                                 np.array([measured[k.key] for k in group]), method)
              for kind, group in sorted(by_type.items())}
    return KernelPredictor({k: e for k, (_, e) in fitted.items()}, {k: b for k, (b, _) in fitted.items()},
                           0.0, {})


def _draw(pool: list[Kernel], per_type: int, rng: np.random.Generator, exclude: set[str]) -> list[Kernel]:
    """Up to ``per_type`` kernels of each type from ``pool``, none in ``exclude``."""
    by_type: dict[str, list[Kernel]] = {}
    for kernel in pool:
        if kernel.key not in exclude:
            by_type.setdefault(kernel.type, []).append(kernel)
    out = []
    for kind in sorted(by_type):
        group = by_type[kind]
        picks = rng.choice(len(group), min(per_type, len(group)), replace=False)
        out += [group[i] for i in sorted(picks)]
    return out


def _unique(kernels: list[Kernel]) -> list[Kernel]:
    return list({k.key: k for k in kernels}.values())


@dataclass(frozen=True)
class Samples:
    """Timed kernels: the training set, the held-out set, and ms per kernel key (what one-kernel
    models measured, less the per-inference constant: what each kernel adds inside a model)."""

    train: list[Kernel]
    held: list[Kernel]
    ms: dict[str, float]
    rounds: list[dict]
    overhead_ms: float  # the empty model's invoke(): the per-inference constant


def _net(measured: dict[str, float], overhead_ms: float) -> dict[str, float]:
    return {key: max(ms - overhead_ms, FLOOR_MS) for key, ms in measured.items()}


def sample(journal: Path, threads: int, seed: int = 0, progress: Progress | None = None,
           say: Callable[[str], None] | None = None) -> Samples:
    """Draw, time (into and resuming from ``journal``) and adaptively extend the kernel sample:
    the initial sample, ``ROUNDS`` rounds of fresh checks with neighbours around the misses, and
    a held-out set; ``progress`` shows each batch. The per-inference constant is journaled too,
    so that a resumed run draws exactly the same kernels."""
    done = read_journal(journal, threads, say)
    if EMPTY_MODEL_KEY not in done:
        done[EMPTY_MODEL_KEY] = time_empty_model(journal, threads)
    overhead_ms = done[EMPTY_MODEL_KEY]

    def measure(label: str, batch: list[Kernel]) -> dict[str, float]:
        if progress is None:
            measure_kernels(batch, journal, threads, done)
        else:
            with progress(f"{label} ({len(batch)} kernels)", len(batch)) as update:
                measure_kernels(batch, journal, threads, done, update)
        batch[:] = [k for k in batch if k.key in done]  # without any the runtime refused
        return _net(done, overhead_ms)

    rng = np.random.default_rng(seed)
    pool = kernel_space.observed_kernels(seed, POOL_NETWORKS["train"])
    train = _draw(pool, OBSERVED_PER_TYPE, rng, set())
    for kind, span in sorted(kernel_space.ranges(pool).items()):
        train += kernel_space.sobol_kernels(kind, span, SOBOL.get(kind, SOBOL_OTHER), seed)
    train = _unique(train)
    ms = measure("initial sample", train)
    fresh_pool = kernel_space.observed_kernels(seed + 1, POOL_NETWORKS["check"])
    rounds = []
    types = sorted({k.type for k in train})
    for round_index in range(ROUNDS):
        predictor = _fit_all(train, ms, "random_forest")
        taken = {k.key for k in train}
        fresh = [k for k in _draw(fresh_pool, max(1, ROUND_FRESH // len(types)), rng, taken)
                 if k.type in predictor.ensembles]
        ms = measure(f"round {round_index + 1}: check", fresh)
        misses = [k for k in fresh if abs(_errors_pct(predictor, [k], ms)[0]) > MISS_PCT]
        extra = _unique([n for k in misses for n in kernel_space.neighbours(k, NEIGHBOURS, rng)])[:ROUND_CAP]
        ms = measure(f"round {round_index + 1}: {len(misses)} misses", extra)
        rounds.append({"checked": len(fresh), "within_10pct": round(1 - len(misses) / max(1, len(fresh)), 3),
                       "new_samples": len(extra)})
        train = _unique(train + fresh + extra)
    held_pool = kernel_space.observed_kernels(seed + 2, POOL_NETWORKS["held_out"])
    held = _draw(held_pool, max(1, HELD_OUT // len(types)), rng, {k.key for k in train})
    ms = measure("held-out kernels", held)
    return Samples(train, held, ms, rounds, overhead_ms)


def fit(samples: Samples, meta: dict) -> tuple[KernelPredictor, dict]:
    """Both methods per kernel type on the training set, scored on the held-out set; each type
    keeps its better method, refitted on training + held-out. Returns the predictor and the
    per-type held-out errors of both methods."""
    train, held, ms = samples.train, samples.held, samples.ms
    candidates = {method: _fit_all(train, ms, method) for method in METHODS}
    report, chosen = {}, {}
    for kind in sorted(candidates["random_forest"].ensembles):
        group = [k for k in held if k.type == kind]
        row = {"train": sum(k.type == kind for k in train), "held_out": len(group)}
        for method in METHODS:
            if group:
                errors = np.abs(_errors_pct(candidates[method], group, ms))
                row[method] = {"mape_pct": round(float(errors.mean()), 2),
                               "within_10pct": round(float(np.mean(errors <= MISS_PCT)), 3)}
        scored = [m for m in METHODS if m in row]
        row["chosen"] = min(scored, key=lambda m: row[m]["mape_pct"]) if scored else "random_forest"
        chosen[kind] = row["chosen"]
        report[kind] = row
    untrained = sorted({k.type for k in held} - set(chosen))
    if untrained:
        report["held_out_types_never_trained"] = untrained
    everything = _unique(train + [k for k in held if k.type in chosen])
    final = {kind: _fit_all([k for k in everything if k.type == kind], ms, method)
             for kind, method in chosen.items()}
    meta = {**meta, "kernels_measured": len(everything), "rounds": samples.rounds, "held_out": report,
            "what": "one-kernel TFLite models, best-of timing less the per-inference constant; trees on "
                    "log(ms / baseline); the shipped trees are refitted on train + held-out with each type's better method"}
    return KernelPredictor({kind: p.ensembles[kind] for kind, p in final.items()},
                           {kind: p.baselines[kind] for kind, p in final.items()}, samples.overhead_ms, meta), report


def time_networks(predictor: KernelPredictor, journal: Path, threads: int, seed: int,
                  progress: Progress | None = None) -> list[tuple[list[Kernel], float]]:
    """Whole networks (``kernels.network_model``) of the spaces and families, drawn a seed apart
    from the kernels' pools and timed interleaved into ``journal``: (kernels, ms) each. Networks
    the predictor puts over ``NETWORK_MAX_MS`` or that hold a type it lacks are not drawn."""
    from edgetailor.arch.layers import walk
    from edgetailor.errors import SpecError
    from edgetailor.latency.kernel_predictor import detect_kernels
    from edgetailor.profiling.timing import runs
    from edgetailor.profiling.timing_journal import time_into

    done = read_journal(journal, threads)
    networks = []
    for spec in kernel_space._specs(np.random.default_rng(seed + 3), NETWORKS_PER_SPACE):
        try:
            kernels = detect_kernels(walk(spec))
        except SpecError:
            continue
        if all(k.type in predictor.ensembles for k in kernels) and \
                predictor.overhead_ms + predictor.kernel_ms(kernels).sum() <= NETWORK_MAX_MS:
            networks.append((NETWORK_KEY + spec.encode(), kernels))
    networks = networks[:NETWORK_CAP]
    todo = {}
    for key, kernels in networks:
        if key not in done:
            model = kernel_space.network_model(kernels)
            if runs(model):  # a chain the runtime refuses (channel groups) is left out
                todo[key] = model
    if todo:
        context = progress(f"networks timed whole ({len(todo)})", len(todo)) if progress else contextlib.nullcontext()
        with context as update:
            done.update(time_into(journal, list(todo), todo.get, threads, chunk=None, progress=update,
                                  **NETWORK_TIMING))
    return [(kernels, done[key]) for key, kernels in networks if key in done]


def fit_network(predictor: KernelPredictor, networks: list[tuple[list[Kernel], float]]) -> tuple[np.ndarray, dict]:
    """``NETWORK_TERMS`` coefficients (non-negative, least relative error) from whole networks'
    measured ms, and their leave-one-network-out error. Too few networks: the plain sum."""
    from scipy.optimize import nnls

    from edgetailor.latency.kernel_predictor import IDENTITY_NETWORK

    if len(networks) < NETWORK_MIN:
        return IDENTITY_NETWORK.copy(), {"networks": len(networks), "note": f"fewer than {NETWORK_MIN} networks "
                                         "timed: kernels summed as timed alone"}
    x = np.array([network_terms(k, predictor.kernel_ms(k)).sum(axis=0) for k, _ in networks])
    y = np.array([ms - predictor.overhead_ms for _, ms in networks])

    def solve(rows: np.ndarray) -> np.ndarray:
        return nnls(x[rows] / y[rows, None], np.ones(rows.sum()), maxiter=50 * x.shape[1])[0]

    everything = np.ones(len(y), bool)
    loo = np.array([x[i] @ solve(everything & (np.arange(len(y)) != i)) for i in range(len(y))])
    errors = np.abs(100 * ((loo + predictor.overhead_ms) / (y + predictor.overhead_ms) - 1))
    plain = np.abs(100 * ((x[:, :len(GROUPS)].sum(axis=1) + predictor.overhead_ms) / (y + predictor.overhead_ms) - 1))
    return solve(everything), {
        "networks": len(networks), "leave_one_out_mape_pct": round(float(errors.mean()), 2),
        "leave_one_out_within_10pct": round(float(np.mean(errors <= MISS_PCT)), 3),
        "plain_sum_mape_pct": round(float(plain.mean()), 2),
        "what": "whole networks of the spaces and families (kernels chained in one model), timed interleaved; "
                "in-network terms refitted without each"}


def build(journal: Path, threads: int, seed: int = 0, progress: Progress | None = None,
          say: Callable[[str], None] | None = None) -> tuple[KernelPredictor, dict]:
    """``sample`` then ``fit``, then the in-network terms from whole networks: a kernel predictor
    for this machine and its held-out errors."""
    import dataclasses

    predictor, report = fit(sample(journal, threads, seed, progress, say), {"threads": threads, "seed": seed})
    coefficients, networks = fit_network(predictor, time_networks(predictor, journal, threads, seed, progress))
    return dataclasses.replace(predictor, network=coefficients,
                               meta={**predictor.meta, "in_network": networks}), report


def attach(document: dict, out_path: Path, threads: int, seed: int = 0,
           progress: Progress | None = None, say: Callable[[str], None] | None = None) -> dict:
    """Build the kernel predictor beside the profile ``out_path`` (``<out>.kernels.npz``, its
    timings in ``<out>.kernels.jsonl``) and return ``document`` naming it; the profile then
    predicts with it (``edgetailor.latency.profiles``)."""
    import hashlib

    journal = out_path.with_name(out_path.name + ".kernels.jsonl")
    predictor, report = build(journal, threads, seed, progress, say)
    data = predictor.to_npz_bytes()
    npz = out_path.with_name(out_path.name + ".kernels.npz")
    _io.write_bytes(npz, data)
    networks = predictor.meta["in_network"]
    if "leave_one_out_mape_pct" in networks:  # the profile now prices with the kernels: their error
        document = {**document, "expected_error_pct": networks["leave_one_out_mape_pct"],
                    "error": {**document["error"], "kernels_in_network_leave_one_out": {
                        "n": networks["networks"], "mape_pct": networks["leave_one_out_mape_pct"],
                        "within_10pct": networks["leave_one_out_within_10pct"], "what": networks["what"]}}}
    return {**document, "kernel_predictor": {"file": npz.name, "sha256": hashlib.sha256(data).hexdigest(),
                                             "kernels_measured": predictor.meta["kernels_measured"],
                                             "rounds": predictor.meta["rounds"], "held_out": report,
                                             "in_network": {**predictor.meta["in_network"],
                                                            "terms": dict(zip(NETWORK_TERMS,
                                                                              np.round(predictor.network, 5).tolist()))}}}
