"""The honest check of the host profile: predicted vs measured end-to-end TFLite latency.

    python benchmarks/host_latency.py --space mnasnet --archs 50 [--work out/host_bench]

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
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    targets = _targets(args.space, args.archs, args.seed, args.zoo_models)
    convert_all(targets, args.work)
    if args.convert_only:
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


if __name__ == "__main__":
    main()
