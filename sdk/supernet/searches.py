"""The weight-sharing searches' contract: one request, one result, a registry of strategies.

A strategy (FBNet, ProxylessNAS, LightNAS in ``dnas``; Single-Path NAS, PruNet beside it) trains
one over-parameterised network whose per-layer choices are parameters, and hands back an ordinary
``ArchSpec`` of a registered space with the weights it inherits from that network. Every strategy:

- takes a ``Request`` and returns a ``Result`` (``run(request)``), raising an ``EdgetailorError``
  subclass (``SearchError``, ``DatasetError``, ``SupernetError``) for every user mistake before
  anything is written into ``request.out``;
- reports one ``EpochReport`` per epoch through ``request.progress``;
- checkpoints into ``request.out`` after every epoch (its own files; ``checkpoint.State``-style JSON
  + TF checkpoint), so that running the same request again continues where it stopped, and running
  it after it finished returns the same result without training;
- finishes by writing ``result.json`` (``write_result``) and the found network's weights
  (``save_weights``, an npz keyed by the builder's layer names) into ``request.out``; ``read_result``
  reads them back for ``specialize --search SPACE --strategy NAME``.

This module imports no TensorFlow: the registry names each strategy's module and function, loaded
when it runs, so the CLI checks names and spaces at look-up speed.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgetailor._io import write_atomically, write_json
from edgetailor.arch.spec import ArchSpec, decode
from edgetailor.errors import SearchError
from edgetailor.latency.profiles import DeviceProfile

RESULT = "result.json"
WEIGHTS = "weights.npz"
FORMAT = "edgetailor-supernet-search/1"


@dataclass(frozen=True)
class EpochReport:
    """Reported after every epoch; ``epoch`` counts from 1."""

    strategy: str
    epoch: int
    epochs: int
    loss: float                 # mean training loss of the epoch (the strategy's loss, latency term included)
    expected_ms: float          # the architecture distribution's expected latency on the profile [ms]
    argmax_ms: float            # latency of the current most likely architecture [ms]
    arch: str                   # that architecture, ``ArchSpec.encode()``
    seconds: float              # wall time of the epoch
    extra: dict = field(default_factory=dict)  # strategy's own figures (temperature, lambda, ...)

    def line(self) -> str:
        """One progress line; the architecture as ``extra["ops"]`` (compact) when the strategy gives it."""
        extra = "".join(f", {k} {v:.4g}" if isinstance(v, float) else f", {k} {v}"
                        for k, v in self.extra.items() if k != "ops")
        return (f"{self.strategy} epoch {self.epoch}/{self.epochs}: loss {self.loss:.4f}, expected "
                f"{self.expected_ms:.2f} ms, argmax {self.argmax_ms:.2f} ms{extra}, {self.seconds:.1f} s; "
                f"{self.extra.get('ops', self.arch)}")


@dataclass(frozen=True)
class Request:
    """One search: ``space`` on ``profile`` under ``budget_ms`` [ms] at ``resolution`` [px] — the
    resolution the found network trains, ships and is priced at."""

    strategy: str
    space: str
    profile: DeviceProfile
    budget_ms: float
    dataset: str | Path                     # "shapes" or a folder with one sub-folder per class
    out: Path
    epochs: int = 10                        # search epochs (warm-up included, as the strategy splits them)
    resolution: int = 32
    images: int = 2000                      # shapes data only: training images (a quarter more held out)
    batch_size: int = 32
    seed: int = 0
    settings: dict = field(default_factory=dict)  # strategy knobs by name (e.g. {"loss": "add#linear"})
    progress: Callable[[EpochReport], None] | None = None

    def __post_init__(self) -> None:
        checks = [(self.budget_ms > 0, f"the budget must be > 0 ms (got {self.budget_ms:g})"),
                  (self.epochs >= 1, "epochs must be >= 1"), (self.batch_size >= 2, "batch size must be >= 2"),
                  (self.images >= 4, "images must be >= 4"),
                  (self.resolution % 8 == 0 and 32 <= self.resolution <= 224,
                   f"resolution must be a multiple of 8 in 32..224 px (got {self.resolution})")]
        for ok, message in checks:
            if not ok:
                raise SearchError(f"{self.strategy} search: {message}")


@dataclass(frozen=True)
class Result:
    """What a search found: a spec of the space, priced on the profile, and its inherited weights."""

    strategy: str
    space: str
    device: str                   # profile name
    profile_version: str
    budget_ms: float
    spec: ArchSpec
    choice: tuple[int, ...]       # the space's choice vector of ``spec`` (at choice[0] the space's resolution 0)
    predicted_ms: float           # ``profile.predict(spec, len(classes)).total_ms``
    classes: tuple[str, ...]
    dataset: dict                 # how to open the dataset again (``supernet.data.open_source`` kwargs)
    history: tuple[dict, ...]     # one entry per epoch (``EpochReport`` fields)
    weights: Path                 # npz of the extracted model's weights (``save_weights``)
    seconds: float                # search wall time over all runs that built it [s]
    notes: tuple[str, ...] = ()   # restrictions that applied (ops left out, settings used)
    unrepaired_ms: float | None = None  # the search's own pick before any move to the budget [ms]; None: no repair step

    def to_json(self) -> dict:
        data = asdict(self)
        data.update(spec=self.spec.encode(), weights=self.weights.name, choice=list(self.choice))
        return {"format": FORMAT, **data}


@dataclass(frozen=True)
class Strategy:
    """A registered search: where its ``run(Request) -> Result`` lives and which spaces it takes."""

    name: str
    module: str
    function: str
    spaces: tuple[str, ...]       # registered spaces it searches
    description: str

    def run(self, request: Request) -> Result:
        return getattr(importlib.import_module(self.module), self.function)(request)


STRATEGIES: dict[str, Strategy] = {strategy.name: strategy for strategy in [
    Strategy("fbnet", "edgetailor.supernet.dnas", "run_fbnet", ("fbnet", "proxyless", "proxyless_proxy"),
             "FBNet (Wu et al. 2019): Gumbel-softmax over every layer's ops, temperature annealed, "
             "loss CE * alpha * log(LAT)^beta"),
    Strategy("proxyless", "edgetailor.supernet.dnas", "run_proxyless", ("proxyless", "fbnet", "proxyless_proxy"),
             "ProxylessNAS (Cai et al. 2019): binarized paths, two sampled per architecture step, "
             "loss mul#log or add#linear"),
    Strategy("lightnas", "edgetailor.supernet.dnas", "run_lightnas", ("fbnet", "proxyless", "proxyless_proxy"),
             "LightNAS (Luo et al. 2022): hard Gumbel-softmax, a learned multiplier that drives the "
             "expected latency to the budget"),
    Strategy("single_path", "edgetailor.supernet.single_path", "run_single_path",
             ("single_path", "single_path_proxy", "ofa_proxy"),
             "Single-Path NAS (Stamoulis et al. 2019): one superkernel per layer, kernel, expansion and skip "
             "chosen by learned thresholds on its parts' norms, loss CE + lambda * log(R)"),
    Strategy("prunet", "edgetailor.supernet.prunet", "run_prunet", ("single_path", "single_path_proxy", "ofa_proxy"),
             "PruNet (Kierat et al. 2022): stochastic layers of bi-path Prunode blocks that search the expansion, "
             "blocks and whole layers pruned during the search"),
]}


def get(name: str, space: str) -> Strategy:
    """The strategy ``name`` for ``space``; an unknown name or a space it does not search is an error."""
    if name not in STRATEGIES:
        raise SearchError(f"unknown weight-sharing search {name!r}; searches: {', '.join(STRATEGIES)}")
    strategy = STRATEGIES[name]
    if space not in strategy.spaces:
        raise SearchError(f"the {name} search runs on spaces {', '.join(strategy.spaces)}, not {space!r}")
    return strategy


def run(request: Request) -> Result:
    """Run (or resume) ``request`` with its registered strategy."""
    return get(request.strategy, request.space).run(request)


def save_weights(model, path: Path) -> None:
    """A Keras model's weights as an npz keyed ``<layer name>/<index>`` (plain arrays, no pickle)."""
    arrays = {f"{layer.name}/{i}": w for layer in model.layers for i, w in enumerate(layer.get_weights())}

    def write(temp: Path) -> None:
        with open(temp, "wb") as handle:
            np.savez(handle, **arrays)
    write_atomically(path, write, replace=True)


def load_weights(model, path: Path) -> None:
    """Load ``save_weights``' npz into a model of the same spec; a mismatch is an error."""
    with np.load(path, allow_pickle=False) as stored:
        arrays = dict(stored)
    for layer in model.layers:
        count = len(layer.get_weights())
        if count:
            try:
                layer.set_weights([arrays.pop(f"{layer.name}/{i}") for i in range(count)])
            except (KeyError, ValueError) as exc:
                raise SearchError(f"{path} does not fit the found network (layer {layer.name}: {exc})") from None
    if arrays:
        raise SearchError(f"{path} holds weights the found network lacks: {sorted(arrays)[:3]}")


def write_result(out: Path, result: Result) -> None:
    write_json(Path(out) / RESULT, result.to_json())


def read_result(out: str | Path) -> Result | None:
    """The finished search in ``out``, None when it has not finished (or never ran)."""
    path = Path(out) / RESULT
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if data.pop("format") != FORMAT:
            raise ValueError("unknown format")
        data.update(spec=decode(data["spec"]), weights=Path(out) / data["weights"], choice=tuple(data["choice"]),
                    classes=tuple(data["classes"]), history=tuple(data["history"]), notes=tuple(data["notes"]))
        return Result(**data)
    except (ValueError, TypeError, KeyError) as exc:
        raise SearchError(f"{path} is not a search result ({exc}); remove the folder or pick another --out") from None
