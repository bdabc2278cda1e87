"""Host profile of the hybrid networks' ops, against the same networks converted and timed whole.

    python benchmarks/hybrid_host_latency.py [--models edgenext_xxs efficientformerv2_s0]
        [--resolutions 64 96] [--threads 1] [--repeats 5] [--work out/hybrid_host]

Measures every distinct op the layer walk of the named zoo models (at each resolution) yields as a
one-op TFLite model (``profiling.tflite_ops`` / ``hybrid_tflite_ops``; journal in --work, so a rerun
resumes), builds the host profile from them (op table + fitted coefficients, no end-to-end scale),
converts each model with the real converter (cached in --work) and times it whole ``--repeats``
times (each a warm median and its fastest run); prints predicted vs measured (median of the
repeats' medians, their spread, and the fastest single run), what the fitted coefficients alone
would predict, the time by op kind, and the load average before and after. On a loaded machine
a whole model (milliseconds) is preempted mid-run far more often than a one-op model (tens of
microseconds), so its median grows with the load while the op medians barely do; the fastest
run is the figure the load touches least.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

import numpy as np

from edgetailor.arch import zoo
from edgetailor.arch.layers import walk
from edgetailor.latency import profiles
from edgetailor.latency.cost import op_features, op_key
from edgetailor.profiling import host as host_profile


def _targets(models: list[str], resolutions: list[int]) -> list[tuple[str, object]]:
    return [(f"{name}@{res}", zoo.resolve(name, resolution=res).spec) for name in models for res in resolutions]


def _convert(targets, work: Path) -> None:
    from edgetailor.builder import network as builder
    from edgetailor.converters.tflite import to_tflite

    for name, spec in targets:
        path = work / f"{name}.tflite"
        if not path.exists():
            started = time.perf_counter()
            path.write_bytes(to_tflite(builder.build(spec)))
            print(f"converted {name} in {time.perf_counter() - started:.0f} s", flush=True)


def _by_kind(spec, table: dict[str, float]) -> dict[str, float]:
    """Table ms by op kind over the walk (the kinds that dominate the prediction)."""
    out: dict[str, float] = collections.defaultdict(float)
    for layer in walk(spec):
        for op in layer.ops:
            out[op.kind] += table[op_key(op)]
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["edgenext_xxs", "efficientformerv2_s0"])
    parser.add_argument("--resolutions", nargs="+", type=int, default=[64, 96])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="whole-model timings (each a warm median)")
    parser.add_argument("--work", type=Path, default=Path("out/hybrid_host"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    targets = _targets(args.models, args.resolutions)
    _convert(targets, args.work)
    from edgetailor.profiling.timing import time_tflite

    load_before = os.getloadavg()
    seen = {}
    for _, spec in targets:
        for layer in walk(spec):
            for op in layer.ops:
                seen.setdefault(op_key(op), op)
    ops = [seen[key] for key in sorted(seen)]
    started = time.perf_counter()
    overhead = host_profile._empty_model_ms(args.threads)
    measured = host_profile.measure_ops(ops, args.work / "ops.jsonl", args.threads)
    document = host_profile.host_profile(ops, measured, overhead, args.threads,
                                         "zoo:" + ",".join(name for name, _ in targets))
    (args.work / "host.json").write_text(json.dumps(document, indent=1))
    profile = profiles.from_dict(document, "hybrid host profile")
    coefficients = np.asarray(document["coefficients"])
    print(f"host profile {profile.name}: {len(ops)} ops, measured in {time.perf_counter() - started:.0f} s; "
          f"per-inference constant {overhead:.4f} ms")
    print("| model | predicted ms (op table) | measured ms (median of repeats) | repeats min-max | error "
          "| fastest run ms | error | coefficients only ms | error vs median |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name, spec in targets:
        model = (args.work / f"{name}.tflite").read_bytes()
        timings = [time_tflite(model, args.threads, warmup=5, min_runs=30, min_seconds=0.5)
                   for _ in range(args.repeats)]
        runs = [t.median_ms for t in timings]
        whole, fastest = float(np.median(runs)), min(t.min_ms for t in timings)
        predicted = profile.predict(spec).total_ms
        fitted = float(sum(op_features(op) @ coefficients for layer in walk(spec) for op in layer.ops)
                       + coefficients[-1])
        rows.append({"model": name, "predicted_ms": predicted, "measured_ms": whole, "runs_ms": runs,
                     "fastest_ms": fastest,
                     "coefficients_only_ms": fitted, "by_kind_ms": _by_kind(spec, profile.table)})
        print(f"| {name} | {predicted:.3f} | {whole:.3f} | {min(runs):.3f}-{max(runs):.3f} | "
              f"{100 * (predicted / whole - 1):+.1f}% | {fastest:.3f} | {100 * (predicted / fastest - 1):+.1f}% | "
              f"{fitted:.3f} | {100 * (fitted / whole - 1):+.1f}% |")
    load_after = os.getloadavg()
    print(f"\nload average (1, 5, 15 min) before {load_before}, after {load_after}; "
          f"{os.cpu_count()} CPUs; {args.threads} interpreter thread(s)")
    for row in rows:
        top = ", ".join(f"{kind} {ms:.3f}" for kind, ms in list(row["by_kind_ms"].items())[:8])
        print(f"{row['model']} op table ms by kind: {top}")
    (args.work / "results.json").write_text(json.dumps(
        {"load_before": load_before, "load_after": load_after, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
