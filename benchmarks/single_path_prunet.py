"""Single-Path NAS and PruNet (with and without its pruning) at proxy scale: one table.

    .venv/bin/python benchmarks/single_path_prunet.py --out /tmp/spnas_bench [--epochs 10 --images 2000]

Each search runs on the shapes data at 32 px on ``single_path_proxy``, priced on one device profile
under one budget; the table gives the found network, its predicted latency against the budget, the
held-out top-1 of the found network with inherited weights (batch norm recalibrated, not fine-tuned),
the search wall time (TensorFlow's one-off graph tracing included) and the MACs one image costs in a
search step at the first and the last epoch, and the whole search's MACs (steps x batch x per image).
A folder in ``--out`` that already holds a finished search is read back, not run again.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgetailor.latency import profiles
from edgetailor.supernet import data, searches

RUNS = (("single_path", {}), ("prunet", {}), ("prunet", {"pruning": False}))


def run(name: str, settings: dict, args) -> dict:
    folder = Path(args.out) / (name + ("" if settings.get("pruning", True) else "_no_pruning"))
    request = searches.Request(name, args.space, profiles.load(args.device), args.budget_ms, "shapes", folder,
                               epochs=args.epochs, resolution=args.resolution, images=args.images,
                               batch_size=args.batch_size, seed=args.seed, settings=settings,
                               progress=lambda report: print(report.line(), flush=True))
    result = searches.run(request)
    from edgetailor import builder
    from edgetailor.supernet.evaluate import top1

    model = builder.build(result.spec, num_classes=len(result.classes))
    searches.load_weights(model, result.weights)
    score, _ = top1(model, data.open_source(**result.dataset), args.resolution)
    history = result.history
    mmacs = [entry["extra"]["mmacs_per_image"] for entry in history]
    search_tmacs = sum(e["extra"]["mmacs_per_image"] * e["extra"]["steps"] * args.batch_size for e in history) / 1e6
    return {"strategy": name + ("" if settings.get("pruning", True) else " (no pruning)"),
            "arch": result.spec.encode(), "predicted_ms": result.predicted_ms, "budget_ms": result.budget_ms,
            "top1": score, "seconds": result.seconds, "mmacs_first": mmacs[0], "mmacs_last": mmacs[-1],
            "search_tmacs": round(search_tmacs, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--space", default="single_path_proxy")
    parser.add_argument("--device", default="pixel1")
    parser.add_argument("--budget-ms", type=float, default=2.2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=[f"{n}{'' if s.get('pruning', True) else '_no_pruning'}" for n, s in RUNS])
    args = parser.parse_args()
    rows = []
    for name, settings in RUNS:
        if args.only and args.only != name + ("" if settings.get("pruning", True) else "_no_pruning"):
            continue
        rows.append(run(name, settings, args))
    print(f"\n{args.space} on {args.device}, budget {args.budget_ms:g} ms, shapes data at {args.resolution} px, "
          f"{args.epochs} epochs of {args.images} images\n")
    print("| strategy | predicted ms (budget) | held-out top-1 % | search s | MMACs/image first -> last epoch "
          "| search TMACs | found network |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['strategy']} | {r['predicted_ms']:.3f} ({r['budget_ms']:g}) | {r['top1']:.2f} | "
              f"{r['seconds']:.0f} | {r['mmacs_first']:.2f} -> {r['mmacs_last']:.2f} | {r['search_tmacs']:.3f} | "
              f"`{r['arch']}` |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
