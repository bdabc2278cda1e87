"""Once-for-All at proxy scale: train a supernet on ``shapes``, then specialize it for three phones.

Reports, in one table:
- supernet training time per progressive-shrinking phase;
- held-out top-1 of sub-networks with inherited weights + batch-norm recalibration, against the same
  sub-networks trained from scratch for as many epochs as the supernet trained in all (Once-for-All
  claims inherited is at least as good; this prints what it measures);
- the accuracy predictor's held-out error (and the error of predicting the mean);
- per phone: the evolutionary search (sub-networks per second) and search + extraction +
  recalibration + measurement time, excluding conversion (target: under 30 s);
- the multi-target folder for three phones, conversion included.

The space is ``ofa_proxy`` (Once-for-All's first two stages at a quarter width), so that a run fits
on two CPU cores; ``--space ofa_mbv3 --divide 2`` runs all five stages at half width.

    python benchmarks/supernet.py                 # ~15 minutes on two cores
    python benchmarks/supernet.py --quick         # smoke run (~4 minutes)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PHONES = ("pixel1", "galaxy_s8", "iphone_x")


def proxy_space(name: str, divide: int):
    """``name`` from the registry, its channels divided by ``divide`` (1: as registered)."""
    from edgetailor.arch import spaces

    space = spaces.get(name)
    if divide == 1:
        return space
    if name != "ofa_mbv3":
        raise SystemExit("--divide applies to ofa_mbv3")
    stages = tuple(dataclasses.replace(s, channels=max(8, s.channels // divide)) for s in space.stages)
    return dataclasses.replace(space, name=f"ofa_mbv3_div{divide}", stages=stages,
                               stem=f"conv_k3_s2_c{24 // divide}_hs,ir_k3_e1_c{24 // divide}_re",
                               head=f"conv_k1_c{1152 // divide}_hs,pool,fc_c{1536 // divide}_hs")


def scratch_top1(spec, source, epochs: int, learning_rate: float, seed: int) -> float:
    """Held-out top-1 of ``spec`` trained from random weights with the supernet's data pipeline."""
    import tensorflow as tf

    from edgetailor import builder
    from edgetailor.supernet.evaluate import top1
    from edgetailor.supernet.finetune import finetune

    tf.random.set_seed(seed)
    model = builder.build(spec, num_classes=len(source.classes), name="scratch")
    finetune(model, source, spec.resolution, epochs, learning_rate)
    return top1(model, source, spec.resolution)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings, to check the script runs")
    parser.add_argument("--space", default="ofa_proxy", help="ofa_proxy or ofa_mbv3")
    parser.add_argument("--divide", type=int, default=1, help="ofa_mbv3's channels divided by this")
    parser.add_argument("--images", type=int, default=640, help="shapes training images")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per phase (six phases)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[40, 48])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.4)
    parser.add_argument("--measure", type=int, default=40, help="sub-networks measured for the predictor")
    parser.add_argument("--compare", type=int, default=10, help="sub-networks also trained from scratch")
    parser.add_argument("--out", type=Path, default=None, help="keep the checkpoint and bundles here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.images, args.epochs, args.resolutions, args.measure, args.compare = 64, 1, [40], 6, 2

    from edgetailor.latency import profiles
    from edgetailor.specialize import Request, specialize_targets
    from edgetailor.bundle.targets import Target
    from edgetailor.supernet import measured
    from edgetailor.supernet.specialize import FromSupernet
    from edgetailor.supernet.train import PHASES, TrainOptions, train

    work = args.out or Path(tempfile.mkdtemp(prefix="supernet_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    space = proxy_space(args.space, args.divide)
    options = TrainOptions(epochs=args.epochs, resolutions=tuple(args.resolutions), images=args.images,
                           learning_rate=args.learning_rate, batch_size=min(args.batch_size, args.images))
    started = time.perf_counter()
    result = train(space, "shapes", work / "ckpt", options)
    train_s = time.perf_counter() - started
    print(f"trained in {train_s:.0f} s: {result.seconds}", file=sys.stderr)

    started = time.perf_counter()
    done = measured.measure(work / "ckpt", result.net, result.state, result.source, args.measure,
                            progress=lambda i, n, m: m and print(f"measured {i}/{n}: {m.top1}", file=sys.stderr))
    measure_s = time.perf_counter() - started
    predictor = measured.fit_predictor(work / "ckpt", result.net.elastic, result.state, done)

    total_epochs = len(PHASES) * args.epochs
    compared = []
    for m in done[2:2 + args.compare]:
        spec = result.net.elastic.spec(m.subnet)
        scratch = scratch_top1(spec, result.source, total_epochs, args.learning_rate, seed=len(compared))
        compared.append({"subnet": m.subnet.describe(), "inherited": m.top1, "scratch": scratch})
        print(f"compared {len(compared)}: inherited {m.top1} scratch {scratch}", file=sys.stderr)

    task = FromSupernet(work / "ckpt")
    phones = []
    budgets = {}
    for name in PHONES:
        profile = profiles.load(name)
        layout, latency = task.layout(), task.latency(profile, len(task.state.classes))
        low = float(latency(layout.row(layout.elastic.smallest(layout.resolutions[0]))[None])[0])
        high = float(latency(layout.row(layout.elastic.largest(layout.resolutions[-1]))[None])[0])
        budgets[name] = round((low + high) / 2, 1)  # halfway between the fastest and the largest
        request = Request(profile=profile, budget_ms=budgets[name], out_dir=work / "unused",
                          supernet=work / "ckpt")
        started = time.perf_counter()
        choice = task.choose(request, len(task.state.classes), lambda message: None)
        search_s = time.perf_counter() - started
        model, accuracy = task.train(choice, task.load(request), list(task.state.classes), request,
                                     lambda message: None)
        phones.append({"device": name, "budget_ms": budgets[name], "range_ms": [round(low, 1), round(high, 1)],
                       "subnet": choice.summary["supernet"]["subnet"],
                       "predicted_ms": round(choice.best.latency_ms, 2),
                       "predicted_top1": choice.summary["supernet"]["predicted_top1"],
                       "measured_top1": accuracy.value,
                       "subnets_per_second": choice.summary["supernet"]["subnets_per_second"],
                       "search_s": round(search_s, 1),
                       "specialize_s": round(time.perf_counter() - started, 1)})

    started = time.perf_counter()
    folder = work / "phones"
    specialize_targets(work / "ckpt", [Target(n, budgets[n]) for n in PHONES], folder, quiet=True)
    targets_s = time.perf_counter() - started

    report = {"space": space.name, "images": args.images, "val_images": len(result.source.val_labels),
              "classes": len(result.source.classes), "resolutions": args.resolutions,
              "epochs_per_phase": args.epochs, "learning_rate": args.learning_rate,
              "train_s": round(train_s, 1), "seconds_by_phase": result.seconds,
              "measured": len(done), "measure_s": round(measure_s, 1),
              "measured_top1": {"largest": done[0].top1, "smallest": done[1].top1,
                                "min": min(m.top1 for m in done), "max": max(m.top1 for m in done)},
              "predictor_held_out": predictor.held_out.to_dict(), "compared": compared,
              "phones": phones, "targets_s": round(targets_s, 1), "out": str(work)}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    chance = 100 / len(result.source.classes)
    print(f"\nsupernet {space.name}: shapes {args.images} train / {report['val_images']} held-out images, "
          f"{report['classes']} classes (chance {chance:.1f} %), {args.resolutions} px, "
          f"{args.epochs} epoch(s) x 6 phases, lr {args.learning_rate}")
    print(f"{'phase':12} {'seconds':>8}")
    for phase, seconds in result.seconds.items():
        print(f"{phase:12} {seconds:8.1f}")
    top = report["measured_top1"]
    print(f"\nmeasured {len(done)} sub-networks in {measure_s:.0f} s: largest {top['largest']} %, smallest "
          f"{top['smallest']} %, range {top['min']}-{top['max']} %")
    held = predictor.held_out
    print(f"accuracy predictor, held-out {held.subnets}: MAE {held.mae_pp} pp (mean predictor "
          f"{held.baseline_mae_pp} pp), RMSE {held.rmse_pp} pp, Kendall tau {held.kendall_tau}")
    print(f"\n{'sub-network':60} {'inherited':>9} {'scratch':>8}   ({total_epochs} epochs from scratch)")
    for row in compared:
        print(f"{row['subnet'][:60]:60} {row['inherited']:9.1f} {row['scratch']:8.1f}")
    if compared:
        wins = sum(r["inherited"] >= r["scratch"] for r in compared)
        mean = lambda key: sum(r[key] for r in compared) / len(compared)  # noqa: E731
        print(f"{'mean':60} {mean('inherited'):9.1f} {mean('scratch'):8.1f}   inherited >= scratch: "
              f"{wins}/{len(compared)}")
    print(f"\n{'device':10} {'budget':>7} {'pred ms':>8} {'pred top1':>9} {'top1':>6} {'subnets/s':>10} "
          f"{'search s':>9} {'total s':>8}")
    for p in phones:
        print(f"{p['device']:10} {p['budget_ms']:7.1f} {p['predicted_ms']:8.2f} {p['predicted_top1']:9.1f} "
              f"{p['measured_top1']:6.1f} {p['subnets_per_second']:10,} {p['search_s']:9.1f} "
              f"{p['specialize_s']:8.1f}")
    print(f"\nthree-phone folder {folder} (search, extraction, conversion, index, selectors): {targets_s:.0f} s")


if __name__ == "__main__":
    main()
