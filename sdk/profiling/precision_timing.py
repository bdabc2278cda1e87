"""Host latency of each layer of a model in float32 and in int8, and of a precision boundary.

Every layer is cut out of the converted float32 and int8 models (``op_slices``) and timed in the
TFLite interpreter (XNNPACK, 1 thread, ``timing.time_tflite``'s median). The machine is shared, so
each item is timed in ``rounds`` interleaved rounds and the median of the round medians kept; the
noise reported is the median over items of (max - min) / median across rounds (%).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgetailor.profiling import op_slices
from edgetailor.profiling.timing import time_tflite


@dataclass
class HostCosts:
    """Per layer (the int8 model's output tensor name) float32 and int8 ms, boundary ms by
    (kind, shape), the interpreter's per-inference constant, and the timing noise (%)."""

    float_ms: dict[str, float]
    int8_ms: dict[str, float]
    boundary_ms: dict[tuple[str, tuple[int, ...]], float] = field(default_factory=dict)
    overhead_ms: float = 0.0
    noise_pct: float = 0.0
    rounds: int = 1


def layer_pairs(float_model: bytes, int8_model: bytes) -> list[tuple[op_slices.Node, op_slices.Node]]:
    """(float node, int8 node) per layer, matched in execution order; the int8 model's input
    QUANTIZE and output DEQUANTIZE are boundaries, not layers. ValueError when the two graphs do
    not have the same operators in the same order (then they are not the same network)."""
    floats = [n for n in op_slices.nodes(op_slices.read_model(float_model)) if n.op not in op_slices.BOUNDARY_OPS]
    int8s = [n for n in op_slices.nodes(op_slices.read_model(int8_model)) if n.op not in op_slices.BOUNDARY_OPS]
    if [n.op for n in floats] != [n.op for n in int8s]:
        raise ValueError("the float32 and int8 models do not have the same operators in the same order")
    return list(zip(floats, int8s))


def _median_rounds(models: dict, rounds: int, threads: int,
                   progress: Callable[[int], None] | None) -> tuple[dict, float]:
    samples: dict = {key: [] for key in models}
    for _ in range(rounds):
        for key, model in models.items():
            samples[key].append(time_tflite(model, threads, warmup=3, min_runs=15, min_seconds=0.03).median_ms)
            if progress:
                progress(1)
    spread = [(max(v) - min(v)) / np.median(v) * 100 for v in samples.values() if np.median(v) > 0]
    return {key: float(np.median(v)) for key, v in samples.items()}, float(np.median(spread)) if spread else 0.0


def measure_host(float_model: bytes, int8_model: bytes, boundaries: list[tuple[str, tuple[int, ...]]],
                 threads: int = 1, rounds: int = 3,
                 progress: Callable[[int], None] | None = None) -> HostCosts:
    """Time every layer of the two models and each boundary (kind, shape) asked for."""
    f_model, q_model = op_slices.read_model(float_model), op_slices.read_model(int8_model)
    models = {}
    for f, q in layer_pairs(float_model, int8_model):
        models[("float32", q.output_name)] = op_slices.single_op_model(f_model, f.index)
        models[("int8", q.output_name)] = op_slices.single_op_model(q_model, q.index)
    for kind, shape in dict.fromkeys(boundaries):
        models[("boundary", (kind, shape))] = op_slices.boundary_model(kind, shape)
    # the per-inference constant: a QUANTIZE of one element does (almost) nothing
    models[("overhead", None)] = op_slices.boundary_model("QUANTIZE", (1, 1))
    medians, noise = _median_rounds(models, rounds, threads, progress)
    overhead = medians.pop(("overhead", None))
    costs = HostCosts({}, {}, overhead_ms=overhead, noise_pct=round(noise, 1), rounds=rounds)
    for (what, key), ms in medians.items():
        net = max(ms - overhead, 0.0)  # each one-op model's invoke() includes the constant once
        {"float32": costs.float_ms, "int8": costs.int8_ms, "boundary": costs.boundary_ms}[what][key] = net
    return costs


def measure_model(model: bytes, threads: int = 1, rounds: int = 5) -> tuple[float, float]:
    """A whole model's latency on the host (ms, the median of ``rounds`` medians) and the spread
    across rounds (%)."""
    medians = [time_tflite(model, threads, warmup=5, min_runs=30, min_seconds=0.2).median_ms for _ in range(rounds)]
    return float(np.median(medians)), float((max(medians) - min(medians)) / np.median(medians) * 100)
