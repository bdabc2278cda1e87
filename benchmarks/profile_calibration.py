"""Predicted vs published latency for every calibration row of every shipped profile.

    python benchmarks/profile_calibration.py [--rebuild] [--diagnose] [--nested]

The profiles are built from shared/data only (``python -m edgetailor.profiling.recipes``); with
--rebuild they are rebuilt first. "out of sample" is the prediction of a fit that did not see
the row: for profiles of the joint calibration, leave-one-family-out; for the others,
leave-one-out (fitted) or the device factor without the row (transferred). The first table sets
the joint fit beside the per-device fit on the same folds (mean abs error, rows priced).
--diagnose prints where pixel1's leave-one-family-out error comes from (per family, per source)
and the data's own noise floor; --nested the leave-one-family-out error with the regularisation
chosen by an inner cross-validation without the held-out family (``profiling.joint_select``,
a few minutes).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from edgetailor.latency import profiles


def _pct(predicted, measured) -> str:
    return "-" if predicted is None else f"{100 * (predicted / measured - 1):+.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the profiles from shared/data")
    parser.add_argument("--diagnose", action="store_true", help="pixel1's out-of-sample error by family and source")
    parser.add_argument("--nested", action="store_true", help="leave-one-family-out with nested regularisation")
    parser.add_argument("--data", type=Path, default=Path("..") / "shared" / "data")
    parser.add_argument("--host", type=Path, help="with --diagnose: a measured host profile whose cost shape "
                                                  "is tried in place of the op model's")
    args = parser.parse_args()
    if args.diagnose:
        _diagnose(args.data)
        if args.host:
            _host_shape(args.data, args.host)
    if args.nested:
        _nested(args.data)
    if args.diagnose or args.nested:
        return
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


def _mean_abs(predicted: np.ndarray, measured: np.ndarray) -> float:
    return float(np.nanmean(np.abs(100 * (predicted / measured - 1))))


def _diagnose(root: Path) -> None:
    """Pixel 1's leave-one-family-out error by family, and the noise floor of the data itself."""
    from edgetailor.latency.cost import fit as nnls_fit
    from edgetailor.profiling import joint, joint_profiles

    d, _ = joint_profiles.design(root)
    is_model = np.array([r.sample.kind == "model" for r in d.rows])
    index = np.where((d.device == "pixel1") & (d.setting == "tflite-fp32-1t") & is_model)[0]
    full, folds = joint.fit(d), joint.Folds(d)
    held, _ = folds.held_out("leave_one_family_out", index)
    in_sample = full.predict(d, index, with_source=False)
    with_source = full.predict(d, index, with_source=True)
    print("pixel1 (tflite-fp32-1t) model rows, mean error by family (signed; abs):\n")
    print("| family | rows | sources | leave-one-family-out | in sample | in sample with its source factor |")
    print("|---|---|---|---|---|---|")
    for family in sorted(set(d.family[index])):
        mine = d.family[index] == family
        cells = []
        for predicted in (held, in_sample, with_source):
            pct = 100 * (predicted[mine] / d.y[index][mine] - 1)
            cells.append(f"{pct.mean():+.1f}%; {np.abs(pct).mean():.1f}%")
        print(f"| {family} | {mine.sum()} | {len(set(d.source[index][mine]))} | " + " | ".join(cells) + " |")
    print(f"| all | {len(index)} | {len(set(d.source[index]))} | {_mean_abs(held, d.y[index]):.1f}% | "
          f"{_mean_abs(in_sample, d.y[index]):.1f}% | {_mean_abs(with_source, d.y[index]):.1f}% |\n")
    print("Source factors of the full fit on pixel1's rows (ridge-shrunk toward 1):")
    for source in sorted(set(d.source[index])):
        rows = np.sum(d.source[index] == source)
        print(f"- {np.exp(full.source.get(source, 0.0)):.3f} x, {rows} rows: {source[:90]}")
    print("\nNoise floor 1, one source's own grid: each MnasNet-A1 README row (25, Pixel 1) predicted by")
    print("NNLS on the op features of the other 24 rows of the same grid (leave-one-row-out):")
    grid = index[d.family[index] == "mnasnet_a1"]
    errors = []
    for k in range(len(grid)):
        rest = np.delete(grid, k)
        errors.append(d.x[grid[k]] @ nnls_fit(d.x[rest], d.y[rest]) / d.y[grid[k]] - 1)
    errors = 100 * np.abs(errors)
    print(f"mean abs {errors.mean():.1f}%, max {errors.max():.1f}%\n")
    free = joint.fit(d, None, joint.SHRINK, 0.01)  # source factors barely shrunk: each source's own level
    sources = sorted(set(d.source[index]))
    levels = np.array([free.source.get(source, 0.0) for source in sources])
    from_others = [abs(np.exp(levels[k] - np.delete(levels, k).mean()) - 1) for k in range(len(levels))]
    print("Noise floor 2, the level of each Pixel 1 source (source ridge 0.01):")
    for source, level in zip(sources, levels):
        print(f"- {np.exp(level):.3f} x: {source[:90]}")
    print(f"max/min {np.exp(np.ptp(levels)):.2f}; each source's level from the mean of the others: "
          f"mean abs {100 * np.mean(from_others):.1f}%\n")
    print("Noise floor 3, the same network on the same phone and setting from two or more publications:")
    print("\n| device/setting | network | published ms (source) | max/min |\n|---|---|---|---|")
    keys = {}
    for i in np.where(is_model)[0]:
        keys.setdefault((d.device[i], d.setting[i], d.x[i].round(6).tobytes()), []).append(i)
    for (device, setting, _), rows in sorted(keys.items(), key=lambda kv: kv[0][:2]):
        if len({d.source[i] for i in rows}) < 2:
            continue
        listed = ", ".join(f"{d.y[i]:g} ({d.source[i][:28]})" for i in rows)
        print(f"| {device}/{setting} | {d.family[rows[0]]} | {listed} | {d.y[rows].max() / d.y[rows].min():.3f} |")
    print()


def _host_shape(root: Path, host_path: Path) -> None:
    """Pixel 1 priced with the host's cost shape (its kernel predictor, its op tables) times one
    Pixel 1 factor fitted on the other families' rows, beside the joint fit on the same folds."""
    from edgetailor.latency.cost import predict_layers
    from edgetailor.profiling import joint, joint_profiles

    d, _ = joint_profiles.design(root)
    host = profiles.load_file(host_path)
    index = np.array([i for i in np.where((d.device == "pixel1") & (d.setting == "tflite-fp32-1t"))[0]
                      if d.rows[i].sample.kind == "model"])
    layers = [list(d.rows[i].sample.layers) for i in index]
    shapes = {"op model, joint fit": joint.Folds(d).held_out("leave_one_family_out", index)[0]}
    if host.kernels is not None:
        shapes["host kernel predictor"] = np.array([host.predict_layers(l).total_ms for l in layers])
    shapes["host op tables"] = np.array([predict_layers(l, host.coefficients, host.table).total_ms for l in layers])
    measured, families = d.y[index], d.family[index]
    print(f"pixel1 leave-one-family-out with the cost shape of {host.name} ({host_path}):\n")
    print("| cost shape | mean abs | " + " | ".join(sorted(set(families))) + " |")
    print("|---|---|" + "---|" * len(set(families)))
    for name, cost in shapes.items():
        predicted = cost.copy()
        if name != "op model, joint fit":
            log_ratio = np.log(measured / cost)
            for family in set(families):
                predicted[families == family] *= np.exp(log_ratio[families != family].mean())
        pct = 100 * (predicted / measured - 1)
        print(f"| {name} | {np.abs(pct).mean():.1f}% | "
              + " | ".join(f"{pct[families == f].mean():+.1f}%" for f in sorted(set(families))) + " |")
    print()


def _nested(root: Path) -> None:
    """Leave-one-family-out per profile with each fold's regularisation chosen without it."""
    from edgetailor.profiling import joint, joint_profiles, joint_select

    d, _ = joint_profiles.design(root)
    is_model = np.array([r.sample.kind == "model" for r in d.rows])
    index = np.where(is_model)[0]
    started = time.perf_counter()
    print(f"chosen on all rows (the shipped constants must equal it): "
          f"{joint_select.choose(d, np.ones(len(d.y), bool))} (source_ridge, shrink)")
    nested, chosen = joint_select.nested_held_out(
        d, index, progress=lambda family, pair: print(f"  {family}: {pair} ({time.perf_counter() - started:.0f} s)",
                                                      flush=True))
    fixed, _ = joint.Folds(d).held_out("leave_one_family_out", index)
    print("\n| profile rows | n | leave-one-family-out, shipped constants | nested |\n|---|---|---|---|")
    for pair in sorted({(d.device[i], d.setting[i]) for i in index}):
        mine = (d.device[index] == pair[0]) & (d.setting[index] == pair[1])
        if np.isnan(nested[mine]).all():
            continue
        print(f"| {pair[0]}/{pair[1]} | {mine.sum()} | {_mean_abs(fixed[mine], d.y[index][mine]):.1f}% | "
              f"{_mean_abs(nested[mine], d.y[index][mine]):.1f}% |")
    print()


if __name__ == "__main__":
    main()
