"""Search on Optuna: objectives, Pareto/hypervolume helpers, strategies, resume, errors, speed."""
import json
import math
import signal
import time
import weakref
import warnings
import zlib

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from edgetailor.arch import layers, spaces
from edgetailor.latency import profiles
from edgetailor.choose.search import engine as search, report as search_report
from edgetailor.choose.candidate import pareto_mask
from edgetailor.choose.search.engine import SearchConfig, SearchError
from edgetailor.choose.search.strategies import STRATEGIES, RLSampler
from edgetailor.latency.space import SpacePredictor


def toy(spec):
    """A cheap evaluator: more MACs, more accuracy (plus a deterministic wobble per spec)."""
    macs = layers.count(spec)[1]
    wobble = zlib.crc32(spec.encode().encode()) % 100 / 100
    return round(40 + 8 * math.log10(macs / 1e7) + wobble, 3), "estimated", "toy MACs curve"


def config(**changes):
    base = dict(space="mnasnet", device="pixel1", budget_ms=60.0, strategy="random", trials=6, seed=0)
    return SearchConfig(**(base | changes))


def test_mnas_reward_soft_and_hard():
    assert search.mnas_reward(80.0, 50.0, 50.0, "soft") == pytest.approx(80.0)
    assert search.mnas_reward(80.0, 100.0, 50.0, "soft") == pytest.approx(80.0 * 2 ** -0.07)
    assert search.mnas_reward(80.0, 25.0, 50.0, "soft") > 80.0
    assert search.mnas_reward(80.0, 25.0, 50.0, "hard") == pytest.approx(80.0)
    assert search.mnas_reward(80.0, 100.0, 50.0, "hard") == pytest.approx(40.0)
    np.testing.assert_allclose(search.mnas_reward(np.array([80, 80]), np.array([40, 100]), 50, "hard"), [80, 40])
    with pytest.raises(SearchError):
        search.mnas_reward(80.0, 50.0, 50.0, "pareto")


def test_pareto_mask_and_hypervolume():
    accuracy = np.array([70, 72, 71, 75, 75, 60])
    latency = np.array([10, 20, 25, 30, 30, 5])
    assert pareto_mask(accuracy, latency).tolist() == [True, True, False, True, False, True]
    # rectangles up to (0 %, 40 ms): 60x35 + 10x30 + 2x20 + 3x10
    assert search.hypervolume(accuracy, latency, 40.0) == pytest.approx(2100 + 300 + 40 + 30)
    assert search.hypervolume(accuracy, latency, 4.0) == 0.0
    from optuna._hypervolume import compute_hypervolume

    points = np.column_stack([-accuracy, latency]).astype(float)
    assert search.hypervolume(accuracy, latency, 40.0) == pytest.approx(
        compute_hypervolume(points, np.array([0.0, 40.0])))


@pytest.mark.parametrize("changes, message", [
    (dict(space="darts"), "unknown search space 'darts'"),
    (dict(strategy="evolution"), "unknown strategy 'evolution'"),
    (dict(objective="fast"), "unknown objective 'fast'"),
    (dict(budget_ms=None, objective="hard"), "needs a latency budget"),
    (dict(budget_ms=None, objective="pareto", strategy="rl"), "strategy 'rl' needs a latency budget"),
    (dict(budget_ms=-3.0), "must be > 0 ms"),
    (dict(trials=0), "trials must be >= 1"),
    (dict(device="pixel99"), "unknown device 'pixel99'"),
])
def test_bad_configurations(changes, message):
    with pytest.raises(SearchError, match=message):
        search.Search(config(**changes), toy)


def test_budget_below_the_fastest_candidate_names_it():
    with pytest.raises(search.NoCandidateError, match=r"fastest is \d+\.\d ms \(res224 \|"):
        search.Search(config(budget_ms=1.0), toy)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_runs_and_is_reproducible(strategy):
    runs = [search.run_search(config(strategy=strategy, trials=8, seed=5), toy) for _ in range(2)]
    assert runs[0].counts == {"complete": 8}
    assert [c.candidate.spec for c in runs[0].trials] == [c.candidate.spec for c in runs[1].trials]
    best = runs[0].best
    assert best.reward == max(c.reward for c in runs[0].trials)
    assert best.latency_ms == pytest.approx(profiles.load("pixel1").predict(
        spaces.get("mnasnet").decode(best.choices)).total_ms, rel=1e-6)
    other = search.run_search(config(strategy=strategy, trials=8, seed=6), toy)
    assert [c.candidate.spec for c in other.trials] != [c.candidate.spec for c in runs[0].trials]


def test_pareto_objective_with_nsga2_and_the_hard_budget():
    result = search.run_search(config(space="proxyless", objective="pareto", strategy="nsga2", trials=12,
                                      budget_ms=None), toy)
    assert len(result.front) >= 2 and result.best.accuracy.value == max(c.accuracy.value for c in result.trials)
    latencies = [c.latency_ms for c in result.front]
    assert latencies == sorted(latencies)
    assert [c.accuracy.value for c in result.front] == sorted(c.accuracy.value for c in result.front)
    assert result.hypervolume > 0
    hard = search.run_search(config(space="proxyless", objective="hard", budget_ms=120.0, trials=6), toy)
    assert hard.best.latency_ms <= 120.0
    assert hard.best.accuracy.value == max(c.accuracy.value for c in hard.trials if c.latency_ms <= 120.0)
    nothing = search.run_search(config(space="proxyless", objective="hard", budget_ms=68.0, trials=3), toy)
    assert nothing.best is None and "no candidate found under 68 ms" in nothing.best_note


@pytest.mark.parametrize("strategy", ["nsga2", "tpe"])
def test_a_budget_steers_pareto_samplers_through_each_trials_constraint(strategy):
    """Optuna 5 deprecates the samplers' constraints_func (a FutureWarning on the user's screen);
    each trial sets its latency over the budget instead, which NSGA-II and TPE both read."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        run = search.Search(config(space="proxyless", objective="pareto", strategy=strategy, budget_ms=90.0,
                                   trials=6), toy)
        result = run.run()
    assert result.counts["complete"] == 6
    for trial in run.completed():
        latency = trial.user_attrs[search.CANDIDATE_ATTR]["latency_ms"]
        assert trial.constraints == {search.LATENCY_CONSTRAINT: pytest.approx(latency - 90.0, abs=1e-3)}  # latency_ms: 4 decimals


def test_rl_sampler_learns_the_rewarded_option():
    sampler = RLSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial):
        a = trial.suggest_categorical("a", [0, 1, 2, 3])
        b = trial.suggest_categorical("b", [0, 1, 2, 3])
        return float(a == 2) + 0.01 * b

    study.optimize(objective, n_trials=60)
    assert sampler.probabilities("a", 4)[2] > 0.8
    picks = [t.params["a"] for t in study.trials]
    assert picks[40:].count(2) > picks[:20].count(2)
    # the policy is replayed from the study: a fresh sampler on the same trials agrees
    fresh = RLSampler(seed=0)
    fresh._sync(study)
    sampler._sync(study)
    np.testing.assert_allclose(fresh.probabilities("a", 4), sampler.probabilities("a", 4))


def test_resume_from_sqlite_keeps_every_finished_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = search.run_search(config(strategy="tpe", trials=4, storage=url), toy)
    again = search.Search(config(strategy="tpe", trials=7, storage=url), toy)
    assert [c.candidate.spec for c in again.result().trials] == [c.candidate.spec for c in first.trials]
    result = again.run()
    assert result.new_trials == 3 and result.counts["complete"] == 7
    assert [c.candidate.spec for c in result.trials[:4]] == [c.candidate.spec for c in first.trials]
    same = search.run_search(config(strategy="tpe", trials=7, storage=url), toy)
    assert same.new_trials == 0


def test_a_study_refuses_other_settings(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    search.run_search(config(trials=2, storage=url), toy)
    with pytest.raises(SearchError, match=r"budget_ms 60\.0 \(now 70\.0\)"):
        search.Search(config(trials=2, storage=url, budget_ms=70.0), toy)
    with pytest.raises(SearchError, match="space 'mnasnet'"):
        search.Search(config(trials=2, storage=url, space="fbnet"), toy)
    search.Search(config(trials=2, storage=url, study="another", space="fbnet"), toy)


def test_repeated_architecture_reuses_its_measurement():
    calls = []

    def counting(spec):
        calls.append(spec)
        return toy(spec)

    runner = search.Search(config(trials=3), counting)
    params = {f"c{i:02d}": 0 for i in range(len(runner.space.dims()))}
    runner.study.enqueue_trial(params)
    runner.study.enqueue_trial(params)
    result = runner.run()
    assert len(calls) == 2 and result.trials[1].cached_from == 0
    assert result.trials[1].accuracy == result.trials[0].accuracy


def test_failing_candidates_are_skipped_then_the_search_stops():
    seen = []

    def flaky(spec):
        seen.append(spec)
        if len(seen) == 2:
            raise RuntimeError("diverged")
        return toy(spec)

    result = search.run_search(config(trials=4), flaky)
    assert result.counts == {"complete": 4, "fail": 1}

    def broken(spec):
        raise RuntimeError("out of memory")

    with pytest.raises(SearchError, match="3 candidates in a row failed to evaluate; last: RuntimeError: out of memory"):
        search.run_search(config(trials=4), broken)


def test_ctrl_c_fails_the_trial_requeues_it_and_resume_finishes(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    seen = []

    def interrupted(spec):
        seen.append(spec.encode())
        if len(seen) == 3:
            raise KeyboardInterrupt
        return toy(spec)

    with pytest.raises(search.SearchInterrupted, match=r"interrupted: 2 of 5 trials complete .*rerun the same command"):
        search.run_search(config(trials=5, storage=url), interrupted)
    study = optuna.load_study(study_name="search", storage=url)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.FAIL, TrialState.WAITING]
    assert study.trials[3].system_attrs["fixed_params"] == study.trials[2].params
    assert study.trials[3].user_attrs == {"retry_of": 2}
    result = search.run_search(config(trials=5, storage=url), toy)
    assert result.counts == {"complete": 5, "fail": 1}
    assert result.trials[2].trial == 3 and result.trials[2].candidate.spec.encode() == seen[2]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one
def test_a_ctrl_c_that_a_library_swallows_still_stops_the_search(tmp_path):
    # Python ignores exceptions raised in weakref callbacks (SQLAlchemy's ORM cleanup is one):
    # a Ctrl-C landing there used to be lost; the search now stops after the trial it hit.
    url = f"sqlite:///{tmp_path / 'study.db'}"
    calls = []

    def swallowing(spec):
        calls.append(spec)
        if len(calls) == 2:
            class Box:
                pass
            box = Box()
            ref = weakref.ref(box, lambda _: signal.raise_signal(signal.SIGINT))  # noqa: F841
            del box  # the callback runs here; Python prints "Exception ignored" and goes on
        return toy(spec)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with pytest.raises(search.SearchInterrupted, match=r"interrupted: 2 of 5 trials complete"):
            search.run_search(config(trials=5, storage=url), swallowing)
    finally:
        signal.signal(signal.SIGINT, previous)
    study = optuna.load_study(study_name="search", storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2  # the hit trial finished
    assert signal.getsignal(signal.SIGINT) is previous


@pytest.mark.parametrize("url, message", [
    ("postgresql://nobody@127.0.0.1:1/none", "cannot open study storage postgresql://nobody@127.0.0.1:1/none"),
    ("postgresql://nobody:secret@127.0.0.1:1/none", r"postgresql://nobody:\*\*\*@127"),
    ("sqlite:////no/such/folder/study.db", "folder /no/such/folder does not exist"),
    ("not a url", "not a storage URL"),
    ("nosuchdb://x/y", "cannot open study storage"),
])
def test_unreachable_storage_is_one_clear_error(url, message):
    with pytest.raises(SearchError, match=message) as info:
        search.Search(config(storage=url), toy)
    assert "\n" not in str(info.value) and "secret" not in str(info.value)


def test_latency_only_evaluation_keeps_up():
    """Issue 5: latency-only evaluation of at least 10,000 candidates per second."""
    space = spaces.get("mnasnet")
    predictor = SpacePredictor(space, profiles.load("pixel1"))
    choices = space.sample(np.random.default_rng(0), 20000)
    started = time.perf_counter()
    latency = predictor.predict(space.repair(choices))
    rate = len(choices) / (time.perf_counter() - started)
    assert latency.shape == (20000,) and rate > 10000, f"{rate:.0f} candidates/s"
    (fast, _), (slow, _) = search.latency_bounds(space, predictor)
    assert fast <= latency.min() and slow >= latency.max()


def test_outputs_are_complete_and_atomic(tmp_path):
    result = search.run_search(config(trials=5), toy)
    written = search_report.write_outputs(result, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "best_spec.txt", "pareto.json", "pareto.png"]
    assert [p.name for p in written] == ["pareto.json", "pareto.png", "best.json", "best_spec.txt"]
    document = json.loads((tmp_path / "pareto.json").read_text())
    assert document["schema"] == "edgetailor.search/1" and document["trials"] == {"complete": 5}
    assert len(document["front"]) == len(result.front) and document["zoo_reference"]
    assert all({"name", "top1", "latency_ms"} <= set(p) for p in document["zoo_reference"])
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["spec"] == (tmp_path / "best_spec.txt").read_text().strip() == result.best.candidate.spec.encode()
    assert best["spec_json"]["resolution"] == 224
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
