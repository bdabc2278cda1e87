"""What `edgetailor specialize` picks for a few devices and budgets (pick mode only, no bundle).

    python benchmarks/specialize_picks.py
"""
from __future__ import annotations

import argparse
import time

from edgetailor.choose import pick
from edgetailor.latency import profiles

CASES = {"pixel1": (15, 25, 40, 80), "galaxy_s8": (60, 100, 160), "iphone_x": (5, 10, 20)}


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help, and no stray flags
    print("| device | budget ms | chosen | predicted ms | expected error | top-1 | accuracy source | candidates/s |")
    print("|---|---|---|---|---|---|---|---|")
    for device, budgets in CASES.items():
        profile = profiles.load(device)
        started = time.perf_counter()
        grid = pick.Grid(profile)
        rate = grid.size / (time.perf_counter() - started)
        for budget in budgets:
            best = pick.pick(profile, budget, grid).best
            error = "unknown" if profile.expected_error_pct is None else f"±{profile.expected_error_pct}%"
            print(f"| {device} | {budget} | {best.label} | {best.latency_ms:.1f} | {error} | "
                  f"{best.top1:.1f} | {best.accuracy.kind} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
