"""Measure this machine for real and write a ``host`` device profile.

What a space's architectures are made of is measured op by op: random architectures of the
space (at each of its resolutions) are walked, their distinct ops collected, and each op is
written as a one-op TFLite model (``converters.tflite_ops``) and timed with the TFLite
interpreter (XNNPACK, fixed threads, best-of in rounds: ``timing.interleaved_best_ms``).
Measured ops go in the profile's table;
the op-feature coefficients are fitted on them for ops never measured; the per-inference
constant is the interpreter's own ``invoke()`` cost, timed on an empty model.

With ``precision="int8"`` every op is timed as a full-integer model (int8 in and out,
``int8_tflite_ops``) and the profile prices int8 networks: its setting says int8.

Measurements are appended to ``<out>.measurements.jsonl`` as they are made, so an interrupted
run resumes where it stopped. A run killed mid-write (kill -9, a full disk) leaves its last line
cut off: the next run drops that line (and measures its op again); a bad line anywhere else is
an error naming it, as the file was then edited or damaged.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from edgetailor import _io
from edgetailor.arch import spaces, zoo
from edgetailor.profiling.calibration import VERSION, error_summary
from edgetailor.latency.cost import FEATURES, fit, op_features, op_key
from edgetailor.arch.layers import Op, walk
from edgetailor.errors import ProfileError
from edgetailor.latency.profiles import SCHEMA

PRECISIONS = ("float32", "int8")


def op_model_bytes(op: Op, precision: str = "float32") -> bytes:
    """The one-op TFLite model of ``op`` in ``precision`` (float32, or int8 in and out)."""
    if precision == "int8":
        from edgetailor.profiling.int8_tflite_ops import int8_op_model

        return int8_op_model(op)
    from edgetailor.profiling.tflite_ops import op_model

    return op_model(op)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_ops(space_name: str, archs: int, seed: int = 0, include_zoo: bool = False) -> list[Op]:
    """Distinct ops of ``archs`` random architectures of the space (plus the zoo, if asked)."""
    rng = np.random.default_rng(seed)
    specs = []
    if space_name != "zoo":
        space = spaces.get(space_name)
        specs = [space.decode(row) for row in space.sample(rng, archs)]
    if include_zoo or space_name == "zoo":
        specs += [entry.spec for entry in zoo.entries() if entry.resolution <= 320]
    seen: dict[str, Op] = {}
    for spec in specs:
        for layer in walk(spec):
            for op in layer.ops:
                seen.setdefault(op_key(op), op)
    return [seen[key] for key in sorted(seen)]


EMPTY_OP = Op("add", (1, 1, 1), (1, 1, 1))  # the empty model's one op: (almost) nothing to do


def _empty_model_ms(threads: int, precision: str = "float32") -> float:
    """``invoke()`` of a model doing (almost) nothing: the per-inference constant."""
    from edgetailor.profiling.timing import interleaved_best_ms

    return interleaved_best_ms([op_model_bytes(EMPTY_OP, precision)], threads, passes=100, window_s=0.02)[0]


def time_empty_model(journal: Path, threads: int, precision: str = "float32") -> float:
    """Time the per-inference constant (``_empty_model_ms``) into ``journal``; its ms."""
    from edgetailor.profiling.timing_journal import EMPTY_MODEL_KEY, append, line

    ms = round(_empty_model_ms(threads, precision), 5)
    append(journal, [line(EMPTY_MODEL_KEY, ms, threads, precision)])
    return ms


def _journal_entry(line: bytes) -> dict | None:
    """One journal line as ``{"key", "ms", "threads"[, "precision"]}`` (no precision: float32),
    or None when it is not one."""
    try:
        entry = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        return None
    ok = (isinstance(entry, dict) and isinstance(entry.get("key"), str)
          and isinstance(entry.get("ms"), (int, float)) and isinstance(entry.get("threads"), int)
          and entry.get("precision", "float32") in PRECISIONS)
    return entry if ok else None


def read_journal(journal: Path, threads: int, say: Callable[[str], None] | None = None,
                 precision: str = "float32") -> dict[str, float]:
    """Op key -> best-of ms measured with ``threads`` threads in ``precision``, from the
    ``journal`` JSONL (if any).

    A last line that is cut off or not a measurement (a killed run) is removed from the file, so
    that appending goes on from a whole line, and reported to ``say``; any other bad line is a
    ``ProfileError`` naming its number."""
    if not journal.exists():
        return {}
    data = journal.read_bytes()
    lines = data.split(b"\n")
    if lines[-1] == b"":  # the file ends with a newline, as a whole last line does
        lines.pop()
    done: dict[str, float] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        entry = _journal_entry(line)
        last = number == len(lines)
        if entry is None or (last and not data.endswith(b"\n")):
            if not last:
                raise ProfileError(f"{journal} line {number} is not a measurement (damaged or edited?): "
                                   "fix or delete that line, or delete the file to measure again")
            with _io.writing(journal):
                os.truncate(journal, len(data) - len(line) - data.endswith(b"\n"))
            if say:
                say(f"{journal}: dropped its cut-off last line {number} (an interrupted run); "
                    "its op is measured again")
            break
        if entry["threads"] == threads and entry.get("precision", "float32") == precision:
            done[entry["key"]] = entry["ms"]
    return done


OP_CHUNK = 64  # ops timed together, round after round (``timing.interleaved_best_ms``)
OP_CHUNK_SPAN_S = 4.0  # ...over at least this long: a chunk of small ops took ~2 s, all in one slow state at times


def measure_ops(ops: Iterable[Op], journal: Path, threads: int = 1,
                progress: Callable[[int], None] | None = None,
                done: dict[str, float] | None = None, precision: str = "float32") -> dict[str, float]:
    """Best-of ms of each op in ``precision``, ``OP_CHUNK`` ops timed interleaved at a time
    (``timing.interleaved_best_ms``), each chunk appended to the ``journal`` JSONL when timed;
    ``done`` is what ``read_journal`` found there (read now when not given). The journal is made
    only once a measurement is ready, so a run stopped before its first one leaves no file."""
    from edgetailor.profiling.timing_journal import time_into

    done = read_journal(journal, threads, precision=precision) if done is None else dict(done)
    ops = list(ops)
    todo = {op_key(op): op for op in ops if op_key(op) not in done}
    if progress:
        progress(len(ops) - len(todo))
    done.update(time_into(journal, list(todo), lambda key: op_model_bytes(todo[key], precision), threads, precision,
                          chunk=OP_CHUNK, progress=progress, min_span_s=OP_CHUNK_SPAN_S))
    return done


def build_profile(ops: list[Op], measured: dict[str, float], overhead_ms: float, *, name: str,
                  aliases: list[str], device: str, runtime: str, setting: str,
                  provenance: list[dict]) -> dict:
    """Measured ops as the table, coefficients fitted on them, ``overhead_ms`` per inference."""
    x = np.array([op_features(op) for op in ops])
    y = np.array([max(measured[op_key(op)] - overhead_ms, 1e-4) for op in ops])
    coefficients = fit(x, y)
    coefficients[FEATURES.index("model")] = overhead_ms
    predicted = x @ coefficients
    table = {op_key(op): round(float(v), 5) for op, v in zip(ops, y)}
    return {
        "schema": SCHEMA, "name": name, "aliases": aliases, "version": VERSION, "device": device,
        "runtime": runtime, "setting": setting, "unit": "ms", "provenance": provenance,
        "features": list(FEATURES), "coefficients": [round(float(c), 7) for c in coefficients],
        "table": dict(sorted(table.items())),
        "error": {"ops_model_in_sample": error_summary(predicted, y)},
        "expected_error_pct": None, "calibration": [],
    }


def host_profile(ops: list[Op], measured: dict[str, float], overhead_ms: float, threads: int,
                 space_name: str, precision: str = "float32") -> dict:
    """The profile of this machine, named for its CPU, TFLite version, thread count and (int8)
    precision."""
    import tensorflow as tf

    cpu = cpu_name()
    int8 = precision == "int8"
    return build_profile(
        ops, measured, overhead_ms,
        name=f"host-{_slug(cpu)}-tflite{tf.__version__}-{threads}t" + ("-int8" if int8 else ""),
        aliases=["host-int8" if int8 else "host"], device=f"this machine: {cpu}", runtime="tflite",
        setting=f"TFLite {tf.__version__} interpreter, XNNPACK, {threads} thread(s), "
                + ("int8 (full-integer, int8 in and out)" if int8 else "float32"),
        provenance=[{"source": "measured here", "space": space_name, "ops": len(ops), "precision": precision,
                     "what": "one-op TFLite models timed with tf.lite.Interpreter"}])


def end_to_end_correction(profile_document: dict, space_name: str, models: int, seed: int,
                          threads: int, work_dir: Path,
                          progress: Callable[[int], None] | None = None, quiet: bool = False,
                          precision: str = "float32") -> dict:
    """Scale the op-level profile to whole converted models, measured here.

    Ops timed one at a time run with warm caches and no neighbours; inside a converted model
    the same ops run slower. ``models`` random architectures of the space (a seed apart from
    the ones whose ops were measured) are converted with the real TFLite converter and timed end
    to end (best-of, interleaved as the ops were); the median ratio of measured to op-summed
    latency scales the table and the fitted coefficients (not the per-inference constant). The
    ratio's leave-one-out error is reported.
    ``quiet`` keeps the converter's native log lines (about 25 per model) off stderr. With
    ``precision="int8"`` each model is converted full-integer (int8 in and out), calibrated on
    random pixels: latency does not depend on the calibrated ranges.
    """
    from edgetailor.builder import network as builder
    from edgetailor.profiling.timing import interleaved_best_ms
    from edgetailor.converters.base import ConvertOptions, native_output_captured
    from edgetailor.converters.tflite import to_tflite
    from edgetailor.latency.profiles import from_dict

    work_dir.mkdir(parents=True, exist_ok=True)
    profile = from_dict(profile_document, "host profile")
    space = spaces.get(space_name)
    rng = np.random.default_rng(seed + 1000)
    specs, paths = [], []
    for index, choice in enumerate(space.sample(rng, models)):
        spec = space.decode(choice)
        path = work_dir / (f"e2e-{seed}-{index:02d}" + ("-int8" if precision == "int8" else "") + ".tflite")
        if not path.exists():
            pixels = None if precision == "float32" else np.random.default_rng(index).uniform(
                0, 255, (4, spec.resolution, spec.resolution, 3)).astype(np.float32)
            with native_output_captured(quiet):
                model = to_tflite(builder.build(spec), pixels, ConvertOptions(io_type="int8"))
            _io.write_bytes(path, model)
        specs.append(spec)
        paths.append(path)
        if progress:
            progress(1)
    timed = interleaved_best_ms([path.read_bytes() for path in paths], threads, passes=12, window_s=0.05, warmup=5)
    rows = [(spec.encode(), profile.predict(spec).total_ms - profile.coefficients[-1], measured)
            for spec, measured in zip(specs, timed)]
    overhead = float(profile.coefficients[-1])
    ratios = np.array([(m - overhead) / p for _, p, m in rows])
    scale = float(np.median(ratios))
    measured = np.array([m for *_, m in rows])
    if len(rows) >= 2:
        loo = np.array([np.median(np.delete(ratios, i)) * p + overhead for i, (_, p, _) in enumerate(rows)])
    else:  # one model: its ratio is exact on it, there is no out-of-sample figure
        loo = np.full(len(rows), np.nan)
    document = dict(profile_document)
    features = list(FEATURES)
    coefficients = np.asarray(document["coefficients"], dtype=float)
    coefficients[:features.index("model")] *= scale
    document["coefficients"] = [round(float(c), 7) for c in coefficients]
    document["table"] = {k: round(v * scale, 5) for k, v in document["table"].items()}
    if len(rows) >= 2:
        document["error"] = {**document["error"],
                             "end_to_end_leave_one_out": {**error_summary(loo, measured),
                                                          "what": "scale refitted without the model"}}
        document["expected_error_pct"] = document["error"]["end_to_end_leave_one_out"]["mape_pct"]
    else:
        document["error"] = {**document["error"], "end_to_end_note":
                             "one converted model: the scale is exact on it, no out-of-sample error"}
    document["provenance"] = document["provenance"] + [{
        "end_to_end_scale": round(scale, 4), "models": len(rows), "seed": seed + 1000,
        "what": "converted models timed end to end; median measured / op-summed ratio"}]
    document["calibration"] = [{"name": spec, "kind": "model", "measured_ms": round(m, 3),
                                "predicted_ms": round(p * scale + overhead, 3),
                                "out_of_sample_ms": None if np.isnan(q) else round(float(q), 3)}
                               for (spec, p, m), q in zip(rows, loo)]
    return document


def _slug(text: str) -> str:
    return "".join(ch.lower() if ch.isalnum() else "-" for ch in text).strip("-")[:40].strip("-")

