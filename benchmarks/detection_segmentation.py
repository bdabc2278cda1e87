"""Train tiny SSDLite and LR-ASPP models on ``shapes``; report accuracy and latency.

For each: COCO box mAP (pycocotools) or mean IoU on held-out images, in Keras and in the exported
TFLite model; TFLite latency on this machine (interpreter, XNNPACK, 1 thread, median); predicted
latency on a device profile (backbone + head, default pixel1). Reference rows price the
published SSDLite-MobileNetV3 configurations (320 px, 90 COCO classes) beside their published
Pixel 1 figures (TF1 detection zoo, MobileNetV3 paper Table 6).

    python benchmarks/detection_segmentation.py            # ~4-6 minutes on two cores
    python benchmarks/detection_segmentation.py --tiny     # smoke run (~1-2 minutes)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _detection(args, profile, folder: Path) -> dict:
    from edgetailor.tasks.detection import coco_eval, train as det_train, ssdlite
    from edgetailor.data import shapes
    from edgetailor.tasks.detection import export as detection_export
    from edgetailor.tasks.detection.postprocess import PostprocessConfig
    from edgetailor.profiling.timing import time_tflite

    r = args.det_resolution
    train = shapes.detection(args.det_images, size=r, seed=0)
    val = shapes.detection(args.val_images, size=r, seed=1)
    spec = ssdlite.detection_backbone(args.backbone, args.width, r)
    start = time.perf_counter()
    detector = det_train.train(train, spec, epochs=args.det_epochs, learning_rate=0.02)
    train_s = time.perf_counter() - start
    keras = det_train.evaluate(detector, val)
    # COCO AP wants every box in the running: score floor 0, 20 class-agnostic detections per image
    evaluation = PostprocessConfig(max_detections=20, score_threshold=0.0, iou_threshold=0.6)
    path = detection_export.export_tflite(detector, folder / "detector.tflite", evaluation)
    results = detection_export.run_tflite(path, val.images)
    lite = coco_eval.evaluate(val.boxes, val.labels, [x[0] for x in results], [x[2] for x in results],
                              [x[1] for x in results], detector.classes, (r, r))
    predicted = ssdlite.predict_latency(spec, detector.config, profile)
    return {"task": "detection", "model": f"ssdlite_{args.backbone}_{round(args.width * 100)}@{r}",
            "train_images": args.det_images, "epochs": args.det_epochs, "train_s": round(train_s, 1),
            "keras_AP": keras["AP"], "keras_AP50": keras["AP50"], "tflite_AP": lite["AP"],
            "tflite_AP50": lite["AP50"],
            "host_tflite_ms": time_tflite(path.read_bytes()).median_ms,
            "predicted_ms": predicted.total_ms, "expected_error_pct": predicted.expected_error_pct,
            "params": ssdlite.count(spec, detector.config)[0]}


def _segmentation(args, profile, folder: Path) -> dict:
    from edgetailor.tasks.segmentation import lraspp, train as seg_train
    from edgetailor.data import shapes
    from edgetailor.arch import zoo
    from edgetailor.tasks.segmentation import export as segmentation_export
    from edgetailor.profiling.timing import time_tflite

    r = args.seg_resolution
    train = shapes.detection(args.seg_images, size=r, seed=0)
    val = shapes.detection(args.val_images, size=r, seed=1)
    spec = zoo.resolve(args.backbone, args.width, r).spec
    start = time.perf_counter()
    segmenter = seg_train.train(train, spec, epochs=args.seg_epochs, learning_rate=0.02)
    train_s = time.perf_counter() - start
    keras = seg_train.evaluate(segmenter, val)
    path = segmentation_export.export_tflite(segmenter, folder / "segmenter.tflite")
    masks = segmentation_export.run_tflite(path, val.images)
    lite, _ = seg_train.mean_iou(val.masks, masks, segmenter.config.num_classes)
    predicted = lraspp.predict_latency(spec, segmenter.config, profile)
    return {"task": "segmentation", "model": f"lraspp_{args.backbone}_{round(args.width * 100)}@{r}",
            "train_images": args.seg_images, "epochs": args.seg_epochs, "train_s": round(train_s, 1),
            "keras_mIoU": keras["miou"], "tflite_mIoU": lite,
            "host_tflite_ms": time_tflite(path.read_bytes()).median_ms,
            "predicted_ms": predicted.total_ms, "expected_error_pct": predicted.expected_error_pct,
            "params": lraspp.count(spec, segmenter.config)[0]}


def _references(profile) -> list[dict]:
    from edgetailor.tasks.segmentation import lraspp
    from edgetailor.tasks.detection import ssdlite
    from edgetailor.arch import zoo

    rows = []
    config = ssdlite.SSDLiteConfig(num_classes=90)
    for reference in ssdlite.PUBLISHED:
        spec = reference.spec()
        rows.append({"model": f"{reference.name} @320 (COCO)",
                     "predicted_ms": ssdlite.predict_latency(spec, config, profile).total_ms,
                     "published_pixel1_ms": reference.pixel1_ms, "published_map": reference.coco_map,
                     "macs_m": ssdlite.count(spec, config)[1] / 1e6})
    spec = zoo.resolve("mobilenet_v3_large", 1.0, 512).spec
    config = lraspp.LRASPPConfig(num_classes=19)
    rows.append({"model": "lraspp_mobilenet_v3_large_100@512 (19 classes)",
                 "predicted_ms": lraspp.predict_latency(spec, config, profile).total_ms,
                 "published_pixel1_ms": None, "published_map": None,
                 "macs_m": lraspp.count(spec, config)[1] / 1e6})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="smoke run: few images, few epochs")
    parser.add_argument("--device", default="pixel1")
    parser.add_argument("--backbone", default="mobilenet_v3_small")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--det-resolution", type=int, default=160)
    parser.add_argument("--seg-resolution", type=int, default=128)
    parser.add_argument("--det-images", type=int, default=1000)
    parser.add_argument("--det-epochs", type=int, default=10)
    parser.add_argument("--seg-images", type=int, default=512)
    parser.add_argument("--seg-epochs", type=int, default=12)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.tiny:
        args.det_images, args.det_epochs, args.seg_images, args.seg_epochs = 96, 2, 96, 2
        args.val_images = 20

    from edgetailor.latency import profiles

    profile = profiles.load(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [_detection(args, profile, Path(tmp)), _segmentation(args, profile, Path(tmp))]
    references = _references(profile)

    print(f"# tiny models on shapes (held out: {args.val_images} images); latency: this machine "
          f"(TFLite, 1 thread) and predicted on {profile.name} {profile.version}")
    print(f"{'model':34} {'images x ep':>11} {'train s':>8} {'keras':>16} {'tflite':>16} "
          f"{'host ms':>8} {'pred ms':>8}")
    for row in rows:
        if row["task"] == "detection":
            keras = f"AP {row['keras_AP']:.3f}/{row['keras_AP50']:.3f}"
            lite = f"AP {row['tflite_AP']:.3f}/{row['tflite_AP50']:.3f}"
        else:
            keras, lite = f"mIoU {row['keras_mIoU']:.3f}", f"mIoU {row['tflite_mIoU']:.3f}"
        print(f"{row['model']:34} {row['train_images']:>6} x {row['epochs']:<2} {row['train_s']:>8.1f} "
              f"{keras:>16} {lite:>16} {row['host_tflite_ms']:>8.2f} {row['predicted_ms']:>8.1f}")
    print("(AP = COCO mAP@[.5:.95] / mAP@0.5 via pycocotools; mIoU over background + 6 shapes)")
    print(f"\n# references on {profile.name}: predicted backbone + head vs the published Pixel 1 figures")
    print(f"{'model':48} {'MMACs':>7} {'pred ms':>8} {'published ms':>13} {'COCO mAP':>9}")
    for ref in references:
        pub = "-" if ref["published_pixel1_ms"] is None else f"{ref['published_pixel1_ms']:.0f}"
        pub_map = "-" if ref["published_map"] is None else f"{ref['published_map']:.1f}"
        print(f"{ref['model']:48} {ref['macs_m']:>7.0f} {ref['predicted_ms']:>8.1f} {pub:>13} {pub_map:>9}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "references": references}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
