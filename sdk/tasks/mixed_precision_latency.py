"""The latency of a mixed-precision model: each layer at its precision plus each boundary.

A model is priced as the per-inference constant, plus every layer at the precision it runs in
(float32 or int8), plus one ``DEQUANTIZE`` for each int8 tensor that a float layer reads and one
``QUANTIZE`` for each float tensor an int8 layer reads (the model's float input and output count
as float: the full int8 model's own input QUANTIZE and output DEQUANTIZE are boundaries too). This
is the graph the converter writes for a ``denylisted_nodes`` list (checked against its files).

Costs come from the host (every layer cut out of the converted models and timed, ``--device host``)
or from a phone's float32 and int8 profiles (the op model of each: the TFLite op mapped onto the
layer walk's ``Op``); a boundary on a phone is priced as elementwise work in its float profile
(no phone profile measures QUANTIZE / DEQUANTIZE; an assumption, stated in the manifest).
"""
from __future__ import annotations

from dataclasses import dataclass

from edgetailor.errors import ProfileError
from edgetailor.latency import profiles
from edgetailor.latency.cost import FEATURES, op_features


@dataclass(frozen=True)
class Edge:
    """One activation tensor: its shape, the layer that writes it (None: the model's float input)
    and the layers that read it (None: the model's float output)."""

    shape: tuple[int, ...]
    producer: str | None
    consumers: tuple[str | None, ...]


@dataclass(frozen=True)
class Graph:
    layers: tuple[str, ...]      # the int8 model's layers (output tensor names), in order
    ops: dict                    # layer -> TFLite op name
    edges: tuple[Edge, ...]


def graph_of(int8_model: bytes) -> Graph:
    """The layers and tensors of a full-int8 model (its input QUANTIZE / output DEQUANTIZE removed)."""
    from edgetailor.profiling import op_slices

    model = op_slices.read_model(int8_model)
    nodes = op_slices.nodes(model)
    boundary_out = {t for n in nodes if n.op == "QUANTIZE" for t in n.outputs}
    producer = {t: n.output_name for n in nodes if n.op not in op_slices.BOUNDARY_OPS for t in n.outputs}
    readers: dict[int, list] = {}
    for n in nodes:
        for t in n.inputs:
            readers.setdefault(t, []).append(None if n.op == "DEQUANTIZE" else n.output_name)
    for t in model.subgraphs[0].outputs:
        readers.setdefault(int(t), []).append(None)
    layers = [n for n in nodes if n.op not in op_slices.BOUNDARY_OPS]
    edges = []
    for t, who in sorted(readers.items()):
        if t in producer or t in boundary_out:
            edges.append(Edge(op_slices.tensor_shape(model, t), producer.get(t), tuple(dict.fromkeys(who))))
    return Graph(tuple(n.output_name for n in layers), {n.output_name: n.op for n in layers}, tuple(edges))


def boundaries(graph: Graph, floats: frozenset) -> list[tuple[str, tuple[int, ...]]]:
    """The (QUANTIZE | DEQUANTIZE, shape) ops a model with ``floats`` layers in float32 contains."""
    def is_float(layer):
        return layer is None or layer in floats

    out = []
    for edge in graph.edges:
        if not is_float(edge.producer) and any(is_float(c) for c in edge.consumers):
            out.append(("DEQUANTIZE", edge.shape))
        if is_float(edge.producer) and any(not is_float(c) for c in edge.consumers):
            out.append(("QUANTIZE", edge.shape))
    return out


@dataclass
class Costs:
    """What each layer costs (ms) in float32 and int8, a boundary's cost, and the constant."""

    source: str                  # "host, measured" or the phone profiles' names
    float_ms: dict
    int8_ms: dict
    boundary_ms: dict            # (kind, shape) -> ms
    overhead_ms: float
    note: str = ""

    def predict(self, graph: Graph, floats: frozenset) -> float:
        layers = sum(self.float_ms[name] if name in floats else self.int8_ms[name] for name in graph.layers)
        return self.overhead_ms + layers + sum(self.boundary_ms[b] for b in boundaries(graph, floats))


def all_boundaries(graph: Graph) -> list[tuple[str, tuple[int, ...]]]:
    """Every boundary any choice of float layers can need: both kinds at every tensor's shape."""
    return list(dict.fromkeys((kind, e.shape) for e in graph.edges for kind in ("QUANTIZE", "DEQUANTIZE")))


def int8_partner(profile: profiles.DeviceProfile) -> profiles.DeviceProfile:
    """The shipped TFLite int8 profile of the same phone and setting as the float32 ``profile``."""
    wanted = profile.name.replace("-fp32-", "-int8-")
    for candidate in profiles.shipped():
        if candidate.name == wanted and candidate.name != profile.name and candidate.runtime == profile.runtime:
            return candidate
    pairs = [p.aliases[0] for p in profiles.shipped() if "-fp32-" in p.name and p.runtime == "tflite"
             and any(q.name == p.name.replace("-fp32-", "-int8-") for q in profiles.shipped())]
    raise ProfileError(f"--device {profile.aliases[0] if profile.aliases else profile.name}: no int8 profile "
                       f"of the same phone and setting to price int8 layers; use host or one of "
                       f"{', '.join(pairs)}")


def phone_costs(int8_model: bytes, profile: profiles.DeviceProfile) -> Costs:
    """Each layer priced by the phone's float32 and int8 op models (features . coefficients)."""
    from edgetailor.arch.layers import Op
    from edgetailor.profiling import op_slices

    int8 = int8_partner(profile)
    model = op_slices.read_model(int8_model)
    float_ms, int8_ms = {}, {}
    for node in op_slices.nodes(model):
        if node.op in op_slices.BOUNDARY_OPS:
            continue
        features = op_features(op_slices.arch_op(model, node))
        float_ms[node.output_name] = float(features @ profile.coefficients)
        int8_ms[node.output_name] = float(features @ int8.coefficients)
    graph = graph_of(int8_model)
    boundary_ms = {}
    for kind, shape in all_boundaries(graph):
        hwc = tuple(([1, 1, 1] + list(shape[1:]))[-3:])
        boundary_ms[(kind, shape)] = float(op_features(Op("add", hwc, hwc)) @ profile.coefficients)
    overhead = float(int8.coefficients[FEATURES.index("model")])
    return Costs(f"{profile.name} (float32) and {int8.name} (int8) op models", float_ms, int8_ms, boundary_ms,
                 overhead, note="boundaries priced as elementwise work in the float32 profile (no phone "
                                "profile measures QUANTIZE/DEQUANTIZE)")


def host_costs(float_model: bytes, int8_model: bytes, progress=None, rounds: int = 3) -> tuple[Costs, float]:
    """Every layer and boundary timed here (``profiling.precision_timing``); and the noise (%)."""
    from edgetailor.profiling.precision_timing import measure_host

    graph = graph_of(int8_model)
    measured = measure_host(float_model, int8_model, all_boundaries(graph), rounds=rounds, progress=progress)
    return Costs("host, measured (one-op models cut from the converted models, TFLite interpreter, XNNPACK, "
                 f"1 thread, median of {rounds} rounds)", measured.float_ms, measured.int8_ms,
                 measured.boundary_ms, measured.overhead_ms), measured.noise_pct
