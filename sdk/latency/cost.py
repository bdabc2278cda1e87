"""Latency from the layer walk: typed layer keys, op features and a fitted linear model.

A block's latency is either looked up in a device profile's table (key: block string and input
shape, e.g. ``ir_k5_s2_e3_c40_re6@112x112x24``) or predicted as ``features . coefficients``,
where the features are per-op-type work counts (MACs by conv type and kernel, tensor elements
moved, costly activations, op count) summed over the block's ops. Coefficients are fitted by
non-negative least squares on relative error, so they read as ms per unit of work. Pure numpy.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from edgetailor.arch.layers import LayerCost, Op, walk
from edgetailor.arch.spec import ArchSpec
from edgetailor.errors import ProfileError

# Units: MACs and elements in millions; "count" in ops; "model" is 1 per whole network.
FEATURES = (
    "conv_mmacs",        # k x k convolutions (k > 1), grouped or not
    "pw_mmacs",          # 1 x 1 convolutions on feature maps
    "pw_melems",         # their input + output elements (memory traffic)
    "dw3_mmacs",         # depthwise 3 x 3
    "dw5_mmacs",         # depthwise 5 x 5
    "dw7_mmacs",         # depthwise 7 x 7 and larger
    "dw_melems",         # depthwise input + output elements
    "fc_mmacs",          # 1 x 1 convs on pooled vectors: SE, head fc, classifier
    "eltwise_melems",    # add, mul, concat, split, shuffle, pooling: elements touched
    "act_melems",        # feature-map elements through hard-swish, swish, (hard-)sigmoid
    "op_count",          # per-op dispatch overhead
    "model",             # per-inference overhead
)
N_FEATURES = len(FEATURES)
_INDEX = {name: i for i, name in enumerate(FEATURES)}
_COSTLY_ACTS = {"hswish", "swish", "sigmoid", "hsigmoid", "gelu"}
# Attention's ops, priced with coefficients every profile already has (no profile was measured on
# them): a matmul is a GEMM like a 1x1 convolution (XNNPACK and Core ML run both as one), so its
# MACs are pw_mmacs and the elements it reads and writes pw_melems; layer norm, softmax and L2
# normalisation each evaluate a transcendental (rsqrt, exp) per element and reduce over a row, so
# their output elements are act_melems (the sigmoid/swish per-element price) plus eltwise_melems
# for the input they read; GELU (erf) is a costly activation like swish.
_NORMALISING_OPS = {"layernorm", "softmax", "l2norm"}


def _elems(shape) -> float:
    return shape[0] * shape[1] * shape[2] / 1e6


def op_feature_parts(op: Op) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features per output pixel, per input pixel, and constant, so that
    ``op_features(op) == out * H_out * W_out + in * H_in * W_in + const``. A pooled (1 x 1)
    side counts as constant; vectorised resolution sweeps scale the other two."""
    per_out, per_in, const = (np.zeros(N_FEATURES) for _ in range(3))
    out_area = op.out_shape[0] * op.out_shape[1]
    in_area = op.in_shape[0] * op.in_shape[1]
    out_c, in_c = op.out_shape[2] / 1e6, op.in_shape[2] / 1e6
    out_part = const if out_area == 1 else per_out
    in_part = const if in_area == 1 else per_in
    if op.kind == "conv":
        if op.in_shape[:2] == (1, 1):
            const[_INDEX["fc_mmacs"]] = op.macs / 1e6
        elif op.kernel == 1:
            out_part[_INDEX["pw_mmacs"]] = op.macs / 1e6 / out_area
            out_part[_INDEX["pw_melems"]] += out_c
            in_part[_INDEX["pw_melems"]] += in_c
        else:
            out_part[_INDEX["conv_mmacs"]] = op.macs / 1e6 / out_area
    elif op.kind == "matmul":
        out_part[_INDEX["pw_mmacs"]] = op.macs / 1e6 / out_area
        out_part[_INDEX["pw_melems"]] += out_c
        in_part[_INDEX["pw_melems"]] += in_c
    elif op.kind in _NORMALISING_OPS:
        out_part[_INDEX["act_melems"]] = out_c
        in_part[_INDEX["eltwise_melems"]] = in_c
    elif op.kind == "dwconv":
        kernel = "dw3_mmacs" if op.kernel <= 3 else "dw5_mmacs" if op.kernel == 5 else "dw7_mmacs"
        out_part[_INDEX[kernel]] = op.macs / 1e6 / out_area
        out_part[_INDEX["dw_melems"]] += out_c
        in_part[_INDEX["dw_melems"]] += in_c
    else:
        in_part[_INDEX["eltwise_melems"]] = in_c
    if op.act in _COSTLY_ACTS and out_area != 1:  # on feature maps, not SE gates
        per_out[_INDEX["act_melems"]] = out_c
    const[_INDEX["op_count"]] = 1
    return per_out, per_in, const


def op_features(op: Op) -> np.ndarray:
    """The feature vector of one op."""
    per_out, per_in, const = op_feature_parts(op)
    out_area = op.out_shape[0] * op.out_shape[1]
    in_area = op.in_shape[0] * op.in_shape[1]
    return per_out * (out_area if out_area != 1 else 0) + per_in * (in_area if in_area != 1 else 0) + const


def layer_features(layer: LayerCost) -> np.ndarray:
    if not layer.ops:
        return np.zeros(N_FEATURES)
    return np.sum([op_features(op) for op in layer.ops], axis=0)


def model_features(layers: list[LayerCost]) -> np.ndarray:
    """Features of a whole network: its layers plus the per-inference constant."""
    f = np.sum([layer_features(layer) for layer in layers], axis=0)
    f[_INDEX["model"]] = 1
    return f


def layer_key(layer: LayerCost) -> str:
    """Typed lookup key: the block string at its input shape.

    ``noskip`` is dropped where no shortcut could exist anyway (stride 2 or a width change),
    so the same computation always has the same key. A NASNet cell's key adds its second input
    (``+HxWxC``), which decides how that input is fitted.
    """
    h, w, c = layer.in_shape
    block = layer.block
    if not block.residual and (block.stride != 1 or c != block.channels):
        block = dataclasses.replace(block, residual=True)
    prev = "+{}x{}x{}".format(*layer.prev_shape) if layer.prev_shape else ""
    return f"{block.encode()}@{h}x{w}x{c}{prev}"


@dataclass(frozen=True)
class LayerLatency:
    name: str
    key: str
    latency_ms: float
    source: str  # "table" or "model"


@dataclass(frozen=True)
class Breakdown:
    """A prediction: total, its expected relative error, and where each layer's time came from."""

    total_ms: float
    expected_error_pct: float | None
    overhead_ms: float
    layers: tuple[LayerLatency, ...]

    @property
    def table_share(self) -> float:
        """Fraction of the total that came from measured table entries."""
        measured = sum(l.latency_ms for l in self.layers if l.source == "table")
        return measured / self.total_ms if self.total_ms else 0.0


def op_key(op: Op) -> str:
    """Typed lookup key of one op (host profiles measure ops one by one)."""
    (h, w, c), (oh, ow, oc) = op.in_shape, op.out_shape
    return f"{op.kind}_k{op.kernel}_s{op.stride}_g{op.groups}_{op.act}@{h}x{w}x{c}->{oh}x{ow}x{oc}"


_OP_KEY = re.compile(r"^(\w+?)_k(\d+)_s(\d+)_g(\d+)_(\w+)@(\d+)x(\d+)x(\d+)->(\d+)x(\d+)x(\d+)$")


def op_from_key(key: str) -> Op:
    """Rebuild an op (shapes, MACs) from its key, for measurements that name only the key."""
    match = _OP_KEY.match(key)
    if not match:
        raise ProfileError(f"not an op key: {key!r}")
    kind, k, s, g, act, *dims = match.groups()
    k, s, g = int(k), int(s), int(g)
    h, w, c, oh, ow, oc = map(int, dims)
    macs = 0
    if kind == "conv":
        macs = oh * ow * k * k * (c // g) * oc
    elif kind == "dwconv":
        macs = oh * ow * k * k * oc
    elif kind == "matmul":  # kernel = the reduction length
        macs = oh * ow * oc * k
    return Op(kind, (h, w, c), (oh, ow, oc), k, s, g, act=act, macs=macs)


def layer_latency(layer: LayerCost, coefficients: np.ndarray, table: dict[str, float]) -> tuple[float, str]:
    """One layer's latency in ms and where it came from: a block entry of the table, the
    layer's ops all found in the table ("table"), or the fitted model for any op not found."""
    key = layer_key(layer)
    if key in table:
        return float(table[key]), "table"
    total, source = 0.0, "table" if layer.ops else "model"
    for op in layer.ops:
        entry = table.get(op_key(op))
        if entry is None:
            total += float(op_features(op) @ coefficients)
            source = "model"
        else:
            total += entry
    return total, source


def predict_layers(layers: list[LayerCost], coefficients: np.ndarray,
                   table: dict[str, float] | None = None,
                   expected_error_pct: float | None = None) -> Breakdown:
    """Latency of a layer list: table entries where present, the fitted model elsewhere."""
    table = table or {}
    out = []
    for layer in layers:
        ms, source = layer_latency(layer, coefficients, table)
        out.append(LayerLatency(layer.name, layer_key(layer), ms, source))
    overhead = float(coefficients[_INDEX["model"]])
    total = overhead + sum(l.latency_ms for l in out)
    return Breakdown(total, expected_error_pct, overhead, tuple(out))


def predict_spec(spec: ArchSpec, coefficients: np.ndarray, table: dict[str, float] | None = None,
                 expected_error_pct: float | None = None, num_classes: int = 1000) -> Breakdown:
    return predict_layers(walk(spec, num_classes), coefficients, table, expected_error_pct)


def fit(features: np.ndarray, latency_ms: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Non-negative least squares on relative error: minimise sum(w * ((X c - y) / y)^2)."""
    from scipy.optimize import nnls

    x = np.asarray(features, dtype=float)
    y = np.asarray(latency_ms, dtype=float)
    if len(y) == 0 or np.any(y <= 0):
        raise ValueError("calibration needs positive latencies")
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    scale = np.sqrt(w) / y
    coefficients, _ = nnls(x * scale[:, None], y * scale, maxiter=50 * x.shape[1])
    return coefficients
