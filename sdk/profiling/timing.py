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


def runs(model: bytes) -> bool:
    """Whether the TFLite runtime prepares ``model`` (a chained network whose channel groups do not
    divide, an int8 rewrite it refuses, ...)."""
    try:
        tf.lite.Interpreter(model_content=model).allocate_tensors()
    except (RuntimeError, ValueError):
        return False
    return True


def _clock(threads: int):
    """With one thread the interpreter runs in the calling thread: its CPU time is what other
    processes taking turns on the cores cannot inflate. With more, wall time."""
    return time.thread_time if threads == 1 else time.perf_counter


def interleaved_best_ms(models: list[bytes], threads: int = 1, passes: int = 8, window_s: float = 0.008,
                        warmup: int = 2, batch_s: float = 1e-4, min_span_s: float = 0.0) -> list[float]:
    """Best-of ``invoke()`` ms of each model, its runs spread over ``passes`` rounds through all of
    ``models`` (each round: at least two batches and ``window_s`` seconds per model; a batch is as
    many runs as take ``batch_s``, timed together, so the clock's own cost (~0.7 us) and
    granularity do not count for microsecond kernels), and over more rounds until ``min_span_s``
    seconds have passed: a few short models' rounds could otherwise all fall in one slow state.

    This machine (a VM on a shared AMD EPYC) runs the same code in a fast and a slow state that
    last 0.5-3 s each, 1.4-1.7x apart: one model's best of 0.25-s windows, repeated for 30 s on an
    idle machine, ranged from 1.11 to 1.85 ms. A best-of taken in one stretch of time lands in
    whichever state holds then; rounds through many models sample each at many moments, so the
    minimum is the fast state's (five networks timed twice this way agreed within 3 %, timed
    twice in one stretch they differed by up to 50 %; 64 kernels: median repeat difference 1.9 %
    against 10.9 %).
    """
    clock, interpreters, batches = _clock(threads), [], []
    rng = np.random.default_rng(0)
    for model in models:
        interpreter = tf.lite.Interpreter(model_content=model, num_threads=threads)
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], rng.uniform(-1, 1, detail["shape"]).astype(detail["dtype"]))
        t0 = clock()
        for _ in range(warmup):
            interpreter.invoke()
        one_run_s = max((clock() - t0) / warmup, 1e-7)
        interpreters.append(interpreter)
        batches.append(max(1, int(batch_s / one_run_s)))
    best, started, rounds = np.full(len(models), np.inf), time.perf_counter(), 0
    while rounds < passes or time.perf_counter() - started < min_span_s:
        rounds += 1
        for index, (interpreter, batch) in enumerate(zip(interpreters, batches)):
            window_started, count = time.perf_counter(), 0
            while count < 2 or time.perf_counter() - window_started < window_s:
                t0 = clock()
                for _ in range(batch):
                    interpreter.invoke()
                elapsed, count = clock() - t0, count + 1
                if elapsed > 0:  # a clock that did not move (seen: a few 0 readings in 2,750 kernels) is no time
                    best[index] = min(best[index], elapsed / batch)
    return [float(ms) for ms in best * 1e3]
