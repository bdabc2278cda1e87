"""Predicted vs published latency for every calibration row of every shipped profile.

    python benchmarks/profile_calibration.py [--rebuild]

The profiles are built from shared/data only (``python -m edgetailor.profiling.recipes``); with
--rebuild they are rebuilt first. "out of sample" is the prediction of a fit that did not see
the row: for profiles of the joint calibration, leave-one-family-out; for the others,
leave-one-out (fitted) or the device factor without the row (transferred). The first table sets
the joint fit beside the per-device fit on the same folds (mean abs error, rows priced).
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
    _comparison(profiles.shipped())
    for profile in profiles.shipped():
        print(f"### {profile.name} ({', '.join(profile.aliases)})\n")
        print(f"{profile.setting}. Expected error: "
              + ("unknown (one calibration row)" if profile.expected_error_pct is None
                 else f"±{profile.expected_error_pct}% (mean abs, out of sample)") + "\n")
        for name, value in profile.error.items():
            if isinstance(value, dict) and "n" not in value:
                continue  # the comparison, printed above
            if isinstance(value, dict) and not value["n"]:
                print(f"- {name}: no row could be priced out of sample")
            elif isinstance(value, dict):
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


FOLDS = ("models_in_sample", "leave_one_family_out", "leave_one_family_out_this_device", "leave_one_source_out")


def _cell(figure: dict | None) -> str:
    if not figure or not figure.get("n"):
        return "-"
    return f"{figure['mape_pct']:.1f}% ({figure['n']})"


def _comparison(shipped) -> None:
    print("| profile | fit used | " + " | ".join(f"{f} joint | per-device" for f in FOLDS) + " |")
    print("|---|---|" + "---|---|" * len(FOLDS))
    for profile in shipped:
        error = profile.error
        if "per_device_fit_same_folds" in error:
            used, joint_error, other = "joint", error, error["per_device_fit_same_folds"]
        elif "joint_fit_same_folds" in error:
            used, joint_error, other = "per-device", error["joint_fit_same_folds"], None
        else:
            continue
        cells = [f"{_cell(joint_error.get(f))} | {_cell(other.get(f)) if other is not None else '(shipped)'}"
                 for f in FOLDS]
        print(f"| {profile.name} | {used} | " + " | ".join(cells) + " |")
    print()


if __name__ == "__main__":
    main()
