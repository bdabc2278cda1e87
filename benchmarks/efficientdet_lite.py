"""EfficientDet-Lite0-4 and NAS-FPN-lite: parameters and MACs from the layer walk, predicted
latency (whole detector: backbone, neck, class and box nets; TFLite_Detection_PostProcess not
priced) on Pixel profiles, beside the published figures.

Published: parameters and COCO mAP from google/automl efficientdet/README.md @5333731; Pixel 4
latency (int8 models, 4 CPU threads) from tensorflow/tensorflow
tensorflow/lite/g3doc/models/modify/model_maker/object_detection.ipynb @6bace29, the setting of
the ``pixel4_int8_4t`` profile. No architecture is trained here.

    .venv/bin/python benchmarks/efficientdet_lite.py [--devices pixel1,pixel4,pixel4_int8_4t] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(devices: list[str]) -> list[dict]:
    from edgetailor.latency import profiles
    from edgetailor.tasks.detection import efficientdet
    from edgetailor.tasks.detection.task import NASFPN_LITE_MAP

    loaded = [profiles.load(d) for d in devices]
    models = [(r.name, r.spec(), r.config(90), r.params_m, r.coco_map, r.pixel4_ms) for r in efficientdet.PUBLISHED]
    spec, config = efficientdet.nasfpn_lite(90)
    models.append(("NAS-FPN-lite (MobileNetV2, 7 @ 64)", spec, config, 2.16, NASFPN_LITE_MAP[0], None))
    out = []
    for name, spec, config, params_m, coco_map, pixel4_ms in models:
        params, macs = efficientdet.count(spec, config)
        row = {"model": name, "px": spec.resolution, "params_m": round(params / 1e6, 3),
               "published_params_m": params_m, "macs_b": round(macs / 1e9, 3), "published_coco_map": coco_map,
               "published_pixel4_int8_4t_ms": pixel4_ms}
        for profile in loaded:
            row[f"{profile.name}_ms"] = round(efficientdet.predict_latency(spec, config, profile).total_ms, 1)
        out.append(row)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="pixel1,pixel4,pixel4_int8_4t")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    table = rows(args.devices.split(","))
    keys = list(table[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in table:
        print("| " + " | ".join("-" if row[k] is None else str(row[k]) for k in keys) + " |")
    if args.json:
        from edgetailor import _io

        _io.write_text(args.json, json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
