"""Search benchmark: a proxy-trained search on ``shapes``, hand-made baselines, NSGA-II vs random.

    python benchmarks/search.py [--device pixel1|HOST_PROFILE.json] [--trials 20] [--tiny]

1. NSGA-II (Pareto objective, steered to the budget) and random search, ``--trials`` each, every
   candidate proxy-trained with the same recipe (a repeated architecture is trained once);
   wall time of each.
2. The most accurate candidate found under the budget vs the widest MobileNetV2 / MobileNetV3-Large
   whose predicted latency does not exceed that candidate's, trained with the same recipe.
3. Hypervolume (top-1 % x ms over (0 %, the space's slowest point)) of NSGA-II vs random at equal
   trial counts, on the proxy accuracies, and on a cheap latency-only run with ``--cheap-trials``
   trials each (ImageNet top-1 estimated from MACs), with the latency-only evaluation rate.

``--tiny`` is a smoke setting (3 trials, 64 images, 1 epoch, width x0.25). Prints Markdown tables
and writes JSON and the two Pareto plots to ``--out``. The default budget is MobileNetV2-1.0's
predicted latency on the device.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edgetailor.latency import profiles
from edgetailor.tasks.classification import train as proxy_train
from edgetailor.choose.search import engine as search, report as search_report
from edgetailor.arch import spaces, zoo
from edgetailor.choose.accuracy import generic_estimator
from edgetailor.choose.candidate import ranked_within
from edgetailor.latency.space import SpacePredictor

WIDTHS = np.round(np.arange(0.25, 1.501, 0.05), 2)


class Memo:
    """One proxy training per architecture, shared by both searches and the baselines."""

    def __init__(self, trainer: proxy_train.ProxyTrainer):
        self.trainer, self.cache, self.trained = trainer, {}, 0
        self.recipe, self.num_classes = trainer.recipe, trainer.num_classes

    def __call__(self, spec):
        key = spec.encode()
        if key not in self.cache:
            self.cache[key] = self.trainer(spec)
            self.trained += 1
        return self.cache[key]


def widest_under(family: str, latency_ms: float, profile, resolution: int, num_classes: int):
    """The widest width of ``family`` (0.25..1.5) whose predicted latency is <= ``latency_ms``."""
    best = None
    for width in WIDTHS:
        spec = zoo.FAMILIES[family].spec(float(width), 1.0, resolution)
        ms = profile.predict(spec, num_classes).total_ms
        if ms <= latency_ms:
            best = (float(width), spec, ms)
    return best


def run(strategy: str, args, evaluator, out: Path) -> search.SearchResult:
    config = search.SearchConfig(space=args.space, device=args.device, budget_ms=args.budget_ms,
                                 objective="pareto", strategy=strategy, trials=args.trials, seed=args.seed)
    result = search.run_search(config, evaluator)
    folder = out / strategy
    folder.mkdir(parents=True, exist_ok=True)
    search_report.write_outputs(result, folder)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="pixel1", help="profile name or a host profile file")
    parser.add_argument("--space", default="mnasnet")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--budget-ms", type=float, help="default: MobileNetV2-1.0's predicted latency")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--proxy-width", type=float, default=1.0)
    parser.add_argument("--cheap-trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/bench-search"))
    parser.add_argument("--tiny", action="store_true", help="smoke setting: a few seconds per trial")
    args = parser.parse_args()
    if args.tiny:
        args.trials, args.epochs, args.images, args.proxy_width, args.cheap_trials = 3, 1, 64, 0.25, 12
    profile = profiles.load(args.device)
    space = spaces.get(args.space)
    resolution = space.resolutions[-1]
    recipe = proxy_train.Recipe(resolution=args.resolution, epochs=args.epochs, train_images=args.images,
                                val_images=max(1, args.images // 4), width=args.proxy_width, seed=args.seed)
    evaluator = Memo(proxy_train.ProxyTrainer(recipe))
    if args.budget_ms is None:
        args.budget_ms = round(profile.predict(zoo.FAMILIES["mobilenet_v2"].spec(1.0, 1.0, resolution),
                                               evaluator.num_classes).total_ms, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"## Search benchmark: {args.space} on {profile.name}, budget {args.budget_ms} ms, "
          f"{args.trials} trials per strategy")
    print(f"proxy recipe: shapes, {recipe.train_images} train / {recipe.val_images} val images, "
          f"{recipe.describe()}\n")

    results, walls = {}, {}
    for strategy in ("nsga2", "random"):
        trained = evaluator.trained
        started = time.perf_counter()
        results[strategy] = run(strategy, args, evaluator, args.out)
        walls[strategy] = (time.perf_counter() - started, evaluator.trained - trained)

    found = results["nsga2"].best or results["random"].best
    pool = results["nsga2"].trials + results["random"].trials
    under = ranked_within(pool, args.budget_ms)
    best = under[0] if under else min(pool, key=lambda t: t.latency_ms)
    rows = [("searched (best under budget)" if under else "searched (fastest found; none under budget)",
             best.latency_ms, best.accuracy.value, best.candidate.spec.encode())]
    for family in ("mobilenet_v2", "mobilenet_v3_large"):
        pick = widest_under(family, best.latency_ms, profile, resolution, evaluator.num_classes)
        if pick is None:
            rows.append((f"{family}: no width 0.25..1.5 at or under {best.latency_ms:.1f} ms", None, None, ""))
            continue
        width, spec, ms = pick
        accuracy = evaluator(spec)[0]
        rows.append((f"{family} x{width:g}", ms, accuracy, spec.encode()))

    print("| run | trials | proxy trainings | wall s | Pareto points | hypervolume |")
    print("|---|---|---|---|---|---|")
    for strategy, result in results.items():
        wall, trained = walls[strategy]
        print(f"| {strategy} | {result.counts.get('complete', 0)} | {trained} | {wall:.0f} | "
              f"{len(result.front)} | {result.hypervolume:.0f} |")
    print("\n| model | predicted ms | proxy top-1 % |")
    print("|---|---|---|")
    for name, ms, accuracy, _ in rows:
        print(f"| {name} | {'-' if ms is None else f'{ms:.1f}'} | {'-' if accuracy is None else f'{accuracy:.1f}'} |")

    # latency-only: the evaluation rate, and NSGA-II vs random with estimated ImageNet top-1
    predictor = SpacePredictor(space, profile)
    choices = space.sample(np.random.default_rng(0), 100000)
    started = time.perf_counter()
    predictor.predict(choices)
    rate = len(choices) / (time.perf_counter() - started)
    cheap = {}
    for strategy in ("nsga2", "random"):
        config = search.SearchConfig(space=args.space, device=args.device, objective="pareto",
                                     strategy=strategy, trials=args.cheap_trials, seed=args.seed)
        started = time.perf_counter()
        result = search.run_search(config, generic_estimator())
        cheap[strategy] = (result.hypervolume, len(result.front), time.perf_counter() - started)
    print(f"\nlatency-only evaluation: {rate:,.0f} candidates/s ({args.space}, vectorised predictor)")
    print(f"\n| estimated-accuracy run ({args.cheap_trials} trials) | hypervolume | Pareto points | wall s |")
    print("|---|---|---|---|")
    for strategy, (volume, points, wall) in cheap.items():
        print(f"| {strategy} | {volume:.0f} | {points} | {wall:.1f} |")
    report = {
        "device": profile.name, "space": args.space, "budget_ms": args.budget_ms, "trials": args.trials,
        "recipe": recipe.to_dict(),
        "runs": {s: {"wall_s": round(walls[s][0], 1), "trainings": walls[s][1], "hypervolume": r.hypervolume,
                     "front": [c.to_dict() for c in r.front]} for s, r in results.items()},
        "comparison": [{"model": n, "latency_ms": ms, "accuracy": a, "spec": spec} for n, ms, a, spec in rows],
        "latency_only_rate_per_s": round(rate), "estimated_runs": {
            s: {"hypervolume": v, "front": p, "wall_s": round(w, 1)} for s, (v, p, w) in cheap.items()},
        "best_found_by_nsga2": found.to_dict() if found else None,
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.out}/report.json, {args.out}/nsga2/pareto.png, {args.out}/random/pareto.png")


if __name__ == "__main__":
    main()
