"""``edgetailor quantize-mix``: per-layer int8 / float32 under a latency budget (HAQ's idea, greedy).

1. The trained classifier is converted to float32 and to full int8 by ``tasks.quantize`` (the
   same conversion, calibration sample and held-out scoring as ``--quantize int8``).
2. TFLite's ``QuantizationDebugger`` calibrates once and reports each layer's quantization error
   (``rmse/scale``: the RMS difference between the float and the dequantized int8 output of the
   layer, in units of its int8 step, over the calibration images; TF's quantization-debugger guide
   flags layers above ~0.7).
3. Starting from full int8, the layer with the largest error is moved to float32 if the
   predicted latency (``mixed_precision_latency``: layers at their precision plus every
   QUANTIZE/DEQUANTIZE boundary) stays within the budget; the candidate is exported with
   ``denylisted_nodes`` and scored on the held-out images in the TFLite interpreter. A layer that
   does not raise the accuracy is put back; the search stops after ``patience`` such layers in a
   row, after ``max_trials`` exported candidates, or when the mix scores what float32 does.
4. The precision of every layer is read back from the exported file (the converter may keep a
   layer int8 that was denylisted; the file is what counts).

float16: TF 2.15's converter writes float16 weights for a whole model only
(``supported_types=[tf.float16]``); ``mlir_quantize`` has no per-layer float16, and on the CPU a
float16-weight layer is dequantized to float32 at load and runs the float32 kernel. So a layer is
int8 or float32 here; no float16 is claimed.

The accuracy figures are measured on the held-out split that also chose among candidates: the
mix's figure is the best of a few tries on that split (stated in the manifest).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edgetailor.errors import ConversionError, SearchError
from edgetailor.tasks import quantize
from edgetailor.tasks.mixed_precision_latency import Costs, Graph, graph_of

DELEGATE_WARNING = ("float layers split the graph on DSP/NPU delegates (NNAPI, Hexagon, Edge TPU): each "
                    "float island falls back to the CPU with a copy in and out")
DEBUG_IMAGES = 32  # calibration images the debugger runs to measure per-layer errors (a seeded sample)


@dataclass(frozen=True)
class MixRequest:
    budget_ms: float
    max_trials: int = 8     # candidates exported and scored (each a conversion plus a held-out pass)
    patience: int = 2       # layers in a row that do not raise the accuracy before the search stops


@dataclass(frozen=True)
class LayerError:
    name: str               # the int8 model's output tensor name of the layer
    op: str
    rmse_over_scale: float  # quantization error in int8 steps
    denylist_name: str      # the name the debugger gives the converter for it


@dataclass
class Trial:
    floats: tuple[str, ...]
    predicted_ms: float
    accuracy: float | None  # None: over budget, not exported
    kept: bool
    note: str


@dataclass
class MixResult:
    model: bytes                      # the mixed TFLite model (no metadata)
    precisions: dict[str, str]        # layer -> precision read from the file
    errors: list[LayerError]
    floats: tuple[str, ...]
    accuracy: dict[str, float]        # float32, int8 (quantize.py), int8 (debugger start), mixed
    predicted_ms: dict[str, float]    # float32 / int8 / mixed on the device
    costs: Costs
    trials: list[Trial] = field(default_factory=list)
    flatbuffers: dict[str, bytes] = field(default_factory=dict)


def _debugger(model, calibration: np.ndarray, normalization):
    import tensorflow as tf

    from edgetailor.converters.tflite import calibrate, serving_function

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serving_function(model)], model)
    converter.experimental_lower_to_saved_model = False  # as converters.tflite converts
    calibrate(converter, calibration, normalization)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    images = normalization.apply(quantize.calibration_images(calibration, DEBUG_IMAGES))
    return tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=lambda: ([row[None]] for row in images))


def layer_errors(debugger, graph: Graph) -> list[LayerError]:
    """Each layer's rmse/scale from the debugger's statistics, matched to the graph's layers in
    execution order (the debugger verifies every quantized op's output, in order)."""
    debugger.run()
    text = io.StringIO()
    debugger.layer_statistics_dump(text)
    rows = list(csv.DictReader(io.StringIO(text.getvalue())))
    if [r["op_name"] for r in rows] != [graph.ops[name] for name in graph.layers]:
        raise ConversionError("the quantization debugger's layers do not match the int8 model's")
    return [LayerError(name, r["op_name"], round(float(np.sqrt(float(r["mean_squared_error"])) / float(r["scale"])), 4),
                       r["tensor_name"]) for name, r in zip(graph.layers, rows)]


def precisions_in(model: bytes, graph: Graph) -> dict[str, str]:
    """Layer -> the type of its output in ``model`` (int8 or float32), read from the flatbuffer."""
    from edgetailor.profiling import op_slices

    nodes = [n for n in op_slices.nodes(op_slices.read_model(model)) if n.op not in op_slices.BOUNDARY_OPS]
    if [n.op for n in nodes] != [graph.ops[name] for name in graph.layers]:
        raise ConversionError("the mixed model's layers do not match the int8 model's")
    return {name: n.output_type for name, n in zip(graph.layers, nodes)}


def _export(debugger, errors: list[LayerError], floats) -> bytes:
    import tensorflow as tf

    names = [e.denylist_name for e in errors if e.name in floats]
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=names)
    return debugger.get_nondebug_quantized_model()


def search(subject: quantize.Subject, request: MixRequest, price: Callable[[bytes, bytes], Costs],
           progress: Callable[[str], None]) -> MixResult:
    """Greedy mixed-precision search (module docstring); ``price(float_model, int8_model)`` gives
    the layer and boundary costs on the device."""
    from edgetailor.converters.base import native_output_captured
    from edgetailor.converters.inputs import normalization_of

    calibration = quantize.calibration_images(subject.train_images)
    with native_output_captured():
        progress(f"converting float32 and full int8 (calibrated on {len(calibration)} training images)")
        float_fb = subject.convert(subject.model, None)
        int8_fb = subject.convert(subject.model, calibration)
        debugger = _debugger(subject.model, calibration, normalization_of(subject.model))
        start = debugger.get_nondebug_quantized_model()
    graph = graph_of(start)
    errors = layer_errors(debugger, graph)
    accuracy = {"float32": round(subject.score(float_fb), 2), "int8": round(subject.score(int8_fb), 2),
                "int8_float_io": round(subject.score(start), 2)}
    progress(f"{subject.metric} on {subject.measured_on}: float32 {accuracy['float32']:g}, int8 "
             f"{accuracy['int8']:g}; pricing {len(graph.layers)} layers")
    costs = price(float_fb, start)
    everything = frozenset(graph.layers)
    predicted = {"float32": costs.predict(graph, everything), "int8": costs.predict(graph, frozenset())}
    if predicted["int8"] > request.budget_ms:
        raise SearchError(f"even full int8 is predicted at {predicted['int8']:.2f} ms, over the "
                          f"{request.budget_ms:g} ms budget: no layer can stay float")
    current, best, best_model = frozenset(), accuracy["int8_float_io"], start
    trials, misses, exported = [], 0, 0
    for error in sorted(errors, key=lambda e: -e.rmse_over_scale):
        if exported >= request.max_trials or misses >= request.patience or best >= accuracy["float32"]:
            break
        candidate = current | {error.name}
        ms = costs.predict(graph, candidate)
        if ms > request.budget_ms:
            trials.append(Trial(tuple(sorted(candidate)), ms, None, False, "over budget"))
            continue
        with native_output_captured():
            model = _export(debugger, errors, candidate)
        exported += 1
        if precisions_in(model, graph)[error.name] != "float32":
            trials.append(Trial(tuple(sorted(candidate)), ms, None, False, "the converter kept it int8"))
            continue
        score = round(subject.score(model), 2)
        kept = score > best
        trials.append(Trial(tuple(sorted(candidate)), ms, score, kept,
                            "raises accuracy" if kept else "does not raise accuracy"))
        progress(f"{error.op} {error.name[:48]} (rmse/scale {error.rmse_over_scale:g}) float: "
                 f"{subject.metric} {score:g}, predicted {ms:.3f} ms{'  kept' if kept else ''}")
        if kept:
            current, best, best_model, misses = candidate, score, model, 0
        else:
            misses += 1
    precisions = precisions_in(best_model, graph)
    floats = tuple(name for name in graph.layers if precisions[name] == "float32")
    accuracy["mixed"] = best
    predicted["mixed"] = costs.predict(graph, frozenset(floats))
    return MixResult(best_model, precisions, errors, floats, accuracy,
                     {k: round(v, 4) for k, v in predicted.items()}, costs, trials,
                     {"float32": float_fb, "int8": int8_fb, "mixed": best_model})


def report(result: MixResult, request: MixRequest, measured: dict[str, Any], noise_pct: float | None,
           subject: quantize.Subject) -> dict:
    """The manifest's ``mixed_precision`` section."""
    by_name = {e.name: e for e in result.errors}
    layers = [{"layer": name, "op": by_name[name].op, "precision": result.precisions[name],
               "rmse_over_scale": by_name[name].rmse_over_scale,
               "float_ms": round(result.costs.float_ms[name], 5), "int8_ms": round(result.costs.int8_ms[name], 5)}
              for name in by_name]
    return {
        "method": "greedy from full int8: largest debugger rmse/scale first, kept when held-out accuracy rises",
        "precisions": ["int8", "float32"],
        "float16": "not per layer: TF 2.15 writes float16 weights for a whole model only",
        "metric": subject.metric, "measured_on": subject.measured_on,
        "selection_note": "candidates were chosen on the same held-out split the mixed figure is measured on",
        "accuracy": result.accuracy, "budget_ms": request.budget_ms,
        "latency": {"predicted_ms": result.predicted_ms, "priced_by": result.costs.source,
                    "note": result.costs.note or None, "host_measured": measured,
                    "host_noise_pct": noise_pct},
        "float_layers": [{"layer": name, "op": by_name[name].op,
                          "rmse_over_scale": by_name[name].rmse_over_scale,
                          "why": f"largest quantization error left ({by_name[name].rmse_over_scale:g} int8 steps "
                                 "RMS) and held-out accuracy rose when it stayed float"}
                         for name in result.floats],
        "layers": layers,
        "trials": [{"floats": list(t.floats), "predicted_ms": round(t.predicted_ms, 4), "accuracy": t.accuracy,
                    "kept": t.kept, "note": t.note} for t in result.trials],
        "warning": DELEGATE_WARNING,
    }
