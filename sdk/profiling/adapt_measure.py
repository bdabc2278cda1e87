"""The few kernels to measure on a new device, and their timing on this host in another setting
(thread count, int8) into an adapt measurements journal (``edgetailor.profiling.adapt``).

The kernels are chosen from the networks the searches and the zoo make (``kernels.observed_kernels``):
every kernel type they use gets measurements, a type's share of the budget grows with the square
root of its part of those networks' predicted time (big types need more points to refit four
coefficients, small ones a factor), and within a type the picks are stratified over its variants
(kernel size, stride, padding: int8 7x7 depthwise runs ~4x slower than the float shape says, so
each variant needs its own points) and then over predicted time (one per equal-count bin), so
small and large kernels are both covered.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edgetailor.errors import ProfileError
from edgetailor.latency.kernel_predictor import Kernel, KernelPredictor
from edgetailor.profiling import adapt
from edgetailor.profiling import kernels as kernel_space
from edgetailor.profiling.kernels_fit import CHUNK, NETWORK_KEY, NETWORK_TIMING
from edgetailor.profiling.host import EMPTY_OP, op_model_bytes, time_empty_model
from edgetailor.profiling.timing_journal import EMPTY_MODEL_KEY, time_into

MIN_PER_TYPE = 4      # every type gets a factor of its own (adapt.SCALE_MIN and a spare)
POOL_NETWORKS = 3     # networks walked per space and per zoo family for the pool
INPUT_SIZES = (96, 192, 288)  # px: an int8 model's input conversion, timed at these sizes


def kernel_model_bytes(kernel: Kernel, precision: str) -> bytes:
    """The one-kernel TFLite model in ``precision`` (int8: full-integer, as ``int8_tflite_ops``)."""
    model = kernel_space.kernel_model(kernel)
    if precision == "int8":
        from edgetailor.profiling.int8_tflite_ops import quantize_model

        return quantize_model(model)
    return model


def _allocate(weights: dict[str, float], available: dict[str, int], budget: int) -> dict[str, int]:
    """Kernels per type: ``MIN_PER_TYPE`` each (or all there are), the rest of ``budget`` by weight."""
    counts = {kind: min(MIN_PER_TYPE, available[kind]) for kind in weights}
    total = sum(weights.values()) or 1.0
    spare = budget - sum(counts.values())
    if spare < 0:
        raise ProfileError(f"--max-kernels {budget} cannot give every one of the {len(weights)} kernel types "
                           f"{MIN_PER_TYPE} measurements; allow at least {sum(counts.values())}")
    for kind in sorted(weights, key=weights.get, reverse=True):
        extra = min(available[kind] - counts[kind], int(round(spare * weights[kind] / total)),
                    budget - sum(counts.values()))
        counts[kind] += max(extra, 0)
    return counts


def choose(base: KernelPredictor, budget: int, seed: int = 0) -> list[Kernel]:
    """At most ``budget`` kernels to measure (see the module docstring), of types ``base`` knows."""
    pool = [k for k in kernel_space.observed_kernels(seed + 11, POOL_NETWORKS) if k.type in base.ensembles]
    by_type: dict[str, list[Kernel]] = {}
    for kernel in pool:
        by_type.setdefault(kernel.type, []).append(kernel)
    predicted = {kind: base.kernel_ms(group) for kind, group in by_type.items()}
    weights = {kind: float(np.sqrt(ms.sum())) for kind, ms in predicted.items()}
    counts = _allocate(weights, {kind: len(group) for kind, group in by_type.items()}, budget)
    rng = np.random.default_rng(seed)
    out = []
    for kind in sorted(by_type):
        # by kernel size, stride and padding first, then time: the bins cover each such variant
        variants = [(k.op.kernel, k.op.stride, k.padded) for k in by_type[kind]]
        index = {v: i for i, v in enumerate(sorted(set(variants)))}
        order = np.lexsort((predicted[kind], [index[v] for v in variants]))
        for stratum in np.array_split(order, counts[kind]):
            if len(stratum):
                out.append(by_type[kind][int(rng.choice(stratum))])
    return out


def pending(kernels: list[Kernel], journal: Path, threads: int, precision: str,
            say: Callable[[str], None] | None = None) -> list[tuple[str, Callable[[], bytes], dict]]:
    """What ``journal`` still lacks for a profile in ``threads`` thread(s) and ``precision``, in
    timing order: the empty model, (int8) the input conversion at ``INPUT_SIZES``, then each of
    ``kernels``; as (journal key, its model's builder, the key's journal fields). A journal of
    another setting is an error (one file, one device)."""
    done = adapt.read(journal, repair=True, say=say) if journal.exists() else None
    if done is not None and (done.kernels or done.empty_ms) and done.setting != (threads, precision):
        raise ProfileError(f"{journal} holds measurements with {done.setting[0]} thread(s) in "
                           f"{done.setting[1]}; give another file for {threads} thread(s) in {precision}")
    out = []
    if done is None or done.empty_ms is None:
        out.append((EMPTY_MODEL_KEY, lambda: op_model_bytes(EMPTY_OP, precision), {}))
    if precision == "int8" and (done is None or not done.inputs):
        from edgetailor.profiling.int8_tflite_ops import input_conversion_model

        out += [(f"{adapt.INPUT_KEY}{size}", lambda size=size: input_conversion_model(size),
                 {"elements": 3 * size ** 2}) for size in INPUT_SIZES]
    todo = {k.key: k for k in kernels if not done or k.key not in done.kernels}
    out += [(key, lambda k=kernel: kernel_model_bytes(k, precision),
             {"type": kernel.type, "features": [float(f) for f in kernel.features()]})
            for key, kernel in todo.items()]
    return out


def measure(kernels: list[Kernel], journal: Path, threads: int, precision: str,
            progress: Callable[[int], None] | None = None, say: Callable[[str], None] | None = None) -> None:
    """Time what ``journal`` lacks (``pending``) with ``threads`` threads in ``precision``, best-of
    ms: the empty model as ``host.time_empty_model``, the kernels ``kernels_fit.CHUNK`` at a time
    interleaved (as the base's kernels are: ``timing.interleaved_best_ms``), appending each chunk
    as it is timed; ``progress(n)`` counts ``kernels``."""
    from edgetailor.profiling.timing import runs

    todo = pending(kernels, journal, threads, precision, say)
    if todo and todo[0][0] == EMPTY_MODEL_KEY:
        time_empty_model(journal, threads, precision)
        todo = todo[1:]
    inputs = [entry for entry in todo if entry[0].startswith(adapt.INPUT_KEY)]
    todo = todo[len(inputs):]
    if progress:
        progress(len(kernels) - len(todo))
    for batch, chunk in ((inputs, None), (todo, CHUNK)):
        models = {key: build() for key, build, _ in batch}
        fields = {key: extra for key, _, extra in batch}
        refused = [key for key in models if not runs(models[key])]
        if refused and say:  # e.g. an attention matmul whose reshape the int8 rewrite breaks
            say(f"left out {len(refused)} model(s) the runtime refuses in {precision}: "
                f"{', '.join(sorted({fields[key].get('type', key) for key in refused}))}")
        if progress and refused and chunk:
            progress(len(refused))
        time_into(journal, [key for key in models if key not in refused], models.get, threads, precision,
                  chunk=chunk, progress=progress if chunk else None, extra=fields.get)


def choose_networks(base: KernelPredictor, count: int, seed: int = 0) -> list[tuple[str, list[Kernel]]]:
    """``count`` networks of the spaces and families (spec string, kernels), another draw than the
    kernels', of types ``base`` knows and predicted under ``kernels_fit.NETWORK_MAX_MS``."""
    from edgetailor.arch.layers import walk
    from edgetailor.errors import SpecError
    from edgetailor.latency.kernel_predictor import detect_kernels
    from edgetailor.profiling.kernels_fit import NETWORK_MAX_MS

    rng = np.random.default_rng(seed + 23)
    out = []
    for spec in kernel_space._specs(rng, 1 + count // 16):  # each draw: every space and family once
        try:
            kernels = detect_kernels(walk(spec))
        except SpecError:
            continue
        if all(k.type in base.ensembles for k in kernels) and base.predict_ms(walk(spec)) <= NETWORK_MAX_MS:
            out.append((spec.encode(), kernels))
    picks = rng.choice(len(out), min(count, len(out)), replace=False)
    return [out[i] for i in sorted(picks)]


def measure_networks(networks: list[tuple[str, list[Kernel]]], journal: Path, threads: int, precision: str) -> None:
    """Time whole networks (their kernels chained in one model, ``kernels.network_model``; int8:
    full-integer) not yet in ``journal``, interleaved, and append them with their specs."""
    from edgetailor.profiling.timing import runs

    done = {name for name, _, _ in adapt.read(journal).models} if journal.exists() else set()
    todo = {}
    for spec_text, kernels in networks:
        if NETWORK_KEY + spec_text in done:
            continue
        model = kernel_space.network_model(kernels)
        if precision == "int8":
            from edgetailor.profiling.int8_tflite_ops import quantize_model

            model = quantize_model(model)
        if runs(model):  # a chain the runtime refuses (channel groups) is left out
            todo[NETWORK_KEY + spec_text] = model
    time_into(journal, list(todo), todo.get, threads, precision, chunk=None,
              extra=lambda key: {"spec": key[len(NETWORK_KEY):]}, **NETWORK_TIMING)


def measure_model(model: bytes, name: str, spec_text: str, journal: Path, threads: int, precision: str) -> float:
    """Time a whole converted model (best-of ms, as the kernels) and append it to ``journal`` with
    its spec, for the in-model factor (``adapt._in_model_factor``); returns the ms."""
    key = f"model:{name}"
    return time_into(journal, [key], lambda _: model, threads, precision, extra=lambda _: {"spec": spec_text},
                     passes=8, window_s=0.05)[key]
