"""Float32 vs post-training int8 vs quantization-aware int8 on trained models: accuracy and latency.

One classifier and one detector are trained on ``shapes`` folders (the data ``edgetailor shapes``
writes; ``--classes-dir`` / ``--coco-dir`` take any folder of that layout instead), then
quantized exactly as ``specialize --quantize int8`` does (``edgetailor.tasks.quantize``), with QAT
forced (threshold -100) so every row has all three models. Accuracy is the task's held-out figure
(top-1; COCO mAP@[.5:.95] with the bundle's NMS at evaluation's score floor 0.01 and 100 boxes), each model run in the TFLite
interpreter; latency is this machine's TFLite interpreter (XNNPACK, 1 thread, median).

    python benchmarks/quantization.py            # ~15-20 minutes on two shared cores
    python benchmarks/quantization.py --tiny     # smoke run (~5 minutes)
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _say(message: str) -> None:
    print(f"  [{time.strftime('%X')}] {message}", flush=True)


def _rows(name: str, quantized, train_s: float, qat_s: float) -> list[dict]:
    from edgetailor.profiling.timing import time_tflite

    report = quantized.report.to_dict()
    values = {"float": report["float"]["value"], "ptq": report["ptq"]["value"], "qat": (report["qat"] or {}).get("value")}
    rows = []
    for kind, flatbuffer in quantized.flatbuffers.items():
        timing = time_tflite(flatbuffer, threads=1, min_runs=30, min_seconds=0.5)
        rows.append({"model": name, "kind": kind, "metric": report["metric"], "value": values[kind],
                     "drop_pp": round(values["float"] - values[kind], 2), "host_ms": round(timing.median_ms, 3),
                     "bytes": len(flatbuffer), "train_s": round(train_s, 1), "qat_s": round(qat_s, 1),
                     "measured_on": report["measured_on"]})
    return rows


def _request(profile, folder: Path, task: str, qat_epochs: int):
    from edgetailor.specialize import QuantizeRequest, Request

    return Request(profile, 1000.0, folder / f"unused_{task}", task=task, dataset=folder,
                   quantize=QuantizeRequest(qat_threshold_pp=-100.0, qat_epochs=qat_epochs))


def _classifier(args, profile, folder: Path) -> list[dict]:
    from edgetailor.arch import zoo
    from edgetailor.data import shapes
    from edgetailor.tasks import get
    from edgetailor.tasks.classification.train import train_classifier

    if args.classes_dir is None:
        folder = shapes.write_folder(folder / "classes", args.cls_images, size=args.cls_resolution, seed=0)
    else:
        folder = args.classes_dir
    spec = zoo.resolve(args.cls_arch, width=args.cls_width, resolution=args.cls_resolution).spec
    task = get("classification")
    started = time.perf_counter()
    _say(f"training {args.cls_arch} x{args.cls_width:g} at {args.cls_resolution} px for {args.cls_epochs} epochs")
    model, top1, _ = train_classifier(spec, folder, args.cls_epochs, name="bench_classifier")
    train_s = time.perf_counter() - started
    _say(f"Keras held-out top-1 {top1}")
    started = time.perf_counter()
    request = _request(profile, folder, "classification", args.qat_epochs)
    quantized = task.quantize(model, task.load(request), request, _say)
    name = f"{args.cls_arch} x{args.cls_width:g} {args.cls_resolution}px"
    return _rows(name, quantized, train_s, time.perf_counter() - started)


def _detector(args, profile, folder: Path) -> list[dict]:
    from edgetailor.data import folders, shapes
    from edgetailor.tasks import get
    from edgetailor.tasks.detection import ssdlite

    r = args.det_resolution
    if args.coco_dir is None:
        folder = folders.write_coco_folder(folder / "coco", shapes.detection(args.det_images, size=r, seed=0))
    else:
        folder = args.coco_dir
    task = get("detection")
    request = _request(profile, folder, "detection", args.qat_epochs)
    data = task.load(request)
    train, _ = task.split(data)
    spec = ssdlite.detection_backbone(args.det_backbone, args.det_width, r)
    started = time.perf_counter()
    _say(f"training SSDLite {args.det_backbone} x{args.det_width:g} at {r} px on {len(train.images)} images "
         f"for {args.det_epochs} epochs")
    trained = task.trainer().train(train, spec, task.config(len(data.classes)), epochs=args.det_epochs,
                                   learning_rate=task.learning_rate)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    quantized = task.quantize(trained, data, request, _say)
    name = f"ssdlite {args.det_backbone} x{args.det_width:g} {r}px"
    return _rows(name, quantized, train_s, time.perf_counter() - started)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="smoke run: few images, few epochs")
    parser.add_argument("--device", default="pixel1", help="profile the requests name (not priced here)")
    parser.add_argument("--cls-arch", default="mobilenet_v3_small")
    parser.add_argument("--cls-width", type=float, default=0.75)
    parser.add_argument("--cls-resolution", type=int, default=96)
    parser.add_argument("--cls-images", type=int, default=1000, help="shapes images (20 %% held out)")
    parser.add_argument("--cls-epochs", type=int, default=8)
    parser.add_argument("--det-backbone", default="mobilenet_v3_small")
    parser.add_argument("--det-width", type=float, default=0.5)
    parser.add_argument("--det-resolution", type=int, default=160)
    parser.add_argument("--det-images", type=int, default=600, help="shapes images (20 %% held out)")
    parser.add_argument("--det-epochs", type=int, default=10)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--classes-dir", type=Path, help="a classes folder instead of shapes")
    parser.add_argument("--coco-dir", type=Path, help="a COCO folder instead of shapes")
    parser.add_argument("--only", choices=["classifier", "detector"], help="run one of the two")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.tiny:
        args.cls_images, args.cls_epochs, args.det_images, args.det_epochs = 120, 1, 60, 1
        args.cls_resolution, args.det_resolution, args.qat_epochs = 64, 96, 1

    from edgetailor.latency import profiles

    profile = profiles.load(args.device)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [] if args.only == "detector" else _classifier(args, profile, Path(tmp))
        rows += [] if args.only == "classifier" else _detector(args, profile, Path(tmp))
    print(f"# held-out accuracy in the TFLite interpreter; latency: this machine (TFLite, XNNPACK, 1 thread, "
          f"median); load average at start {load[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'model':32} {'tflite':7} {'metric':17} {'value':>7} {'drop pp':>8} {'host ms':>8} {'KiB':>7}")
    for row in rows:
        print(f"{row['model']:32} {row['kind']:7} {row['metric'].split(' (')[0]:17} {row['value']:7.2f} "
              f"{row['drop_pp']:8.2f} {row['host_ms']:8.3f} {row['bytes'] / 1024:7.0f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
