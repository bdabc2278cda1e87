"""Predicted vs published latency for every calibration row of every shipped profile.

    python benchmarks/profile_calibration.py [--rebuild]

The profiles are built from shared/data only (``python -m edgetailor.profiling.recipes``); with
--rebuild they are rebuilt first. "out of sample" is the prediction of a fit that did not see
the row (leave-one-out for fitted profiles, device factor without the row for transferred ones).
"""
from __future__ import annotations

import argparse
import time

from edgetailor.latency import profiles


def _pct(predicted, measured) -> str:
    return "-" if predicted is None else f"{100 * (predicted / measured - 1):+.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the profiles from shared/data")
    args = parser.parse_args()
    if args.rebuild:
        from edgetailor.profiling.recipes import main as calibrate

        started = time.perf_counter()
        import sys

        sys.argv = sys.argv[:1]
        calibrate()
        print(f"rebuilt in {time.perf_counter() - started:.1f} s\n")
    for profile in profiles.shipped():
        print(f"### {profile.name} ({', '.join(profile.aliases)})\n")
        print(f"{profile.setting}. Expected error: "
              + ("unknown (one calibration row)" if profile.expected_error_pct is None
                 else f"±{profile.expected_error_pct}% (mean abs, out of sample)") + "\n")
        for name, value in profile.error.items():
            if isinstance(value, dict):
                what = f" — {value['what']}" if "what" in value else ""
                print(f"- {name}: n={value['n']}, mean abs {value['mape_pct']}%, within ±10% "
                      f"{value['within_10pct']:.0%}, max {value['max_abs_pct']}%{what}")
            else:
                print(f"- {name}: {value}")
        rows = profile.calibration
        if rows:
            print("\n| row | kind | published ms | predicted ms | error | out of sample ms | error |")
            print("|---|---|---|---|---|---|---|")
            for row in rows:
                oos = row.get("out_of_sample_ms")
                print(f"| {row['name']} | {row['kind']} | {row['measured_ms']:g} | "
                      f"{row['predicted_ms']:.1f} | {_pct(row['predicted_ms'], row['measured_ms'])} | "
                      f"{'-' if oos is None else f'{oos:.1f}'} | {_pct(oos, row['measured_ms'])} |")
        print()


if __name__ == "__main__":
    main()
