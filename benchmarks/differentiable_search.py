"""FBNet, ProxylessNAS and LightNAS at proxy scale: one table on one device, budget and dataset.

Each strategy searches its registered space (``fbnet`` or ``proxyless``) on the built-in ``shapes``
data at 32 px for pixel1 under one budget, then the found network — weights inherited from the
search supernet, batch norm recalibrated — is fine-tuned with one recipe for all (the specializer's
``--finetune``: SGD 0.01 per 64 images, cosine) and scored on the held-out split the search never
saw. Printed per strategy: the found architecture (per-stage ops), its latency on the profile
against the budget, held-out top-1 inherited and after the fine-tune, the search's wall time.

    python benchmarks/differentiable_search.py               # ~25 minutes on two cores
    python benchmarks/differentiable_search.py --quick       # smoke run (~5 minutes)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# (strategy, space, search epochs, settings): FBNet runs every op of every slot per step (about 4x a
# single-path step here), so it gets fewer epochs for a similar wall time. LightNAS runs twice: with
# the paper's multiplier ascent rate 5e-4 per step, and 100x that (a proxy run has ~1 % of its steps).
RUNS = (("fbnet", "fbnet", 2, {}), ("proxyless", "proxyless", 4, {}), ("lightnas", "proxyless", 4, {}),
        ("lightnas", "proxyless", 4, {"lam": 0.05}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="pixel1")
    parser.add_argument("--budget-ms", type=float, default=3.0)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--finetune", type=int, default=5, help="fine-tuning epochs of the found network")
    parser.add_argument("--quick", action="store_true", help="1 epoch each, 200 images")
    parser.add_argument("--out", type=Path, help="keep the search folders here (a rerun resumes them)")
    args = parser.parse_args()

    from edgetailor import builder
    from edgetailor.latency import profiles
    from edgetailor.supernet import data, searches
    from edgetailor.supernet.evaluate import top1
    from edgetailor.supernet.finetune import finetune
    from edgetailor.supernet.specialize import FINETUNE_LR

    profile = profiles.load(args.device)
    images = 200 if args.quick else args.images
    root = args.out or Path(tempfile.mkdtemp(prefix="dnas_bench_"))
    print(f"{args.device}, budget {args.budget_ms:g} ms, shapes {images} images at {args.resolution} px "
          f"(a fifth held out for the architecture steps), batch {args.batch_size}, fine-tune {args.finetune} "
          "epochs", flush=True)
    print("| strategy | space | found (ops per stage) | predicted ms | vs budget | expected ms at end "
          "| top-1 inherited % | top-1 fine-tuned % | search s |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for strategy, space, epochs, settings in RUNS:
        epochs = 1 if args.quick else epochs
        tag = "_".join([strategy, space] + [f"{k}{v:g}" for k, v in settings.items()])
        request = searches.Request(strategy, space, profile, args.budget_ms, "shapes", root / tag, epochs=epochs,
                                   resolution=args.resolution, images=images, batch_size=args.batch_size,
                                   settings=settings,
                                   progress=lambda r: print("  " + r.line()[:220], file=sys.stderr, flush=True))
        print(f"{tag}: {epochs} epochs", file=sys.stderr, flush=True)
        result = searches.run(request)
        source = data.open_source(**result.dataset)
        model = builder.build(result.spec, num_classes=len(result.classes), classifier_activation="softmax")
        searches.load_weights(model, result.weights)
        inherited = top1(model, source, args.resolution)[0]
        finetune(model, source, args.resolution, args.finetune, FINETUNE_LR)
        tuned, scored = top1(model, source, args.resolution)
        last = result.history[-1]
        ms = result.predicted_ms
        name = strategy + "".join(f" ({k} {v:g})" for k, v in settings.items())
        print(f"| {name} | {space} | {_ops(result.spec)} | {ms:.2f} | {100 * (ms / args.budget_ms - 1):+.1f} % | "
              f"{last['expected_ms']:.2f} | {inherited:.1f} | {tuned:.1f} ({scored} images) | "
              f"{result.seconds:.0f} |", flush=True)
        for note in result.notes:
            if "left out" not in note:
                print(f"  note ({name}): {note}", flush=True)
        if "lambda" in last["extra"]:
            print(f"  lambda at the end ({name}): {last['extra']['lambda']:g}", flush=True)


def _ops(spec) -> str:
    """The searched stages' blocks, compact: ``k3e6 skip ... | ...``."""
    return " | ".join(" ".join("skip" if b.kind == "skip" else f"k{b.kernel}e{b.expand:g}" for b in stage)
                      for stage in spec.stages)


if __name__ == "__main__":
    main()
