"""Which published data calibrates which shipped profile (see shared/data/SOURCES.md).

    python -m edgetailor.profiling.recipes --data ../shared/data --out device_profiles

Every selection names the source rows' setting; rows of other settings are never mixed in.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from edgetailor._io import write_json
from edgetailor.profiling import calibration_data as data, joint, joint_profiles
from edgetailor.profiling.calibration import Recipe, fitted_profile, transferred_profile

PROXYLESS_README = "ProxylessNAS README"


def _models(rows: list[dict], rules: list[tuple], widths: dict[str, float] | None = None) -> list[data.Sample]:
    """Model samples; ``widths`` overrides the width of rows whose label contains a key."""
    out = []
    for row in data.select(rows, rules):
        for marker, width in (widths or {}).items():
            if marker in row.label:
                row = dataclasses.replace(row, width=width)
        out.append(data.model_sample(row, row.arch))
    return out


def pixel1(root: Path, rows: list[dict]) -> Recipe:
    luts = root / "luts"
    recipe = Recipe(
        name="pixel1-tflite-fp32-1big", aliases=["pixel1", "pixel"],
        device="Google Pixel 1 / Pixel XL (Snapdragon 821)", runtime="tflite",
        setting="TFLite float32, 1 thread on a big core (2018-2019 TFLite, as the MnasNet, "
                "ProxylessNAS and Single-Path NAS papers measured)",
        blocks=data.lut_samples(luts / "pixel1_proxylessnas_blocks.yaml", "relu6")
        + data.single_path_samples(luts / "pixel1_singlepath_blocks.json"),
        models=_models(rows, [
            ("MnasNet-A1", None, "Pixel 1", "README column", "mnasnet_a1"),
            ("MobileNetV1", "MobilenetV1", "Pixel 1 (inferred", PROXYLESS_README, "mobilenet_v1_100"),
            ("MobileNetV2", "MobilenetV2", "Pixel 1 (inferred", PROXYLESS_README, "mobilenet_v2_100"),
            ("ProxylessNAS", None, "Pixel 1 (inferred", PROXYLESS_README, "proxylessnas_mobile"),
            ("MobileNetV1", None, "Pixel XL", "TFLite float, 1 thread", "mobilenet_v1_100"),
        ], widths={"mobile_14": 1.4}),
        holdout=[dataclasses.replace(s, group="TFLite-hosted MnasNet 2018-09, taken as MnasNet-B1 "
                                             "(74.08% at 1.0/224); not fitted")
                 for s in _models(rows, [("MnasNet (TFLite hosted, 09_07_2018)", None, "Pixel 1",
                                          "single thread", "mnasnet_b1")])],
        provenance=[
            {"source": "shared/data/luts/pixel1_proxylessnas_blocks.yaml", "use": "table + fit",
             "what": "72 ProxylessNAS-space blocks on Pixel 1 (han-cai/files @8a15154)"},
            {"source": "shared/data/luts/pixel1_singlepath_blocks.json", "use": "table + fit",
             "what": "Single-Path NAS supernet layers on Pixel 1 (choice 0..3 = k3e3, k3e6, k5e3, k5e6)"},
            {"source": "shared/data/published_latency.csv", "use": "fit",
             "what": "MnasNet-A1 README (24 width x resolution rows), ProxylessNAS README "
                     "(MobileNetV1/V2, ProxylessNAS mobile and mobile_14), MobileNetV1 on Pixel XL"},
        ],
    )
    return recipe


def note10(root: Path) -> Recipe:
    files = sorted((root / "luts").glob("note10_ofa_mbv3_r*.yaml"))
    return Recipe(
        name="note10-tflite-ofa-mbv3", aliases=["note10"],
        device="Samsung Galaxy Note10", runtime="tflite",
        setting="TFLite float32 as measured for Once-for-All's Note10 lookup tables",
        blocks=[s for path in files for s in data.lut_samples(path, "relu", ofa=True)],
        provenance=[{"source": f"shared/data/luts/{p.name}", "use": "table + fit",
                     "what": "Once-for-All MobileNetV3-space blocks on Note10 (han-cai/files @6132161)"}
                    for p in files],
    )


def _transfer(name, aliases, device, runtime, setting, rows, rules) -> Recipe:
    models = _models(rows, rules)
    return Recipe(name=name, aliases=aliases, device=device, runtime=runtime, setting=setting,
                  models=models,
                  provenance=[{"source": "shared/data/published_latency.csv", "use": "device factor",
                               "rows": [s.name for s in models]}])


def per_device_profiles(root: Path) -> list[dict]:
    """The profiles as fitted one device at a time (before the joint calibration)."""
    rows = data.published_rows(root / "published_latency.csv")
    note = fitted_profile(note10(root))
    pixel = fitted_profile(pixel1(root, rows), donor=note)
    fbnet = [("FBNet", "FBNet-A", "Samsung Galaxy S8", "", "fbnet_a"),
             ("FBNet", "FBNet-C", "Samsung Galaxy S8", "", "fbnet_c")]
    transfers = [
        _transfer("galaxy_s8-caffe2-nnpack-fp32", ["galaxy_s8", "galaxy_s8_fp32", "s8"],
                  "Samsung Galaxy S8", "caffe2",
                  "Caffe2 + NNPACK fp32 on the S8 CPU (FBNet/ChamNet papers' setting)", rows,
                  [r[:3] + ("NNPACK fp32",) + r[4:] for r in fbnet]),
        _transfer("galaxy_s8-caffe2-qnnpack-int8", ["galaxy_s8_int8"], "Samsung Galaxy S8",
                  "caffe2", "Caffe2 + QNNPACK int8 on the S8 CPU (FBNet/ChamNet papers' setting)",
                  rows, [r[:3] + ("QNNPACK int8",) + r[4:] for r in fbnet]),
        _transfer("iphone_x-coreml", ["iphone_x", "iphone_x_coreml"], "Apple iPhone X (A11)",
                  "coreml", "Core ML through Vision (VNCoreMLRequest), iOS 11-12", rows,
                  [("MobileNetV1", "Apple Core ML model MobileNet", "iPhone X", "Core ML",
                    "mobilenet_v1_100")]),
        _transfer("iphone_x-tflite-fp32-1thread", ["iphone_x_tflite", "iphone8"],
                  "Apple A11 (iPhone 8 measured; same SoC as iPhone X)", "tflite",
                  "TFLite float32, iOS benchmark app, 1 thread", rows,
                  [("MobileNetV1", None, "iPhone 8", "TFLite float", "mobilenet_v1_100")]),
    ]
    return [pixel, note] + [transferred_profile(recipe, pixel) for recipe in transfers]


def build_all(root: Path) -> list[dict]:
    """Every shipped phone profile: the joint calibration's where it beats the per-device fit out
    of sample (leave-one-family-out, same folds), the per-device one elsewhere, plus Pixel 2/3/4.
    No profile keeps a lookup table: a table entry measured in its own setting would override
    the model at its exact keys and make a jump (the fit uses the tables instead)."""
    d, skipped = joint_profiles.design(root)
    full, folds, per_device = joint.fit(d), joint.Folds(d), joint_profiles.PerDevice(d)
    out = []
    for document in per_device_profiles(root):
        pair = joint_profiles.REPLACEABLE.get(document["name"])
        evaluated = None if pair is None else joint_profiles.evaluate(d, full, folds, per_device, *pair)
        if evaluated is not None and evaluated.better_than_per_device():
            out.append(joint_profiles.document(
                document["name"], document["aliases"], document["device"], document["setting"],
                document["runtime"], full, evaluated, skipped))
            continue
        if evaluated is not None:
            document["error"]["joint_fit_same_folds"] = evaluated.error
            document["provenance"].append({"joint_fit": "not used: not better out of sample "
                                                        "(or no out-of-sample figure for either)"})
        document["table"] = {}
        out.append(document)
    for phone in joint_profiles.NEW_PHONES:
        evaluated = joint_profiles.evaluate(d, full, folds, per_device, phone.device, phone.setting)
        out.append(joint_profiles.document(phone.name, phone.aliases, phone.device_text,
                                           f"{phone.setting_text} (as Google's TFLite benchmark pages measured)",
                                           "tflite", full, evaluated, skipped))
    return out


# The published measurements sit beside the checkout (../shared/data) when run from its root.
DEFAULT_DATA = Path("..") / "shared" / "data"


def write_profile(document: dict, out_dir: Path) -> Path:
    """Write ``<first alias>.json`` atomically (temp file, then rename)."""
    path = out_dir / f"{document['aliases'][0]}.json"
    write_json(path, document)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the shipped device profiles (run from the repository root).")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"published phone measurements (default: {DEFAULT_DATA})")
    parser.add_argument("--out", type=Path, default=Path("device_profiles"),
                        help="where the profile JSON files go (default: ./device_profiles)")
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"data folder not found: {args.data} (give --data DIR)")
    if not args.out.is_dir():
        parser.error(f"output folder not found: {args.out} (give --out DIR)")
    for document in build_all(args.data):
        path = write_profile(document, args.out)
        print(f"{path}: expected error {document['expected_error_pct']}%")


if __name__ == "__main__":
    main()
