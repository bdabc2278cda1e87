"""Search strategies as Optuna samplers: random, NSGA-II, TPE, and MnasNet's RL controller.

Every sampler is seeded per trial from ``(seed, trial number)``: a run is reproducible, a
resumed run continues the same sequence, and several workers sharing one study (trial numbers
are unique across them) never propose the same random draws.

``RLSampler`` is MnasNet's controller (Tan et al. 2019, Sec. 4.2) on the factorized space: one
softmax over each categorical choice, trained with REINFORCE and a moving-average baseline
(MnasNet used PPO; plain policy gradient is the same estimator without the clipped ratio). It
keeps no state of its own: the policy is replayed from the study's completed trials, so a
resumed or shared study continues the same controller.
"""
from __future__ import annotations

import warnings
import zlib
from typing import Any, Callable

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.trial import FrozenTrial, TrialState

STRATEGIES = ("random", "nsga2", "tpe", "rl")

Reward = Callable[[FrozenTrial], "float | None"]


def trial_seed(seed: int, number: int, *salt: int) -> int:
    """A 32-bit seed for trial ``number`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, number, *salt]).generate_state(1)[0])


def _random_states(obj: Any, depth: int = 0, seen: set | None = None) -> list[LazyRandomState]:
    """The LazyRandomState objects a sampler holds (its own, its helpers' and sub-samplers')."""
    seen = set() if seen is None else seen
    found = []
    for value in vars(obj).values():
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, LazyRandomState):
            found.append(value)
        elif depth < 3 and hasattr(value, "__dict__") and type(value).__module__.startswith("optuna"):
            found += _random_states(value, depth + 1, seen)
    return found


def _per_trial_seeded(cls: type[BaseSampler]) -> type[BaseSampler]:
    """``cls`` reseeded in place before every trial from ``(seed, trial number)``."""

    class Seeded(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, seed: int, **kwargs: Any) -> None:
            super().__init__(*args, seed=seed, **kwargs)
            self._base_seed = seed

        def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
            for index, state in enumerate(_random_states(self)):
                state.rng.seed(trial_seed(self._base_seed, trial.number, index))
            super().before_trial(study, trial)

    Seeded.__name__ = Seeded.__qualname__ = f"Seeded{cls.__name__}"
    return Seeded


SeededRandomSampler = _per_trial_seeded(RandomSampler)
SeededNSGAIISampler = _per_trial_seeded(NSGAIISampler)
SeededTPESampler = _per_trial_seeded(TPESampler)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


def value_reward(trial: FrozenTrial) -> float | None:
    """The trial's objective value, for single-objective studies."""
    return trial.value if trial.values is not None and len(trial.values) == 1 else None


class RLSampler(BaseSampler):
    """REINFORCE over independent categorical choices, with a moving-average baseline.

    ``reward(trial)`` gives a completed trial's reward (default: its value). Each completed trial
    moves the logits of the options it chose by ``learning_rate * advantage * (onehot - p)``,
    where the advantage is ``(reward - baseline) / std(rewards so far)``, clipped to [-3, 3].
    Non-categorical parameters are drawn uniformly at random.
    """

    def __init__(self, seed: int = 0, reward: Reward = value_reward, learning_rate: float = 0.3,
                 baseline_decay: float = 0.9) -> None:
        self._seed = seed
        self._reward = reward
        self.learning_rate = learning_rate
        self.baseline_decay = baseline_decay
        self._fallback = SeededRandomSampler(seed=seed)
        self._reset()

    def _reset(self) -> None:
        self._logits: dict[str, np.ndarray] = {}
        self._applied: list[int] = []
        self._rewards: list[float] = []
        self._baseline: float | None = None

    def reseed_rng(self) -> None:  # draws are seeded per trial; nothing to reseed
        pass

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._sync(study)  # once per trial: every parameter is then drawn from the same policy
        self._fallback.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if not isinstance(param_distribution, CategoricalDistribution):
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)
        probabilities = self.probabilities(param_name, len(param_distribution.choices))
        rng = np.random.default_rng(trial_seed(self._seed, trial.number, zlib.crc32(param_name.encode())))
        return param_distribution.choices[int(rng.choice(len(probabilities), p=probabilities))]

    def probabilities(self, param_name: str, n_choices: int) -> np.ndarray:
        """The controller's current distribution over one parameter's options."""
        logits = self._logits.get(param_name)
        return _softmax(logits) if logits is not None and len(logits) == n_choices else np.full(n_choices, 1 / n_choices)

    def _sync(self, study: optuna.Study) -> None:
        """Replay completed trials not yet applied (from scratch if one completed out of order)."""
        done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)
        numbers = [t.number for t in done]
        if numbers[:len(self._applied)] != self._applied:
            self._reset()
        for trial in done[len(self._applied):]:
            self._update(trial)
            self._applied.append(trial.number)

    def _update(self, trial: FrozenTrial) -> None:
        reward = self._reward(trial)
        if reward is None or not np.isfinite(reward):
            return
        self._rewards.append(float(reward))
        if self._baseline is None:
            self._baseline = float(reward)
            return
        spread = float(np.std(self._rewards))
        advantage = 0.0 if spread <= 0 else float(np.clip((reward - self._baseline) / spread, -3, 3))
        for name, distribution in trial.distributions.items():
            if not isinstance(distribution, CategoricalDistribution):
                continue
            n = len(distribution.choices)
            logits = self._logits.setdefault(name, np.zeros(n))
            if len(logits) != n:
                continue
            grad = -_softmax(logits)
            grad[distribution.to_internal_repr(trial.params[name])] += 1.0
            logits += self.learning_rate * advantage * grad
        self._baseline = self.baseline_decay * self._baseline + (1 - self.baseline_decay) * float(reward)


def make_sampler(strategy: str, seed: int, trials: int, reward: Reward = value_reward) -> BaseSampler:
    """The sampler for ``strategy``, sized for a run of ``trials`` trials.

    NSGA-II's population is a quarter of the trials (4..50) so that a short run still evolves
    several generations; TPE starts from a quarter of the trials (3..10) drawn at random. Both
    steer by the constraints a trial sets (``Trial.set_constraint``, values <= 0 feasible), e.g.
    a latency budget; Optuna 5 deprecates the samplers' ``constraints_func``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if strategy == "random":
            return SeededRandomSampler(seed=seed)
        if strategy == "nsga2":
            return SeededNSGAIISampler(seed=seed, population_size=int(np.clip(trials // 4, 4, 50)))
        if strategy == "tpe":
            return SeededTPESampler(seed=seed, n_startup_trials=int(np.clip(trials // 4, 3, 10)),
                                    multivariate=True, constant_liar=True)
        if strategy == "rl":
            return RLSampler(seed=seed, reward=reward)
    raise ValueError(f"unknown strategy {strategy!r}; strategies: {', '.join(STRATEGIES)}")
