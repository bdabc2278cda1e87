"""Architecture search over a space, on an Optuna study.

A trial suggests one categorical index per position of the space's choice vector
(``c00``, ``c01``, ...), the vector is repaired and decoded to an ordinary spec, its latency
comes from the vectorised space predictor, and its accuracy from an *evaluator*: any callable
``spec -> (top-1 %, kind, source)`` (proxy training, ``edgetailor.choose.accuracy``'s estimator, or a
test's lambda). Objectives (MnasNet, Tan et al. 2019, Eq. 2): ``soft`` maximises
``ACC * (LAT/T)^-0.07``; ``hard`` maximises ``ACC`` under the budget and ``ACC * (LAT/T)^-1``
over it; ``pareto`` is multi-objective (max accuracy, min latency).

Storage, resume and many workers come from Optuna: a study in an RDB (SQLite file, PostgreSQL,
...) keeps every finished trial; a run asks for a total of ``trials`` completed trials, so
rerunning a killed search finishes the rest. Heartbeats fail the trials of a killed worker after
a grace period and queue them once more; a Ctrl-C fails the running trial and queues it too.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from edgetailor.latency import profiles
from edgetailor.arch import layers, spaces
from edgetailor.latency.profiles import DeviceProfile
from edgetailor.choose.search.storage import (StorageError, first_line, mask_url, open_storage, quiet_optuna,
                                               storage_errors)
from edgetailor.choose.search.strategies import STRATEGIES, make_sampler
from edgetailor.latency.space import SpacePredictor
from edgetailor.arch.spec import ArchSpec, SpecError, decode
from edgetailor.choose.candidate import Accuracy, Candidate, pareto, ranked_within, within_budget
from edgetailor.errors import SearchError

OBJECTIVES = ("soft", "hard", "pareto")
SOFT_EXPONENT = -0.07   # MnasNet's alpha = beta for the soft constraint
HARD_EXPONENT = -1.0    # beta of the hard constraint (alpha = 0 under the budget)
MAX_FAILURES_IN_A_ROW = 3
TOP1_METRIC = "top-1 (%)"
STUDY_ATTR = "edgetailor.search"   # study user attribute: the settings a resumed run must match
CANDIDATE_ATTR = "candidate"        # trial user attribute: one write per trial (Optuna commits each)
LATENCY_CONSTRAINT = "latency_over_budget_ms"  # pareto with a budget: the trial's constraint (<= 0 feasible)

Evaluator = Callable[[ArchSpec], "tuple[float, str, str]"]


class SearchInterrupted(SearchError):
    """Ctrl-C: the running trial is failed and queued again; the study is intact."""


class NoCandidateError(SearchError):
    """No candidate meets the latency budget."""


def mnas_reward(accuracy, latency_ms, target_ms: float, objective: str = "soft"):
    """MnasNet's reward ``ACC * (LAT / T)^w`` (vectorised); ``objective`` soft or hard."""
    ratio = np.asarray(latency_ms, dtype=float) / target_ms
    if objective == "soft":
        exponent = SOFT_EXPONENT
    elif objective == "hard":
        exponent = np.where(ratio <= 1.0, 0.0, HARD_EXPONENT)
    else:
        raise SearchError(f"no MnasNet reward for objective {objective!r} (soft or hard)")
    reward = np.asarray(accuracy, dtype=float) * ratio ** exponent
    return float(reward) if reward.ndim == 0 else reward


def hypervolume(accuracy, latency_ms, reference_ms: float, reference_accuracy: float = 0.0) -> float:
    """Area (accuracy x ms) dominated by the points, up to ``reference_ms`` and down to
    ``reference_accuracy``; points outside the reference box add nothing."""
    accuracy, latency = np.asarray(accuracy, float), np.asarray(latency_ms, float)
    keep = (latency < reference_ms) & (accuracy > reference_accuracy)
    area, best = 0.0, reference_accuracy
    for i in np.argsort(latency[keep], kind="stable"):
        a, t = accuracy[keep][i], latency[keep][i]
        if a > best:
            area += (a - best) * (reference_ms - t)
            best = a
    return float(area)


@dataclass(frozen=True)
class SearchConfig:
    """What to search; ``trials`` is the total of completed trials the study should reach."""

    space: str
    device: str
    budget_ms: float | None = None
    objective: str | None = None     # default: soft with a budget, pareto without
    strategy: str = "nsga2"
    trials: int = 20
    seed: int = 0
    storage: str | None = None       # an Optuna RDB URL; None keeps the study in memory
    study: str = "search"
    num_classes: int | None = None   # classifier priced; default the evaluator's, else 1000
    metric: str = TOP1_METRIC        # what the evaluator's accuracy is (another task: its own metric)

    @property
    def resolved_objective(self) -> str:
        return self.objective or ("soft" if self.budget_ms is not None else "pareto")

    def validate(self) -> None:
        try:
            spaces.get(self.space)
        except SpecError as exc:
            raise SearchError(str(exc)) from None
        if self.strategy not in STRATEGIES:
            raise SearchError(f"unknown strategy {self.strategy!r}; strategies: {', '.join(STRATEGIES)}")
        objective = self.resolved_objective
        if objective not in OBJECTIVES:
            raise SearchError(f"unknown objective {objective!r}; objectives: {', '.join(OBJECTIVES)}")
        if self.budget_ms is not None and not self.budget_ms > 0:
            raise SearchError(f"the latency budget must be > 0 ms (got {self.budget_ms})")
        if objective in ("soft", "hard") and self.budget_ms is None:
            raise SearchError(f"objective {objective!r} needs a latency budget (--budget-ms)")
        if self.strategy == "rl" and self.budget_ms is None:
            raise SearchError("strategy 'rl' needs a latency budget (--budget-ms): its reward is "
                              "MnasNet's ACC x (LAT/T)^w")
        if self.trials < 1:
            raise SearchError(f"trials must be >= 1 (got {self.trials})")


@dataclass(frozen=True)
class Trial:
    """One evaluated point of the space (a completed trial) and its candidate."""

    trial: int
    choices: tuple[int, ...]
    candidate: Candidate
    reward: float | None
    seconds: float
    cached_from: int | None = None

    @property
    def latency_ms(self) -> float:
        return self.candidate.latency_ms

    @property
    def accuracy(self) -> Accuracy:
        return self.candidate.accuracy

    def to_dict(self) -> dict:
        accuracy = self.candidate.accuracy
        return {"trial": self.trial, "choices": list(self.choices), "spec": self.candidate.spec.encode(),
                "accuracy": accuracy.value, "accuracy_kind": accuracy.kind,
                "accuracy_source": accuracy.source, "latency_ms": self.latency_ms, "reward": self.reward,
                "seconds": self.seconds, "cached_from": self.cached_from}

    @classmethod
    def from_frozen(cls, trial: FrozenTrial) -> "Trial":
        a = trial.user_attrs[CANDIDATE_ATTR]
        spec = decode(a["spec"])
        candidate = Candidate(spec, a["latency_ms"],
                              Accuracy(a["accuracy"], a["accuracy_kind"], a["accuracy_source"]),
                              layers.count(spec)[1], f"trial {trial.number}")
        return cls(trial.number, tuple(a["choices"]), candidate, a.get("reward"), a.get("seconds", 0.0),
                   a.get("cached_from"))


@dataclass
class SearchResult:
    config: SearchConfig
    profile: DeviceProfile
    trials: list[Trial]
    front: list[Trial]
    best: Trial | None
    best_note: str
    bounds_ms: tuple[float, float]
    hypervolume: float
    counts: dict[str, int]
    evaluator: dict
    new_trials: int = 0
    wall_seconds: float = 0.0
    num_classes: int = 1000
    zoo: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        c = self.config
        return {
            "schema": "edgetailor.search/1",
            "space": c.space, "device": self.profile.name, "profile_version": self.profile.version,
            "budget_ms": c.budget_ms, "objective": c.resolved_objective, "strategy": c.strategy,
            "seed": c.seed, "study": c.study, "trials_requested": c.trials, "trials": self.counts,
            "new_trials": self.new_trials, "wall_seconds": round(self.wall_seconds, 2),
            "num_classes": self.num_classes, "evaluator": self.evaluator, "metric": c.metric,
            "latency_range_ms": [round(v, 3) for v in self.bounds_ms],
            "hypervolume": {"value": round(self.hypervolume, 3), "reference_accuracy": 0.0,
                            "reference_ms": round(self.bounds_ms[1], 3),
                            "unit": "top-1 % x ms, over (0 %, slowest point of the space)"},
            "best": self.best.to_dict() if self.best else None, "best_note": self.best_note,
            "front": [trial.to_dict() for trial in self.front],
            "zoo_reference": self.zoo,
        }


def latency_bounds(space: spaces.Space, predictor: SpacePredictor, samples: int = 20000
                   ) -> tuple[tuple[float, np.ndarray], tuple[float, np.ndarray]]:
    """(fastest ms, its choices), (slowest ms, its choices) of a space: the extremes of a random
    sample, refined by coordinate descent (a few bounded sweeps over every position)."""
    dims = space.dims()
    sample = space.sample(np.random.default_rng(0), samples)
    latency = predictor.predict(sample)
    out = []
    for sign, start in ((1.0, int(np.argmin(latency))), (-1.0, int(np.argmax(latency)))):
        best = sample[start].copy()
        best_ms = float(latency[start])
        for _sweep in range(5):
            improved = False
            for position, n in enumerate(dims):
                trial = np.repeat(best[None], n, axis=0)
                trial[:, position] = np.arange(n)
                trial = space.repair(trial)
                values = predictor.predict(trial)
                pick = int(np.argmin(sign * values))
                if sign * values[pick] < sign * best_ms - 1e-9:
                    best, best_ms, improved = trial[pick].copy(), float(values[pick]), True
            if not improved:
                break
        out.append((best_ms, best))
    return out[0], out[1]


def evaluator_identity(evaluator: Evaluator) -> dict:
    """What a study records about where its accuracies come from (checked when resuming)."""
    recipe = getattr(evaluator, "recipe", None)
    if recipe is not None and hasattr(recipe, "to_dict"):
        return {"name": type(evaluator).__name__, "recipe": recipe.to_dict()}
    return {"name": getattr(evaluator, "__qualname__", type(evaluator).__qualname__)}


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _attr(trial: FrozenTrial, key: str, default=None):
    return trial.user_attrs.get(CANDIDATE_ATTR, {}).get(key, default)


class _CandidateFailed(Exception):
    """An evaluator error on one candidate: the trial fails, the search goes on."""


class Search:
    """One search: the space, the device profile and its predictor, an evaluator, a study.

    Making one checks every setting; the study is opened then too, unless ``open_study`` is
    False: a caller that must create the study's folder first checks everything before it
    creates anything, then calls ``open()``."""

    def __init__(self, config: SearchConfig, evaluator: Evaluator, profile: DeviceProfile | None = None,
                 *, open_study: bool = True):
        config.validate()
        self.config = config
        self.objective = config.resolved_objective
        self.space = spaces.get(config.space)
        try:
            self.profile = profile or profiles.load(config.device)
        except profiles.ProfileError as exc:
            raise SearchError(str(exc)) from None
        self.evaluator = evaluator
        self.num_classes = config.num_classes or getattr(evaluator, "num_classes", None) or 1000
        self.predictor = self.make_predictor()
        (self.fastest_ms, self.fastest), (self.slowest_ms, _) = self.latency_bounds()
        if config.budget_ms is not None and config.budget_ms < self.fastest_ms:
            spec = self.space.decode(self.fastest).encode()
            raise NoCandidateError(
                f"no candidate of space {config.space!r} meets {config.budget_ms:g} ms on "
                f"{self.profile.name}: the fastest is {self.fastest_ms:.1f} ms ({spec})")
        self.names = [f"c{i:02d}" for i in range(len(self.space.dims()))]
        self._known: dict[str, FrozenTrial] = {}
        self.study: optuna.Study | None = None
        if open_study:
            self.open()

    # -- pricing (a subclass prices another model around the backbone) ------------------------
    def make_predictor(self):
        """What prices choice vectors (``predict(rows) -> ms``): the space's classifier predictor."""
        return SpacePredictor(self.space, self.profile, num_classes=self.num_classes)

    def latency_bounds(self) -> tuple[tuple[float, np.ndarray], tuple[float, np.ndarray]]:
        """(fastest ms, its choices), (slowest ms, its choices) of the space as priced."""
        return latency_bounds(self.space, self.predictor)

    # -- the study -------------------------------------------------------------------------
    def _attrs(self) -> dict:
        c = self.config
        return {"space": c.space, "device": self.profile.name, "profile_version": self.profile.version,
                "objective": self.objective, "budget_ms": c.budget_ms, "num_classes": self.num_classes,
                "evaluator": evaluator_identity(self.evaluator)}

    def open(self) -> None:
        """Open (or create) the study in the configured storage."""
        with storage_errors(self.config.storage or "memory"):
            self.study = self._open_study()

    def _open_study(self) -> optuna.Study:
        try:
            storage = open_storage(self.config.storage)
        except StorageError as exc:
            raise SearchError(str(exc)) from None
        c = self.config
        directions = ["maximize", "minimize"] if self.objective == "pareto" else ["maximize"]
        reward = lambda t: _attr(t, "reward")  # noqa: E731
        with quiet_optuna():
            sampler = make_sampler(c.strategy, c.seed, c.trials, reward)
            try:
                study = optuna.create_study(storage=storage, sampler=sampler, study_name=c.study,
                                            directions=directions, load_if_exists=True)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                raise SearchError(f"cannot open study {c.study!r} in "
                                  f"{mask_url(c.storage or 'memory')}: {first_line(exc)}") from None
        wanted = self._attrs()
        found = study.user_attrs.get(STUDY_ATTR)
        if found is None:
            study.set_user_attr(STUDY_ATTR, wanted)
        else:
            # a proxy recipe must match (its accuracies compare only among themselves); other
            # evaluators are recorded by name only, as a callable's name says little
            same = {"profile_version": lambda old, new: True,
                    "evaluator": lambda old, new: (old or {}).get("recipe") == new.get("recipe")}
            differ = [k for k in wanted if not same.get(k, lambda old, new: old == new)(found.get(k), wanted[k])]
            if differ or [d.name for d in study.directions] != [d.upper() for d in directions]:
                diff = ", ".join(f"{k} {found.get(k)!r} (now {wanted[k]!r})" for k in differ) or "objective"
                raise SearchError(f"study {c.study!r} in {mask_url(c.storage or 'memory')} was made "
                                  f"with other settings: {diff}; use the same options or another --study")
        return study

    def close(self) -> None:
        """Close the storage's connections (SQLite then folds its WAL file back into the db)."""
        if self.study is None:
            return
        backend = getattr(self.study._storage, "_backend", self.study._storage)
        engine = getattr(backend, "engine", None)
        if engine is not None:
            engine.dispose()

    def completed(self) -> list[FrozenTrial]:
        trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return sorted((t for t in trials if CANDIDATE_ATTR in t.user_attrs), key=lambda t: t.number)

    # -- one trial -------------------------------------------------------------------------
    def _lookup(self, spec: str) -> FrozenTrial | None:
        if spec not in self._known:
            self._known = {t.user_attrs[CANDIDATE_ATTR]["spec"]: t for t in reversed(self.completed())}
        return self._known.get(spec)

    def _objective(self, trial: optuna.Trial):
        raw = [trial.suggest_categorical(name, list(range(n))) for name, n in zip(self.names, self.space.dims())]
        choices = self.space.repair(np.array([raw]))[0]
        latency_ms = float(self.predictor.predict(choices[None])[0])
        if self.objective == "pareto" and self.config.budget_ms is not None:  # steers NSGA-II and TPE
            trial.set_constraint(LATENCY_CONSTRAINT, latency_ms - self.config.budget_ms)
        spec = self.space.decode(choices)
        text = spec.encode()
        started = time.perf_counter()
        earlier = self._lookup(text)
        if earlier is not None:  # the same architecture again: reuse its measurement
            attrs = earlier.user_attrs[CANDIDATE_ATTR]
            accuracy, kind, source = attrs["accuracy"], attrs["accuracy_kind"], attrs["accuracy_source"]
        else:
            try:
                accuracy, kind, source = self.evaluator(spec)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
                trial.set_user_attr("worker", _worker())
                raise _CandidateFailed(f"{type(exc).__name__}: {exc}") from exc
            accuracy = float(accuracy)
            if not (math.isfinite(accuracy) and 0.0 <= accuracy <= 100.0):
                raise SearchError(f"the evaluator returned accuracy {accuracy}; it must be top-1 in "
                                  "percent (0..100)")
        reward = (mnas_reward(accuracy, latency_ms, self.config.budget_ms,
                              "soft" if self.objective == "pareto" else self.objective)
                  if self.config.budget_ms is not None else None)
        trial.set_user_attr(CANDIDATE_ATTR, {
            "choices": [int(c) for c in choices], "spec": text, "latency_ms": round(latency_ms, 4),
            "accuracy": accuracy, "accuracy_kind": kind, "accuracy_source": source, "reward": reward,
            "seconds": round(time.perf_counter() - started, 3), "worker": _worker(),
            "cached_from": earlier.number if earlier is not None else None})
        return (accuracy, latency_ms) if self.objective == "pareto" else reward

    # -- running ---------------------------------------------------------------------------
    def run(self, on_trial: Callable[[FrozenTrial], None] | None = None) -> SearchResult:
        """Run until the study holds ``trials`` completed trials (all workers together)."""
        started = time.perf_counter()
        target = self.config.trials
        failures: list[str] = []
        ran = [0]  # this worker's finished trials (other workers' trials do not reach callbacks)
        ctrl_c: list[int] = []

        def callback(study: optuna.Study, trial: FrozenTrial) -> None:
            if ctrl_c:  # a Ctrl-C that a library swallowed: stop after the trial it hit
                raise KeyboardInterrupt
            ran[0] += 1
            if trial.state == TrialState.FAIL:
                failures.append(trial.user_attrs.get("error", "failed"))
                if len(failures) >= MAX_FAILURES_IN_A_ROW:
                    study.stop()
            else:
                failures.clear()
            if on_trial is not None:
                on_trial(trial)

        stop_at = optuna.study.MaxTrialsCallback(target, states=(TrialState.COMPLETE,))
        with storage_errors(self.config.storage or "memory"):
            attempts = target - len(self.completed()) + MAX_FAILURES_IN_A_ROW  # bounded
            while attempts > 0 and len(self.completed()) < target and len(failures) < MAX_FAILURES_IN_A_ROW:
                n = min(target - len(self.completed()), attempts)
                before = ran[0]
                try:
                    with quiet_optuna(), _ctrl_c_recorded(ctrl_c):
                        self.study.optimize(self._objective, n_trials=n, catch=(_CandidateFailed,),
                                            callbacks=[stop_at, callback], gc_after_trial=False)
                except KeyboardInterrupt:
                    self._requeue_interrupted()
                    done = len(self.completed())
                    raise SearchInterrupted(
                        f"interrupted: {done} of {target} trials complete in study {self.config.study!r} "
                        f"({mask_url(self.config.storage or 'memory')}); rerun the same command to resume") from None
                attempts -= max(1, ran[0] - before)
            if len(failures) >= MAX_FAILURES_IN_A_ROW:
                raise SearchError(f"{len(failures)} candidates in a row failed to evaluate; last: {failures[-1]}")
            result = self.result()
        result.new_trials, result.wall_seconds = ran[0], time.perf_counter() - started
        return result

    def _requeue_interrupted(self) -> None:
        """Queue the trial that Ctrl-C failed, so a resumed run evaluates it first."""
        mine = _worker()
        trials = self.study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials}
        failed = [t for t in trials if t.state == TrialState.FAIL and t.number not in retried
                  and t.user_attrs.get("worker", _attr(t, "worker", mine)) == mine]
        if failed and len(failed[-1].params) == len(self.names):
            self.study.enqueue_trial(failed[-1].params, user_attrs={"retry_of": failed[-1].number})

    def result(self) -> SearchResult:
        """The study's completed trials, their Pareto front and the best one."""
        trials = [Trial.from_frozen(t) for t in self.completed()]
        accuracy = np.array([t.accuracy.value for t in trials])
        latency = np.array([t.latency_ms for t in trials])
        best, note = self._best(trials)
        counts = {}
        for t in self.study.get_trials(deepcopy=False):
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        return SearchResult(self.config, self.profile, trials, pareto(trials), best, note,
                            (self.fastest_ms, self.slowest_ms),
                            hypervolume(accuracy, latency, self.slowest_ms), counts,
                            evaluator_identity(self.evaluator), num_classes=self.num_classes)

    def _best(self, trials: list[Trial]) -> tuple[Trial | None, str]:
        budget = self.config.budget_ms
        if not trials:
            return None, "no completed trial"
        if self.objective == "soft":
            best = max(trials, key=lambda t: (t.reward, -t.trial))
            if within_budget(best.latency_ms, budget):
                return best, "highest soft reward"
            # the soft reward trades accuracy against latency, so its best may miss the budget:
            # say so, and name the best that meets it
            under = ranked_within(trials, budget)
            within = (f"the most accurate under it is trial {under[0].trial} ({under[0].accuracy.value:.2f}% at "
                      f"{under[0].latency_ms:.1f} ms)" if under else "no candidate found is under it")
            return best, (f"highest soft reward, but OVER the {budget:g} ms budget at {best.latency_ms:.1f} ms; "
                          f"{within}")
        if budget is None:
            return max(trials, key=lambda t: (t.accuracy.value, -t.latency_ms)), "most accurate (no budget)"
        under = ranked_within(trials, budget)
        if not under:
            fastest = min(trials, key=lambda t: t.latency_ms)
            return None, (f"no candidate found under {budget:g} ms; the fastest found is "
                          f"{fastest.latency_ms:.1f} ms (trial {fastest.trial})")
        return under[0], f"most accurate under {budget:g} ms"


@contextlib.contextmanager
def _ctrl_c_recorded(hits: list[int]):
    """Ctrl-C raises KeyboardInterrupt as usual and is also recorded in ``hits``: one that lands
    in a garbage-collection callback (SQLAlchemy's, say) is swallowed by Python, and the record
    lets the search stop after the current trial instead. Only where Python's own handler is
    installed (a search started in the background, with SIGINT ignored, keeps ignoring it)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def on_ctrl_c(signum, frame):
        hits.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run_search(config: SearchConfig, evaluator: Evaluator,
               on_trial: Callable[[FrozenTrial], None] | None = None,
               profile: DeviceProfile | None = None) -> SearchResult:
    """Open (or resume) the study and run it to ``config.trials`` completed trials; ``profile``
    (default: ``config.device`` loaded) prices the candidates."""
    return Search(config, evaluator, profile).run(on_trial)
