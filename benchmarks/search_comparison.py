"""Ten architecture searches on one device, budget, dataset and wall-clock budget: one table, one Pareto plot.

    .venv/bin/python benchmarks/search_comparison.py [--seconds 150] [--out out/search-comparison]

At the defaults one pass took 35 minutes of searches and 18 of retraining on two shared cores (1-minute
load 3-12); the searches run in two processes at once with ``--only`` (disjoint methods, same ``--out``),
and a last run without ``--only`` writes the docs from the stored rows.

The methods: random, NSGA-II, TPE and MnasNet's RL controller (Optuna; one proxy-trained candidate
per trial), Once-for-All (train a supernet by progressive shrinking, measure sub-networks, fit the
accuracy predictor, evolve), FBNet, ProxylessNAS, LightNAS (``supernet.dnas``), Single-Path NAS and
PruNet. What they share: the device profile (default pixel1), the budget (default 2.3 ms), the
shapes data (6 classes) at 32 px, the search images (``--images``) and the wall-clock budget per
method (``--seconds``). The spaces differ (a method takes the spaces it was built for), so each row
names its space; the three spaces are narrow proxies at 32 px priced in the same range on the
profile: ``proxyless_proxy`` (Optuna's four and the three DNAS), ``ofa_proxy`` (Once-for-All) and
``single_path_proxy`` (Single-Path NAS, PruNet). On pixel1 at 32 px they span 2.01-2.83,
2.09-2.49 and 2.01-2.51 ms; 2.3 ms lets about a quarter, three quarters and four fifths of each
space's random samples through.

The wall-clock budget: a method starts another trial or epoch while its wall time is under
``--seconds``, so it overruns by at most one unit (the search-seconds column shows by how much). Once-for-All is
not cut: its plan (six phases of one epoch, ``--measure`` sub-networks, the evolution) is fixed, and
its row says how long it took. The Optuna samplers are sized for ``--trials`` trials (NSGA-II's
population and TPE's random start are a quarter of it).

The retraining recipe, one for all: the found network is trained FROM SCRATCH (no inherited
weights, whatever the method) with ``--retrain-epochs`` epochs of Adam on ``--retrain-images``
shapes images at 32 px and scored on 500 held-out images (``tasks.classification.train.Recipe``).
Every found network is priced by the same ``profile.predict`` with 6 classes; for the
differentiable searches the latency of their own pick before the final repair to the budget
(``Result.unrepaired_ms``) is printed beside it, and every row gives the machine's 1-minute load
average at the start and the end of its search (two cores, shared).

Resumable: each method's row is stored as JSON in ``--out`` once its search ends (its retraining
result is added after); a rerun skips finished rows. A method interrupted mid-search continues
from its own checkpoint (DNAS, Single-Path, PruNet, the supernet) or its Optuna study (SQLite), but
its wall time then counts only the resumed run. Writes ``table.md``, ``results.json`` and
``pareto.png`` into ``--docs`` (atomically).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edgetailor._io import write_bytes, write_json, write_text  # noqa: E402

CLASSES = 6  # the shapes data's classes
OPTUNA = ("random", "nsga2", "tpe", "rl")
SUPERNET = ("fbnet", "proxyless", "lightnas", "single_path", "prunet")
# (method, space, planned epochs): the epochs the schedule (warm-up share, cosine rate, temperature)
# is laid out for; the wall-clock budget usually ends the search first. FBNet runs every op of every
# slot per step (about 4x a single-path step), so it plans fewer, longer epochs.
PLAN = {"random": "proxyless_proxy", "nsga2": "proxyless_proxy", "tpe": "proxyless_proxy", "rl": "proxyless_proxy",
        "ofa": "ofa_proxy", "fbnet": "proxyless_proxy", "proxyless": "proxyless_proxy",
        "lightnas": "proxyless_proxy", "single_path": "single_path_proxy", "prunet": "single_path_proxy"}
EPOCHS = {"fbnet": 4, "proxyless": 8, "lightnas": 8, "single_path": 10, "prunet": 10}
NAMES = {"random": "random", "nsga2": "NSGA-II", "tpe": "TPE", "rl": "MnasNet RL", "ofa": "Once-for-All evolution",
         "fbnet": "FBNet", "proxyless": "ProxylessNAS", "lightnas": "LightNAS", "single_path": "Single-Path NAS",
         "prunet": "PruNet"}


class _OutOfTime(Exception):
    """Raised from a progress callback at a unit boundary: the method's wall-clock budget is spent."""


class Clock:
    """Stops a method at the first unit boundary past its budget: it overruns by at most one unit (the
    first unit carries TensorFlow's start-up and tracing, so the last unit's time is no estimate of the next)."""

    def __init__(self, seconds: float):
        self.seconds, self.started, self.units = seconds, time.perf_counter(), 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def tick(self) -> None:
        self.units += 1
        if self.elapsed() >= self.seconds:
            raise _OutOfTime


def search_recipe(args):
    from edgetailor.tasks.classification.train import Recipe

    return Recipe(resolution=32, epochs=args.trial_epochs, train_images=args.images,
                  val_images=max(1, args.images // 4), seed=args.seed)


def retrain_recipe(args):
    from edgetailor.tasks.classification.train import Recipe

    return Recipe(resolution=32, epochs=args.retrain_epochs, train_images=args.retrain_images, val_images=500,
                  seed=args.seed)


def run_optuna(method: str, args, profile, folder: Path) -> dict:
    """Trials until the clock stops them; the found network: the most accurate trial under the budget."""
    from edgetailor.choose.candidate import ranked_within
    from edgetailor.choose.search import engine
    from edgetailor.tasks.classification.train import ProxyTrainer

    trainer = ProxyTrainer(search_recipe(args))
    config = engine.SearchConfig(space=PLAN[method], device=profile.name, budget_ms=args.budget_ms,
                                 objective="pareto" if method == "nsga2" else "soft", strategy=method,
                                 trials=args.trials, seed=args.seed, storage=f"sqlite:///{folder / 'study.db'}",
                                 study=method, num_classes=CLASSES)
    clock = Clock(args.seconds)
    try:
        engine.run_search(config, trainer, on_trial=lambda trial: clock.tick(), profile=profile)
    except _OutOfTime:
        pass
    search = engine.Search(config, trainer, profile)
    result = search.result()
    search.close()
    under = ranked_within(result.trials, args.budget_ms)
    found = under[0] if under else min(result.trials, key=lambda t: t.latency_ms)
    return {"spec": found.candidate.spec.encode(), "units": f"{len(result.trials)} trials",
            "search_top1": found.accuracy.value, "seconds": round(clock.elapsed(), 1),
            "notes": [] if under else ["no trial under the budget: the fastest one"],
            "objective": config.resolved_objective}


def run_ofa(args, profile, folder: Path) -> dict:
    """Progressive shrinking at 32 px, measured sub-networks, the predictor, evolution under the budget."""
    from edgetailor.specialize import Request
    from edgetailor.supernet import measured
    from edgetailor.supernet.specialize import FromSupernet
    from edgetailor.supernet.train import PHASES, TrainOptions, train

    started = time.perf_counter()
    options = TrainOptions(epochs=1, resolutions=(32,), images=args.images, batch_size=32, seed=args.seed)
    trained = train(PLAN["ofa"], "shapes", folder / "ckpt", options)
    done = measured.measure(folder / "ckpt", trained.net, trained.state, trained.source, args.measure,
                            seed=args.seed)
    predictor = measured.fit_predictor(folder / "ckpt", trained.net.elastic, trained.state, done, seed=args.seed)
    task = FromSupernet(folder / "ckpt")
    request = Request(profile=profile, budget_ms=args.budget_ms, out_dir=folder / "unused", supernet=folder / "ckpt")
    choice = task.choose(request, CLASSES, lambda message: None)
    held = predictor.held_out
    return {"spec": choice.best.spec.encode(), "units": f"{len(PHASES)} phases x 1 epoch, {len(done)} measured",
            "search_top1": choice.best.accuracy.value, "seconds": round(time.perf_counter() - started, 1),
            "notes": [f"predictor held-out MAE {held.mae_pp} pp (mean predictor {held.baseline_mae_pp} pp)"
                      if held else "predictor without a held-out split"]}


def run_supernet_search(method: str, args, profile, folder: Path) -> dict:
    """A ``supernet.searches`` strategy, stopped at an epoch boundary by the clock and then finished
    (argmax or decision extracted, batch norm recalibrated) from its last checkpoint."""
    from edgetailor.supernet import searches

    clock = Clock(args.seconds)
    request = searches.Request(method, PLAN[method], profile, args.budget_ms, "shapes", folder,
                               epochs=EPOCHS[method], resolution=32, images=args.images, batch_size=32,
                               seed=args.seed, progress=lambda report: (_log(report.line()[:200]), clock.tick()))
    done = EPOCHS[method]
    try:
        result = searches.run(request)
    except _OutOfTime:
        done = clock.units
        result = searches.run(dataclasses.replace(request, epochs=done, progress=None))
    last = result.history[-1]
    return {"spec": result.spec.encode(), "units": f"{done} of {EPOCHS[method]} epochs",
            "seconds": round(clock.elapsed(), 1), "unrepaired_ms": result.unrepaired_ms,
            "expected_ms": last["expected_ms"], "lambda": last["extra"].get("lambda"),
            "notes": [n for n in result.notes if "left out" not in n]}


def retrain(spec_text: str, args) -> dict:
    from edgetailor.arch.spec import decode
    from edgetailor.tasks.classification.train import ProxyTrainer

    trainer = ProxyTrainer(retrain_recipe(args))
    top1, _, _ = trainer(decode(spec_text))
    return {"top1": top1, "retrain_seconds": trainer.last["seconds"]}


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pareto_png(rows: list[dict], args, profile_name: str) -> bytes:
    """Retrained top-1 against predicted latency, one labelled point per method, the front joined."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5.5), dpi=110)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot(1, 1, 1)
    colours = {"proxyless_proxy": "#d62", "ofa_proxy": "#283", "single_path_proxy": "#25c"}
    for space, colour in colours.items():
        mine = [r for r in rows if r["space"] == space]
        axis.scatter([r["latency_ms"] for r in mine], [r["top1"] for r in mine], color=colour, s=30, label=space,
                     zorder=3)
    points: dict[tuple[float, float], list[str]] = {}  # methods that found the same point share one label
    for r in rows:
        points.setdefault((r["latency_ms"], r["top1"]), []).append(NAMES[r["method"]])
    for (ms, top1), names in points.items():
        axis.annotate(" / ".join(names), (ms, top1), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = _front(rows)
    axis.plot([r["latency_ms"] for r in front], [r["top1"] for r in front], "-", color="#888", zorder=2,
              label="Pareto front")
    axis.axvline(args.budget_ms, color="#555", linestyle="--", linewidth=1, label=f"budget {args.budget_ms:g} ms")
    axis.set_xlabel(f"predicted latency on {profile_name} (ms)")
    axis.set_ylabel(f"held-out top-1 (%), retrained from scratch {args.retrain_epochs} epochs")
    axis.set_title(f"ten searches, {args.seconds:g} s each, shapes at 32 px", fontsize=9)
    axis.legend(fontsize=7, loc="lower right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _front(rows: list[dict]) -> list[dict]:
    """Rows no other row beats on both accuracy and latency, by latency."""
    front, best = [], -1.0
    for r in sorted(rows, key=lambda r: (r["latency_ms"], -r["top1"])):
        if r["top1"] > best:
            front.append(r)
            best = r["top1"]
    return front


def compact(spec_text: str) -> str:
    """The searched stages' blocks, e.g. ``k3e6 skip k5e3 / ...`` (``se`` marks squeeze-excite)."""
    from edgetailor.arch.spec import decode

    return " / ".join(" ".join("skip" if b.kind == "skip" else f"k{b.kernel}e{b.expand:g}{'se' * bool(b.se)}"
                               for b in stage) for stage in decode(spec_text).stages)


def table(rows: list[dict], args) -> str:
    lines = ["| method | space | found network (blocks per stage) | predicted ms | vs budget | own pick before repair ms "
             "| held-out top-1 % (retrained) | search s | search units | load |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        before = "-" if r.get("unrepaired_ms") is None else f"{r['unrepaired_ms']:.3f}"
        lines.append(f"| {NAMES[r['method']]} | {r['space']} | {compact(r['spec'])} | {r['latency_ms']:.3f} | "
                     f"{100 * (r['latency_ms'] / args.budget_ms - 1):+.1f} % | {before} | {r['top1']:.1f} | "
                     f"{r['seconds']:.0f} | {r['units']} | {r['load_1min'][0]:g}-{r['load_1min'][1]:g} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="pixel1")
    parser.add_argument("--budget-ms", type=float, default=2.3)
    parser.add_argument("--seconds", type=float, default=150, help="wall-clock budget per method's search [s]")
    parser.add_argument("--images", type=int, default=400, help="shapes images every search trains on")
    parser.add_argument("--trials", type=int, default=16, help="Optuna: trials the samplers are sized for (a cap)")
    parser.add_argument("--trial-epochs", type=int, default=1, help="Optuna: proxy-training epochs per trial")
    parser.add_argument("--measure", type=int, default=10, help="Once-for-All: sub-networks measured")
    parser.add_argument("--retrain-epochs", type=int, default=5)
    parser.add_argument("--retrain-images", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=list(PLAN), help="run only these methods")
    parser.add_argument("--out", type=Path, default=Path("out/search-comparison"))
    parser.add_argument("--docs", type=Path, default=Path("docs/search-comparison"))
    args = parser.parse_args()

    from edgetailor.latency import profiles

    profile = profiles.load(args.device)
    rows = []
    for method in args.only or PLAN:
        path = args.out / f"{method}.json"
        row = json.loads(path.read_text()) if path.exists() else None
        if row is None:
            _log(f"== {method}: searching {PLAN[method]} for at most {args.seconds:g} s")
            folder = args.out / method
            folder.mkdir(parents=True, exist_ok=True)
            load = os.getloadavg()[0]  # the machine is shared: how busy it was, beside every wall time
            if method in OPTUNA:
                found = run_optuna(method, args, profile, folder)
            elif method == "ofa":
                found = run_ofa(args, profile, folder)
            else:
                found = run_supernet_search(method, args, profile, folder / "search")
            from edgetailor.arch.spec import decode

            spec = decode(found["spec"])
            row = {"method": method, "space": PLAN[method], **found,
                   "latency_ms": round(profile.predict(spec, CLASSES).total_ms, 4),
                   "load_1min": [round(load, 2), round(os.getloadavg()[0], 2)]}
            write_json(path, row)
        if "top1" not in row:
            _log(f"== {method}: retraining {row['spec']}")
            row.update(retrain(row["spec"], args))
            write_json(path, row)
        _log(f"== {method}: {row['latency_ms']:.3f} ms, top-1 {row['top1']} %, search {row['seconds']} s "
             f"(load {row['load_1min'][0]:g} -> {row['load_1min'][1]:g})")
        rows.append(row)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    header = (f"{profile.name} ({args.device}), budget {args.budget_ms:g} ms, {args.seconds:g} s of search per method, shapes "
              f"({CLASSES} classes) at 32 px, {args.images} search images; retrained from scratch: "
              f"{retrain_recipe(args).describe()}, {args.retrain_images} images, 500 held out\n\n")
    text = header + table(rows, args)
    print(text)
    write_text(args.docs / "table.md", text)
    write_json(args.docs / "results.json", {"settings": settings, "profile": profile.name,
                                            "profile_version": str(profile.version), "rows": rows})
    write_bytes(args.docs / "pareto.png", pareto_png(rows, args, profile.name))
    _log(f"wrote {args.docs}/table.md, results.json, pareto.png")


if __name__ == "__main__":
    main()
