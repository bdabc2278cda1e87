"""nn-Meter's fusion test on this machine: are two ops one kernel under TFLite + XNNPACK?

    python benchmarks/kernel_fusion.py [--threads 1] [--repeats 3]

For each pair (or chain) of ops, times each op's own one-op model (T1, T2, ...) and the model of
them together (T12), best of ``--repeats`` timings of >= 30 runs each (``kernels_fit.best_ms``:
with one thread, the invoking thread's CPU time), and prints nn-Meter's
verdict: one kernel when T1 + T2 - T12 > 0.5 * min(T1, T2). The rules in
``edgetailor.latency.kernel_predictor.FUSION_RULES`` were set from this table.
"""
from __future__ import annotations

import argparse
import os

from edgetailor.profiling.kernels import fusion_cases, fused
from edgetailor.profiling.kernels_fit import best_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    def best(model: bytes) -> float:
        return min(best_ms(model, args.threads, warmup=5, runs=30, min_seconds=0.1) for _ in range(args.repeats))

    print(f"load average {os.getloadavg()[0]:.2f} at the start\n")
    print("| ops | alone (ms) | together (ms) | saved (ms) | 0.5 x cheapest | verdict |")
    print("|---|---|---|---|---|---|")
    for name, (parts, together) in fusion_cases().items():
        alone = [best(model) for model in parts]
        whole = best(together)
        verdict = "one kernel" if fused(alone, whole) else "separate"
        print(f"| {name} | {' + '.join(f'{t:.4f}' for t in alone)} | {whole:.4f} | {sum(alone) - whole:+.4f} | "
              f"{0.5 * min(alone):.4f} | {verdict} |")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
