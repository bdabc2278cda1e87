"""A new device from few measurements, end to end on this host: another host setting (int8 on one
thread by default) plays the new device; its profile is adapted from a float32 host profile with
a kernel predictor, from at most --max-kernels measured kernels.

    python benchmarks/profile_adapt.py --base out/idle/host.json --archs 2 --seed 0 [--fit-models 4]

Held-out models: random architectures of the four kernel-sampled spaces at random resolutions and
every zoo family at an unpublished width and resolution (benchmarks/host_latency.py's draw, --archs
per space, --seed), each built and converted by the product's converter (full-integer int8, uint8
in and out, calibrated on 4 random images; cached in --work, 5-60 s each), timed best-of,
interleaved (``timing.interleaved_best_ms``; one thread: the invoking thread's CPU time, as the
kernels are). --networks whole networks of another draw (kernels chained in one model,
``kernels.network_model``, quantized like the kernels) and --fit-models converted models of another
seed are timed into the measurements for the in-network fit.

Prints: the setting, the machine's load, and per predictor (the base unadapted, the base times one
global factor, adapted from the kernels, adapted with the whole models too) the kernels measured,
the time taken to measure them, held-out models within +-10 %, mean absolute and mean signed
error, and the error on held-out kernels (another draw, timed in the new setting: median and
time-weighted); then every model's row and how each kernel type was fitted.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from host_latency import _mixed_targets  # noqa: E402  (the same held-out draw as the host benchmark)

from edgetailor.arch.layers import walk  # noqa: E402
from edgetailor.latency import profiles  # noqa: E402
from edgetailor.profiling import adapt, adapt_measure  # noqa: E402


def _converted(name: str, spec, work: Path, precision: str) -> bytes:
    """The model converted by the product's converter (cached): float32, or full-integer int8."""
    path = work / f"{name}.{precision}.tflite"
    if not path.exists():
        from edgetailor.builder import network as builder
        from edgetailor.converters.tflite import to_tflite

        started = time.perf_counter()
        calibration = None
        if precision == "int8":
            calibration = np.random.default_rng(0).uniform(0, 255, (4, spec.resolution, spec.resolution, 3))
        path.write_bytes(to_tflite(builder.build(spec), None if calibration is None else
                                   calibration.astype(np.float32)))
        print(f"converted {name} ({precision}) in {time.perf_counter() - started:.0f} s", flush=True)
    return path.read_bytes()


def _timed(targets, work: Path, threads: int, precision: str) -> dict[str, float]:
    from edgetailor.profiling.timing import interleaved_best_ms

    timed = interleaved_best_ms([_converted(name, spec, work, precision) for name, spec in targets], threads,
                                passes=8, window_s=0.05, min_span_s=30.0)  # few models: spread them out
    return {name: ms for (name, _), ms in zip(targets, timed)}


def _errors(predictor, targets, measured: dict[str, float]) -> np.ndarray:
    return np.array([100 * (predictor.predict_ms(walk(spec)) / measured[name] - 1) for name, spec in targets])


def _kernel_errors(predictor, journal: Path) -> tuple[float, float]:
    """Held-out kernels: median absolute % error, and the time-weighted one (sum |error| / sum ms)."""
    held = adapt.read(journal)
    predicted, measured = [], []
    for kind, x, ms in held.kernels.values():
        if kind in predictor.ensembles:
            predicted.append(predictor.type_ms(kind, x[None])[0])
            measured.append(max(ms - held.empty_ms, adapt.FLOOR_MS))
    predicted, measured = np.array(predicted), np.array(measured)
    return (float(np.median(np.abs(100 * (predicted / measured - 1)))),
            float(100 * np.abs(predicted - measured).sum() / measured.sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=Path("out/idle/host.json"))
    parser.add_argument("--work", type=Path, default=Path("out/profile_adapt"))
    parser.add_argument("--precision", choices=("float32", "int8"), default="int8")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-kernels", type=int, default=300)
    parser.add_argument("--archs", type=int, default=2, help="held-out random architectures per space")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit-models", type=int, default=0,
                        help="converted whole models (another seed) timed for the in-network fit")
    parser.add_argument("--networks", type=int, default=64,
                        help="whole networks (kernels chained in one model, another seed) timed for the in-network fit")
    parser.add_argument("--held-kernels", type=int, default=120, help="kernels of another draw to score kernels on")
    parser.add_argument("--only", help="comma-separated: keep only held-out models whose name contains one of these")
    parser.add_argument("--convert-only", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    base = profiles.load_file(args.base)
    targets = _mixed_targets(args.archs, args.seed)
    if args.only:
        targets = [t for t in targets if any(part in t[0] for part in args.only.split(","))]
    pool = _mixed_targets(1, args.seed + 100)  # spaces first, then families: take them evenly spread
    fit_targets = [pool[i] for i in np.unique(np.linspace(0, len(pool) - 1, args.fit_models).round().astype(int))] \
        if args.fit_models else []
    if args.convert_only:
        for name, spec in targets + fit_targets:
            _converted(name, spec, args.work, args.precision)
        return
    setting = f"{args.threads}t-{args.precision}"
    journal = args.work / f"measurements-{setting}-{args.max_kernels}.jsonl"
    started = time.perf_counter()
    chosen = adapt_measure.choose(base.kernels, args.max_kernels, args.seed)
    adapt_measure.measure(chosen, journal, args.threads, args.precision)
    measure_s = time.perf_counter() - started
    load_after_kernels = os.getloadavg()[0]
    held_journal = args.work / f"held-kernels-{setting}.jsonl"
    held_kernels = adapt_measure.choose(base.kernels, args.held_kernels, args.seed + 1)
    taken = {k.key for k in chosen}
    adapt_measure.measure([k for k in held_kernels if k.key not in taken], held_journal, args.threads, args.precision)

    measured = _timed(targets, args.work, args.threads, args.precision)
    in_journal = {name for name, _, _ in adapt.read(journal).models}
    for name, spec in fit_targets:
        if f"model:{name}" not in in_journal:
            adapt_measure.measure_model(_converted(name, spec, args.work, args.precision), name, spec.encode(),
                                        journal, args.threads, args.precision)
    if args.networks:
        adapt_measure.measure_networks(adapt_measure.choose_networks(base.kernels, args.networks, args.seed),
                                       journal, args.threads, args.precision)
    with_models = adapt.read(journal)
    kernels_only = dataclasses.replace(with_models, models=[])
    adapted_k, report_k = adapt.adapt(base.kernels, kernels_only)
    adapted_m, report_m = adapt.adapt(base.kernels, with_models) if with_models.models else (None, None)
    factor = report_k["global_factor"]
    scaled = dataclasses.replace(base.kernels, baselines={k: v * factor for k, v in base.kernels.baselines.items()},
                                 overhead_ms=kernels_only.empty_ms)
    rows = [("base, unadapted", base.kernels, 0), ("base x one global factor", scaled, len(kernels_only.kernels)),
            ("adapted: kernels", adapted_k, len(kernels_only.kernels))]
    if adapted_m is not None:
        rows.append((f"adapted: kernels + {len(with_models.models)} whole models", adapted_m, len(kernels_only.kernels)))
    print(f"\nnew device: this host, {args.threads} thread(s), {args.precision}; base {base.name} ({base.setting})")
    print(f"load average (1 min): {load_after_kernels:.2f} after measuring the kernels, "
          f"{os.getloadavg()[0]:.2f} at the end; {os.cpu_count()} cores")
    print(f"kernels measured: {len(kernels_only.kernels)} in {measure_s:.0f} s (0 s when resumed from {journal.name}); "
          f"held-out models: {len(targets)}; whole models for the in-network fit: {len(with_models.models)} "
          f"({len(fit_targets)} converted, the rest kernels chained)\n")
    print("| predictor | kernels measured | held-out models | within ±10 % | mean abs error | mean error "
          "| held-out kernels: median abs | time-weighted abs |")
    print("|---|---|---|---|---|---|---|---|")
    table = {}
    for label, predictor, n in rows:
        errors = _errors(predictor, targets, measured)
        median, weighted = _kernel_errors(predictor, held_journal)
        table[label] = errors
        print(f"| {label} | {n} | {len(errors)} | {np.mean(np.abs(errors) <= 10):.0%} | "
              f"{np.mean(np.abs(errors)):.1f} % | {np.mean(errors):+.1f} % | {median:.1f} % | {weighted:.1f} % |")
    print("\n| model | measured ms | " + " | ".join(label for label, _, _ in rows) + " |")
    print("|---|---|" + "---|" * len(rows))
    for i, (name, _) in enumerate(targets):
        print(f"| {name} | {measured[name]:.2f} | " + " | ".join(f"{table[label][i]:+.1f} %" for label, _, _ in rows) + " |")
    print("\nper kernel type (adapted: kernels):")
    for kind, entry in report_k["types"].items():
        print(f"  {kind}: {json.dumps(entry)}")
    if report_m:
        print(f"whole models: {json.dumps({k: v for k, v in report_m.items() if k != 'types'})}")
    (args.work / f"results-{setting}.json").write_text(json.dumps(
        {"measured_ms": measured, "errors_pct": {k: v.tolist() for k, v in table.items()},
         "report_kernels": report_k, "report_models": report_m}, indent=1))


if __name__ == "__main__":
    main()
