"""The honest check of the host profile: predicted vs measured end-to-end TFLite latency.

    python benchmarks/host_latency.py --space mnasnet --archs 50 [--work out/host_bench]
    python benchmarks/host_latency.py --all-spaces --archs 5 --seed 0 --profile host.json [--retest]
    python benchmarks/host_latency.py --all-spaces --archs 2 --seed 0 --chains

``--all-spaces``: random architectures of the four search spaces (--archs each) at random
resolutions, plus every zoo family at a width and resolution other than its published ones (drawn
with --seed). ``--profile`` takes a profile ``edgetailor profile measure --kernels`` built; the
table then prints the op-table prediction and the kernel predictor's side by side, and the time
each takes to predict one model. Measured latency is best-of, taken in rounds through all models
(``timing.interleaved_best_ms``; with one thread, the invoking thread's CPU time), the figure least
spoiled by other processes and by this machine's slow states.

Phase 1 (slow, 25-100 s per model, cached in --work): draws --archs random architectures of
the space plus the zoo models at <= 300 px (``--zoo-models family``: one per family), builds
each and converts it to TFLite.
Phase 2 (a few minutes; keep the machine otherwise idle): measures the host profile op by op
(``edgetailor profile measure`` does the same), then times every converted model end to end
with the same interpreter settings and prints predicted vs measured and the error distribution.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edgetailor._io import write_json
from edgetailor.profiling import host as host_profile
from edgetailor.latency import profiles
from edgetailor.arch import spaces, zoo
from edgetailor.latency.cost import op_key
from edgetailor.arch.layers import walk


def _targets(space_name: str, archs: int, seed: int, zoo_models: str) -> list[tuple[str, object]]:
    space = spaces.get(space_name)
    rng = np.random.default_rng(seed + 1)
    out = [(f"{space_name}-{i:02d}", space.decode(row)) for i, row in enumerate(space.sample(rng, archs))]
    entries = [e for e in zoo.entries() if e.resolution <= 300]
    if zoo_models == "family":  # one model per family, its width-1.0 (or first) entry
        by_family = {}
        for entry in entries:
            if entry.family not in by_family or entry.width == 1.0:
                by_family[entry.family] = entry
        entries = list(by_family.values())
    return out + [(e.name, e.spec) for e in entries]


def _mixed_targets(archs: int, seed: int) -> list[tuple[str, object]]:
    """Random architectures of every kernel-sampled space at random resolutions, and each zoo
    family once at an unpublished width and resolution."""
    from edgetailor.profiling.kernels import RESOLUTIONS, SPACES, WIDTHS
    from edgetailor.errors import SpecError
    import dataclasses

    rng = np.random.default_rng(seed + 7)
    out = []
    for name in SPACES:
        space = spaces.get(name)
        for i, row in enumerate(space.sample(rng, archs)):
            resolution = int(rng.choice(RESOLUTIONS))
            out.append((f"{name}-r{resolution}-{seed}-{i:02d}",
                        dataclasses.replace(space.decode(row), resolution=resolution)))
    for family in sorted({e.family for e in zoo.entries()}):
        published = {(e.width, e.resolution) for e in zoo.entries() if e.family == family}
        for _ in range(20):  # a width/resolution pair the family does not publish, that builds
            width, resolution = float(rng.choice(WIDTHS)), int(rng.choice(RESOLUTIONS))
            if (width, resolution) in published:
                continue
            try:
                spec = zoo.resolve(family, width, resolution).spec
                walk(spec)
            except SpecError:
                continue
            out.append((f"{family}-w{width:g}-r{resolution}", spec))
            break
    return out


def convert_all(targets, work: Path) -> None:
    from edgetailor.builder import network as builder
    from edgetailor.converters.tflite import to_tflite

    for i, (name, spec) in enumerate(targets):
        path = work / f"{name}.tflite"
        if path.exists():
            continue
        started = time.perf_counter()
        path.write_bytes(to_tflite(builder.build(spec)))
        print(f"[{i + 1}/{len(targets)}] converted {name} in {time.perf_counter() - started:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mnasnet")
    parser.add_argument("--archs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("out/host_bench"))
    parser.add_argument("--convert-only", action="store_true")
    parser.add_argument("--end-to-end", type=int, default=6,
                        help="converted models (another seed) timed whole to scale op timings")
    parser.add_argument("--zoo-models", choices=("all", "family"), default="all",
                        help="every zoo model at <= 300 px, or one per family")
    parser.add_argument("--all-spaces", action="store_true",
                        help="the four spaces at random resolutions + every family at unpublished sizes")
    parser.add_argument("--profile", type=Path,
                        help="a host profile (with --kernels) to check instead of measuring one here")
    parser.add_argument("--chains", action="store_true",
                        help="time each converted model beside its chained kernels instead (no profile needed)")
    parser.add_argument("--retest", action="store_true",
                        help="with --profile: time the models a second time and score that timing against the "
                             "first, the ceiling a perfect predictor reaches on this machine")
    parser.add_argument("--only", help="comma-separated: keep only the targets whose name contains one of these")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    targets = _mixed_targets(args.archs, args.seed) if args.all_spaces else \
        _targets(args.space, args.archs, args.seed, args.zoo_models)
    if args.only:
        targets = [t for t in targets if any(part in t[0] for part in args.only.split(","))]
    convert_all(targets, args.work)
    if args.convert_only:
        return
    if args.chains:
        chains(targets, args.work, args.threads)
        return
    if args.profile:
        compare(targets, profiles.load_file(args.profile), args.work, args.threads, args.retest)
        return
    from edgetailor.profiling.timing import time_tflite

    started = time.perf_counter()
    ops = host_profile.collect_ops(args.space, 30, args.seed, include_zoo=True)
    measured = host_profile.measure_ops(ops, args.work / "ops.jsonl", args.threads)
    overhead = host_profile._empty_model_ms(args.threads)
    document = host_profile.host_profile(ops, measured, overhead, args.threads, args.space)
    if args.end_to_end:
        document = host_profile.end_to_end_correction(document, args.space, args.end_to_end,
                                                      args.seed, args.threads, args.work)
    write_json(args.work / "host.json", document)
    profile = profiles.load_file(args.work / "host.json")
    build_s = time.perf_counter() - started
    in_table = set(profile.table)
    rows = []
    for name, spec in targets:
        seen = all(op_key(op) in in_table for layer in walk(spec) for op in layer.ops)
        timing = time_tflite((args.work / f"{name}.tflite").read_bytes(), args.threads,
                             warmup=5, min_runs=20, min_seconds=0.3)
        predicted = profile.predict(spec).total_ms
        rows.append((name, predicted, timing.median_ms, seen))
    errors = np.array([100 * (p / m - 1) for _, p, m, _ in rows])
    print(f"host profile: {profile.name}, {len(ops)} ops measured in {build_s:.0f} s\n")
    print("| model | predicted ms | measured ms | error | all ops measured |")
    print("|---|---|---|---|---|")
    for (name, p, m, seen), e in zip(rows, errors):
        print(f"| {name} | {p:.2f} | {m:.2f} | {e:+.1f}% | {'yes' if seen else 'no'} |")
    space_errors = errors[: args.archs]
    for label, errs in (("random " + args.space, space_errors), ("zoo", errors[args.archs:]), ("all", errors)):
        print(f"\n{label}: n={len(errs)}  mean abs error {np.mean(np.abs(errs)):.1f}%  "
              f"within ±10%: {np.mean(np.abs(errs) <= 10):.0%}  bias {np.mean(errs):+.1f}%")
    (args.work / "results.json").write_text(json.dumps(
        [{"model": n, "predicted_ms": p, "measured_ms": m} for n, p, m, _ in rows], indent=1))


MODEL_PASSES = 12  # rounds through all models (timing.interleaved_best_ms): each model seen at 12 moments


def _predict_us(predict, spec, repeats: int = 5) -> tuple[float, float]:
    """A prediction in ms and the best time it took, in microseconds."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        ms = predict(spec)
        best = min(best, time.perf_counter() - started)
    return ms, best * 1e6


def _timed(targets, work: Path, threads: int) -> list[float]:
    """Best-of ms of each converted model, in rounds through all of them."""
    from edgetailor.profiling.timing import interleaved_best_ms

    return interleaved_best_ms([(work / f"{name}.tflite").read_bytes() for name, _ in targets], threads,
                               passes=MODEL_PASSES, window_s=0.05, warmup=5, min_span_s=30.0)


def compare(targets, profile, work: Path, threads: int, retest: bool = False) -> None:
    """The op tables', the kernels' summed as timed alone and the kernels' with their in-network
    terms, against best-of measured latency; ``retest``: also a second timing of the same models
    scored as if it were a predictor (how far two timings of one model drift apart here)."""
    import dataclasses
    import os

    from edgetailor.latency.kernel_predictor import IDENTITY_NETWORK

    if profile.kernels is None:
        raise SystemExit(f"{profile.path} has no kernel predictor: build it with profile measure --kernels")
    predictors = {"op tables": dataclasses.replace(profile, kernels=None),
                  "kernels alone": dataclasses.replace(
                      profile, kernels=dataclasses.replace(profile.kernels, network=IDENTITY_NETWORK)),
                  "kernels in network": profile}
    timed = _timed(targets, work, threads)
    again = _timed(targets, work, threads) if retest else None
    rows = []
    for index, ((name, spec), measured) in enumerate(zip(targets, timed)):
        predicted = {label: _predict_us(lambda s, p=p: p.predict(s).total_ms, spec) for label, p in predictors.items()}
        if again:
            predicted["measured again"] = (again[index], 0.0)
        fallback = sum(layer.source != "kernels" for layer in profile.predict(spec).layers)
        rows.append((name, measured, predicted, fallback))
    print(f"profile {profile.name}; load {os.getloadavg()[0]:.2f} (1 min) at the end; measured = best of {MODEL_PASSES} "
          "rounds through all models (1 thread: CPU time of the invoking thread, as the kernels were timed)\n")
    labels = list(rows[0][2])
    print("| model | measured ms | " + " | ".join(f"{label} ms | error" for label in labels)
          + " | layers not by kernels |")
    print("|---|---|" + "---|---|" * len(labels) + "---|")
    for name, m, predicted, fallback in rows:
        cells = " | ".join(f"{ms:.2f} | {100 * (ms / m - 1):+.1f}%" for ms, _ in predicted.values())
        print(f"| {name} | {m:.2f} | {cells} | {fallback} |")
    groups = {"spaces": [r for r in rows if "-r" in r[0] and "-w" not in r[0]],
              "zoo families": [r for r in rows if "-w" in r[0]], "all": rows}
    print("\n| models | n | " + " | ".join(f"{label} within ±10% | mean abs" for label in labels) + " |")
    print("|---|---|" + "---|---|" * len(labels))
    for label, group in groups.items():
        if not group:
            continue
        cells = []
        for name in labels:
            errors = np.array([abs(100 * (r[2][name][0] / r[1] - 1)) for r in group])
            cells.append(f"{np.mean(errors <= 10):.0%} | {errors.mean():.1f}%")
        print(f"| {label} | {len(group)} | " + " | ".join(cells) + " |")
    print("\nprediction time per model (median): " + ", ".join(
        f"{label} {np.median([r[2][label][1] for r in rows]):.0f} us" for label in predictors))
    (work / "compare.json").write_text(json.dumps(
        [{"model": r[0], "measured_ms": r[1], **{f"{label} ms": r[2][label][0] for label in labels}}
         for r in rows], indent=1))


def chains(targets, work: Path, threads: int) -> None:
    """Each converted model beside its kernels chained in one flatbuffer (``kernels.network_model``,
    what the in-network terms are fitted on), timed in the same rounds."""
    from edgetailor.latency.kernel_predictor import detect_kernels
    from edgetailor.profiling.kernels import network_model
    from edgetailor.profiling.timing import interleaved_best_ms, runs

    pairs = []
    for name, spec in targets:
        chain = network_model(detect_kernels(walk(spec)))
        if runs(chain):
            pairs.append((name, (work / f"{name}.tflite").read_bytes(), chain))
    timed = interleaved_best_ms([m for _, converted, chain in pairs for m in (converted, chain)], threads,
                                passes=MODEL_PASSES, window_s=0.05, warmup=5, min_span_s=30.0)
    print("| model | converted ms | chained kernels ms | ratio |\n|---|---|---|---|")
    ratios = []
    for i, (name, _, _) in enumerate(pairs):
        ratios.append(timed[2 * i + 1] / timed[2 * i])
        print(f"| {name} | {timed[2 * i]:.2f} | {timed[2 * i + 1]:.2f} | {ratios[-1]:.3f} |")
    ratios = np.array(ratios)
    print(f"\n{len(ratios)} models: ratio median {np.median(ratios):.3f}, range {ratios.min():.3f}-{ratios.max():.3f}, "
          f"within ±5 %: {np.mean(np.abs(ratios - 1) <= 0.05):.0%}; {len(targets) - len(pairs)} chains refused by the runtime")


if __name__ == "__main__":
    main()
