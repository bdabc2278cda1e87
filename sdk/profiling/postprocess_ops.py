"""One-op TFLite models of ``TFLite_Detection_PostProcess`` and their timing over a grid of sizes.

The model is the custom op alone, written as a flatbuffer (no converter): inputs box encodings
``[1, A, 4]`` and class scores ``[1, A, 1 + C]`` (column 0 the background), the ``[A, 4]`` anchors
a constant, the four float outputs (boxes, classes, scores, count). Its options are the ones
``tasks.detection.export`` writes (fast NMS, one class per box, box coder 10/10/5/5), read from
TF src ``tensorflow/lite/kernels/detection_postprocess.cc`` (``Init``: flexbuffer keys).

Its time depends on the scores: every anchor whose best class score passes the threshold is
sorted and goes through the greedy suppression. The timing inputs make every anchor a candidate
(scores in (0, 1), threshold 1e-8, as the TF Object Detection API's mobile SSD configs set it),
so the price is the op's cost on a crowded or evaluation-threshold frame, an upper bound of what
a bundle with the 0.25 default threshold spends on an empty one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from edgetailor.profiling.tflite_ops import _Graph

OP_NAME = "TFLite_Detection_PostProcess"
SCALES = (10.0, 10.0, 5.0, 5.0)  # y, x, h, w: the SSD box coder (tasks.detection.box_coder)
TIMING_SCORE_THRESHOLD = 1e-8    # every anchor a candidate (see the module docstring)
TIMING_IOU_THRESHOLD = 0.6       # ssdlite_mobilenet_v3_large_320x320_coco.config


@dataclass(frozen=True)
class PostprocessShape:
    """What the op's time depends on: anchors, classes (without background), detections kept."""

    anchors: int
    classes: int
    max_detections: int


def _options(shape: PostprocessShape) -> bytes:
    y, x, h, w = SCALES
    return bytes(flexbuffers.Dumps({
        "max_detections": shape.max_detections, "max_classes_per_detection": 1,
        "detections_per_class": 100, "use_regular_nms": False,
        "nms_score_threshold": TIMING_SCORE_THRESHOLD, "nms_iou_threshold": TIMING_IOU_THRESHOLD,
        "num_classes": shape.classes, "y_scale": y, "x_scale": x, "h_scale": h, "w_scale": w}))


def anchors_for(count: int, seed: int = 0) -> np.ndarray:
    """``[count, 4]`` (yc, xc, h, w) anchors spread over the image, sizes 0.05-0.9 of it."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.0, 1.0, (count, 2))
    sizes = rng.uniform(0.05, 0.9, (count, 2))
    return np.concatenate([centres, sizes], axis=1).astype(np.float32)


def postprocess_model(shape: PostprocessShape) -> bytes:
    """A TFLite model that runs only ``TFLite_Detection_PostProcess`` at ``shape``."""
    a, n = shape.anchors, shape.max_detections
    g = _Graph()
    boxes_in = g.tensor([1, a, 4])
    scores_in = g.tensor([1, a, shape.classes + 1])
    anchors = g.tensor([a, 4], anchors_for(a))
    outputs = [g.tensor([1, n, 4]), g.tensor([1, n]), g.tensor([1, n]), g.tensor([1])]
    g.op(schema.BuiltinOperator.CUSTOM, [boxes_in, scores_in, anchors], outputs)
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(g.to_bytes([boxes_in, scores_in], outputs)))
    code = model.operatorCodes[0]
    code.customCode = OP_NAME.encode()
    operator = model.subgraphs[0].operators[0]
    operator.customOptions = list(_options(shape))
    operator.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def timing_inputs(shape: PostprocessShape, seed: int = 0) -> list[np.ndarray]:
    """Box encodings near their anchors and scores in (0, 1) for every class: all anchors pass."""
    rng = np.random.default_rng(seed)
    boxes = rng.normal(0.0, 0.5, (1, shape.anchors, 4)).astype(np.float32)
    scores = rng.uniform(0.001, 1.0, (1, shape.anchors, shape.classes + 1)).astype(np.float32)
    return [boxes, scores]


# The grid: SSDLite at 320 px has 2,034 anchors (6 maps), at 640 px ~8k; COCO has 90 classes.
GRID_ANCHORS = (256, 512, 1024, 2034, 4096, 8192)
GRID_CLASSES = (1, 4, 20, 90, 200)
GRID_DETECTIONS = (10, 25, 100)


def grid() -> list[PostprocessShape]:
    return [PostprocessShape(a, c, d) for a in GRID_ANCHORS for c in GRID_CLASSES for d in GRID_DETECTIONS]


def measure(shapes: Iterable[PostprocessShape], threads: int = 1, rounds: int = 3,
            progress: Callable[[int], None] | None = None,
            reference: dict[bytes, int] | None = None) -> tuple[dict[PostprocessShape, float], float | None]:
    """Fastest ms of each shape's one-op model, less the interpreter's per-inference constant,
    and of the ``reference`` network if given (its one-op models with their counts: the sum of
    their fastest times plus one constant), over ``rounds`` interleaved rounds. The fastest run,
    not the median: on a shared machine other work only adds time; and ops, not the whole
    network, because a 20 ms run is preempted where a 0.1 ms one is not, which skews the ratio
    (this machine under load 8: MobileNetV2 1.0 converted took 23-39 ms, idle it takes ~7)."""
    from edgetailor.profiling.host import _empty_model_ms
    from edgetailor.profiling.timing import time_tflite

    shapes = list(shapes)
    models = {s: postprocess_model(s) for s in shapes}
    samples: dict[PostprocessShape, list[float]] = {s: [] for s in shapes}
    overhead = []
    parts: dict[bytes, list[float]] = {model: [] for model in reference or {}}
    for _ in range(rounds):
        overhead.append(_empty_model_ms(threads))
        for model in parts:
            parts[model].append(time_tflite(model, threads, warmup=2, min_runs=5, min_seconds=0.01).min_ms)
        for s in shapes:
            samples[s].append(time_tflite(models[s], threads, warmup=3, min_runs=10, min_seconds=0.05,
                                          inputs=timing_inputs(s)).min_ms)
            if progress:
                progress(1)
    constant = float(np.median(overhead))
    whole = constant + sum(max(min(v) - constant, 0.0) * reference[m] for m, v in parts.items()) if parts else None
    return {s: max(float(np.min(v)) - constant, 0.0) for s, v in samples.items()}, whole


REFERENCE = ("mobilenet_v2", 1.0, 224)  # the network whose phone / host ratio carries the op to a phone


def reference_ops() -> tuple[str, dict[bytes, int]]:
    """(spec, its one-op models with how often each op occurs) of the reference network."""
    from collections import Counter

    from edgetailor.arch import zoo
    from edgetailor.arch.layers import walk
    from edgetailor.latency.cost import op_key
    from edgetailor.profiling.tflite_ops import op_model

    spec = zoo.FAMILIES[REFERENCE[0]].spec(REFERENCE[1], 1.0, REFERENCE[2])
    ops = [op for layer in walk(spec) for op in layer.ops]
    counts, first = Counter(op_key(op) for op in ops), {op_key(op): op for op in ops}
    return spec.encode(), {op_model(first[key]): n for key, n in counts.items()}


def document(measured: dict[PostprocessShape, float], reference: tuple[str, float], threads: int,
             rounds: int) -> dict:
    """The ``edgetailor.op-cost/1`` document of a grid measurement (``latency.postprocess``)."""
    import tensorflow as tf

    from edgetailor.latency import detection_postprocess as postprocess
    from edgetailor.profiling.host import cpu_name

    shapes = list(measured)
    coefficients, error = postprocess.fit([(s.anchors, s.classes, s.max_detections) for s in shapes],
                                          [measured[s] for s in shapes])
    spec, ms = reference
    return {
        "schema": postprocess.SCHEMA, "op": OP_NAME, "unit": "ms", "terms": list(postprocess.TERMS),
        "coefficients": [round(float(c), 7) for c in coefficients],
        "host": f"{cpu_name()}, TFLite {tf.__version__} interpreter, {threads} thread(s)",
        "timing": {"inputs": "every anchor a candidate: scores uniform in (0.001, 1), threshold "
                             f"{TIMING_SCORE_THRESHOLD}, IoU {TIMING_IOU_THRESHOLD}, fast NMS, one class per box",
                   "what": f"one-op model, fastest run of {rounds} interleaved rounds, less the empty model's "
                           "invoke() (median)"},
        "reference": {"spec": spec, "host_ms": round(ms, 4),
                      "what": "sum of its ops timed as one-op models in the same rounds as the grid "
                              "(fastest run each) + one invoke() constant"},
        "error": error,
        "grid": [{"anchors": s.anchors, "classes": s.classes, "max_detections": s.max_detections,
                  "ms": round(measured[s], 5)} for s in shapes],
    }


def main() -> None:
    """Measure the grid and the reference here and write the op-cost JSON."""
    import argparse
    import os
    from pathlib import Path

    from edgetailor import _io

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    spec, models = reference_ops()
    measured, reference_ms = measure(grid(), args.threads, args.rounds, reference=models)
    _io.write_json(args.out, document(measured, (spec, reference_ms), args.threads, args.rounds))
    print(f"wrote {args.out}: {len(measured)} shapes")


if __name__ == "__main__":
    main()
