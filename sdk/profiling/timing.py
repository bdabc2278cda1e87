"""Time a TFLite model with the TFLite interpreter (XNNPACK, fixed threads, warm-up, median)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class Timing:
    median_ms: float
    min_ms: float
    runs: int


def time_tflite(model: bytes, threads: int = 1, warmup: int = 3, min_runs: int = 10,
                min_seconds: float = 0.05, max_runs: int = 500,
                inputs: list[np.ndarray] | None = None) -> Timing:
    """Median wall time of ``invoke()`` in ms after ``warmup`` runs.

    Runs at least ``min_runs`` times and at least ``min_seconds``, at most ``max_runs``.
    The interpreter applies the XNNPACK delegate by default, as benchmark_model does. ``inputs``:
    the input values in order (default uniform in [-1, 1]; an op whose time depends on its data,
    such as non-maximum suppression, needs its own).
    """
    interpreter = tf.lite.Interpreter(model_content=model, num_threads=threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for k, detail in enumerate(interpreter.get_input_details()):
        value = rng.uniform(-1, 1, detail["shape"]) if inputs is None else inputs[k]
        interpreter.set_tensor(detail["index"], np.asarray(value).astype(detail["dtype"]))
    for _ in range(warmup):
        interpreter.invoke()
    samples = []
    started = time.perf_counter()
    while len(samples) < max_runs and (len(samples) < min_runs or time.perf_counter() - started < min_seconds):
        t0 = time.perf_counter()
        interpreter.invoke()
        samples.append(time.perf_counter() - t0)
    samples_ms = np.array(samples) * 1e3
    return Timing(float(np.median(samples_ms)), float(samples_ms.min()), len(samples))
