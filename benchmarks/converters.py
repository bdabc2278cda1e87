"""Converter benchmark: size, conversion time, TFLite latency and parity per quantization mode.

    python benchmarks/converters.py                       # the README table (long: ~15 min)
    python benchmarks/converters.py --models mobilenet_v3_small_075 --resolution 64 \\
        --modes none,int8 --keras-modes none              # smoke run (~1 min)
    python benchmarks/converters.py --models mobilenet_v2_100 --modes none --compare-paths

Models are built with random weights whose BatchNorm statistics are set from synthetic images
(``calibrate_batchnorm``) and whose classifier is scaled to a peaked softmax
(``sharpen_classifier``), so outputs vary and parity means something; calibration images are
synthetic too (no data set is downloaded). Latency: ``converters.timing`` (TFLite interpreter,
XNNPACK, 1 thread, median); ours and Keras Applications' MobileNetV2 (``weights=None``,
converted the same way) are timed alternately in the same run. Keep the machine otherwise idle.
``--compare-paths`` also times ``TFLiteConverter.from_keras_model`` (SavedModel round trip)
against our concrete-function path, and one Core ML conversion.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from edgetailor.arch import zoo  # noqa: E402
from edgetailor.converters import QUANTIZE_MODES, ConvertOptions, convert  # noqa: E402

DEFAULT_MODELS = ("mobilenet_v2_100", "mobilenet_v3_large_100", "efficientnet_lite0")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _prepare(model, size: int):
    """Random weights made to behave like a trained classifier: O(1) activations, peaked softmax."""
    from edgetailor.converters.base import MOBILENET
    from edgetailor.converters.parity import calibrate_batchnorm, parity_pixels, sharpen_classifier

    images = MOBILENET.apply(parity_pixels((size, size), 16, seed=11))
    return sharpen_classifier(calibrate_batchnorm(model, images), images)


def _ours(name: str, resolution: int):
    from edgetailor.builder import network as builder

    resolved = zoo.resolve(name, resolution=resolution)
    return _prepare(builder.build(resolved.spec, num_classes=1000, name=name), resolution)


def _keras_mobilenet_v2(resolution: int):
    import tensorflow as tf

    model = tf.keras.applications.MobileNetV2(weights=None, input_shape=(resolution, resolution, 3))
    return _prepare(model, resolution)


def _convert(model, mode: str, calibration: np.ndarray):
    options = ConvertOptions(quantize=mode, quiet=True)
    started = time.perf_counter()
    artifact = convert(model, "tflite", options, calibration if mode in ("int8", "int16x8") else None)
    return artifact, time.perf_counter() - started


def _time(flatbuffer: bytes, threads: int) -> float:
    from edgetailor.profiling.timing import time_tflite

    return time_tflite(flatbuffer, threads, warmup=5, min_runs=30, min_seconds=1.0).median_ms


def _parity(details: dict) -> str:
    parity = details["parity"]
    if parity["kind"] == "max_abs_error":
        return f"max abs err {parity['max_abs_error']:.1e}"
    return f"top-1 agree {parity['top1_agreement']:.0%}"


def main_table(models, modes, resolution: int, calibration: np.ndarray, threads: int) -> None:
    rows = []
    for name in models:
        model = _ours(name, resolution)
        for mode in modes:
            artifact, seconds = _convert(model, mode, calibration)
            latency = _time(artifact.payload, threads)
            _log(f"{name} {mode}: {seconds:.1f} s to convert, {latency:.2f} ms")
            rows.append((name, mode, len(artifact.payload) / 1e6, seconds, latency, _parity(artifact.details)))
    print(f"\nTFLite per quantization mode at {resolution} px ({threads} thread, median; "
          f"conversion includes the parity check and metadata)\n")
    print("| model | mode | size MB | convert s | latency ms | parity |")
    print("|---|---|---|---|---|---|")
    for name, mode, size, seconds, latency, parity in rows:
        print(f"| {name} | {mode} | {size:.2f} | {seconds:.1f} | {latency:.2f} | {parity} |")


def keras_comparison(modes, resolution: int, calibration: np.ndarray, threads: int, rounds: int = 5) -> None:
    ours_model, keras_model = _ours("mobilenet_v2_100", resolution), _keras_mobilenet_v2(resolution)
    rows = []
    for mode in modes:
        ours, _ = _convert(ours_model, mode, calibration)
        theirs, _ = _convert(keras_model, mode, calibration)
        samples = {"ours": [], "keras": []}
        for _ in range(rounds):  # alternate, so drift on a shared machine hits both alike
            samples["ours"].append(_time(ours.payload, threads))
            samples["keras"].append(_time(theirs.payload, threads))
        best = {k: min(v) for k, v in samples.items()}
        _log(f"mobilenet_v2_100 {mode}: ours {best['ours']:.2f} ms, Keras {best['keras']:.2f} ms")
        rows.append((mode, best["ours"], best["keras"], len(ours.payload), len(theirs.payload)))
    print(f"\nOur mobilenet_v2_100 vs Keras Applications MobileNetV2 (weights=None), {resolution} px, "
          f"same converter, {threads} thread, best of {rounds} alternating medians\n")
    print("| mode | ours ms | Keras ms | ours / Keras | ours MB | Keras MB |")
    print("|---|---|---|---|---|---|")
    for mode, ours_ms, keras_ms, ours_b, keras_b in rows:
        print(f"| {mode} | {ours_ms:.2f} | {keras_ms:.2f} | {ours_ms / keras_ms:.3f} | "
              f"{ours_b / 1e6:.2f} | {keras_b / 1e6:.2f} |")


def compare_paths(name: str, resolution: int) -> None:
    import tensorflow as tf

    from edgetailor.converters.base import native_output_captured
    from edgetailor.converters.tflite import to_tflite

    model = _ours(name, resolution)
    timings = {}
    with native_output_captured():
        started = time.perf_counter()
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        keras_path = converter.convert()
        timings["TFLiteConverter.from_keras_model (SavedModel round trip)"] = time.perf_counter() - started
        started = time.perf_counter()
        ours = to_tflite(model)
        timings["from_concrete_functions, no trackable object (ours)"] = time.perf_counter() - started
        started = time.perf_counter()
        convert(model, "coreml", ConvertOptions(labels=tuple(str(i) for i in range(1000))))
        timings["Core ML mlprogram float16 (ct.convert)"] = time.perf_counter() - started
    print(f"\nFloat32 conversion paths for {name} at {resolution} px "
          f"(flatbuffers {len(keras_path)} vs {len(ours)} bytes)\n")
    print("| path | seconds |")
    print("|---|---|")
    for label, seconds in timings.items():
        print(f"| {label} | {seconds:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated zoo names")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--modes", default=",".join(QUANTIZE_MODES), help="comma-separated quantize modes")
    parser.add_argument("--keras-modes", default="none,int8",
                        help="modes of the Keras MobileNetV2 comparison ('' to skip)")
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compare-paths", action="store_true",
                        help="also time from_keras_model vs our path and one Core ML conversion")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    modes = [m for m in args.modes.split(",") if m]
    keras_modes = [m for m in args.keras_modes.split(",") if m]
    for mode in modes + keras_modes:
        if mode not in QUANTIZE_MODES:
            parser.error(f"unknown mode {mode!r}; choose from {', '.join(QUANTIZE_MODES)}")
    for name in models:
        zoo.resolve(name)  # unknown names fail before anything slow
    from edgetailor.converters.parity import parity_pixels

    calibration = parity_pixels((args.resolution, args.resolution), args.calibration_images, seed=5)
    main_table(models, modes, args.resolution, calibration, args.threads)
    if keras_modes:
        keras_comparison(keras_modes, args.resolution, calibration, args.threads)
    if args.compare_paths:
        compare_paths(models[0], args.resolution)


if __name__ == "__main__":
    main()
