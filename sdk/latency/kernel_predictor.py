"""Kernel-level latency (nn-Meter's method): a network's ops grouped into the kernels the runtime
executes, one fitted tree ensemble per kernel type, model latency = sum of kernels (as they cost
inside a network: ``NETWORK_TERMS``) + a constant.

Kernel detection follows what TFLite + XNNPACK run as one unit. The rules, each settled with
nn-Meter's fusion test (ops 1 and 2 are one kernel when T1 + T2 - T12 > 0.5 * min(T1, T2), T12
timed as one model; numbers from ``benchmarks/kernel_fusion.py``, written beside ``_SPLIT_ACTS``):
a convolution's bias (folded batch norm) and relu/relu6 are one kernel with it (the converter
writes them into the CONV_2D op); an explicit PAD before a strided depthwise convolution (the
builder's "same" made explicit) is one kernel with it; squeeze-excite (mean, two 1x1 convs, the
gate, the multiply) is one kernel, as nn-Meter detects it; hard-swish, swish, sigmoid and GELU
after a convolution are kernels of their own.

Features are nn-Meter's [HW, Cin, Cout, k, s, FLOPs, params] plus the input and output tensor
sizes (``KERNEL_FEATURES``). Each type's latency is a linear baseline (non-negative ms per MFLOP,
per million elements read and written, and a constant) times ``exp`` of its trees: the trees
model the baseline's relative error. On the same 480 held-out kernels (timed under load) this
beat trees on log(ms) alone (random forest, error weighted by time: depthwise 32 % vs 58 %, 1x1
conv 13 % vs 21 %, squeeze-excite 22 % vs 28 %). Trees are fitted by scikit-learn at profile-building time
(``edgetailor.profiling.kernels_fit``) and stored as plain arrays in an npz (never a pickle);
prediction here is numpy only. A kernel type the
predictor was not built with is a ``ProfileError`` naming it, never a zero.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetailor.arch.layers import LayerCost, Op
from edgetailor.errors import ProfileError
from edgetailor.latency.cost import Breakdown, LayerLatency, layer_key, layer_latency

SCHEMA = "edgetailor.kernel-predictor/1"
KERNEL_FEATURES = (
    "hw",       # input side in pixels, sqrt(H x W)
    "cin",      # input channels
    "cout",     # output channels
    "k",        # kernel size (1 for element-wise kernels)
    "s",        # stride
    "mflops",   # 2 x MACs in millions; element-wise kernels: output elements in millions
    "kparams",  # parameters in thousands
    "in_melems",   # input tensor elements in millions
    "out_melems",  # output tensor elements in millions
)
BASIS = ("mflops", "in_melems", "out_melems")  # the baseline's terms, plus a constant
# Inside a network a kernel does not cost what it costs alone: its weights no longer stay in the
# caches between runs, and the kernels around it evict what it reads. Per kernel, in a network:
# its group's factor x its time alone, plus a second factor x its time alone x log(1 + the
# network's weight MB) (the more weights a network has, the less of them the caches keep between
# invocations; on the 58 networks and 43 held-out models of the 2026-11-30 idle profile this took
# the held-out models from 79 % to 84 % within +-10 %, mean 6.6 -> 5.8 %), + ms per MB of weights + ms per MB of
# tensors read and written + a constant; fitted (non-negative least squares) on whole networks
# timed in the same run (``edgetailor.profiling.kernels_fit.fit_network``).
NETWORK_GROUPS = {"conv": "conv", "pwconv": "conv", "fc": "conv", "gconv": "conv", "dwconv": "dwconv",
                  "se": "se", "pool": "pool", "avgpool": "pool", "maxpool": "pool", "gelu": "gelu",
                  "layernorm": "attention", "matmul": "attention", "softmax": "attention",
                  "l2norm": "attention"}  # every other type: "elementwise"
# GELU apart: exact GELU's time depends on its input values (tflite_ops._Graph.weights), which
# differ between families; apart, the 43 held-out models of benchmarks/host_latency.py went from
# 70 % to 84 % within +-10 % (leave-one-network-out 9.1 -> 8.9 %; 2026-11-30, idle4)
GROUPS = ("conv", "dwconv", "se", "pool", "attention", "gelu", "elementwise")
NETWORK_TERMS = (*GROUPS, *(f"{group}_x_log_weights" for group in GROUPS), "weight_mb", "tensor_mb", "kernel")
# The weight-size term stops growing at 32 MB (this host's L3): the networks it is fitted on (<= 60 ms) hold
# up to about that, and uncapped it put G-Ghost RegNetX-16GF 1.25 (~300 MB) 16 % over (capped: 6 %).
WEIGHTS_CAP_MB = 32.0
IDENTITY_NETWORK = np.array([1.0] * len(GROUPS) + [0.0] * (len(NETWORK_TERMS) - len(GROUPS)))  # the plain sum
# The fusion test behind the rules (benchmarks/kernel_fusion.py, AMD EPYC host, TFLite 2.15.1,
# XNNPACK, 1 thread, load average 3.4-4.4 on 2 cores; best-of ms, T1 + T2 -> T12): conv 1x1
# 56x56x24->144 + relu 0.2754 + 0.0497 -> 0.2832 (saved 0.042 > 0.025: one kernel); dw 3x3 + relu6
# 0.2195 + 0.0502 -> 0.2157 (one); PAD + VALID dw 5x5 s2 0.0858 + 0.2017 -> 0.2040 (saved 0.084 >
# 0.043: one); SE's mean, two 1x1, gate, mul 0.0096 + 0.0013 + 0.0013 + 0.0146 -> 0.0241 (saved
# 0.0027 > 0.0007: one); conv + hard-swish 0.2817 + 0.0507 -> 0.3309 (saved 0.0015 < 0.025: two);
# dw + swish 0.2182 + 0.2501 -> 0.4817 (nothing saved: two).
_SPLIT_ACTS = {"hswish", "swish", "sigmoid", "hsigmoid", "gelu"}  # not fused into a convolution


@dataclass(frozen=True)
class Kernel:
    """One kernel: its type, the op that carries its shapes, and (``se``) the block's inner width
    or (pad + dwconv) whether an explicit PAD runs first."""

    type: str
    op: Op
    padded: bool = False
    se_channels: int = 0

    @property
    def key(self) -> str:
        (h, w, c), (oh, ow, oc) = self.op.in_shape, self.op.out_shape
        extra = "_pad" if self.padded else f"_se{self.se_channels}" if self.se_channels else ""
        return (f"{self.type}{extra}_k{self.op.kernel}_s{self.op.stride}_g{self.op.groups}_{self.op.act}"
                f"@{h}x{w}x{c}->{oh}x{ow}x{oc}")

    def features(self) -> np.ndarray:
        op = self.op
        h, w, c = op.in_shape
        oh, ow, oc = op.out_shape
        cout = self.se_channels or oc
        work = 2 * op.macs / 1e6 if op.macs else oh * ow * oc / 1e6
        return np.array([math.sqrt(h * w), c, cout, op.kernel, op.stride, work, op.params / 1e3,
                         h * w * c / 1e6, oh * ow * oc / 1e6])


def network_terms(kernels: list["Kernel"], alone_ms: np.ndarray) -> np.ndarray:
    """Per kernel of a network (``kernels``: all of them), its ``NETWORK_TERMS`` row: its time
    alone in its group's column and, times log(1 + the network's weight MB, at most
    ``WEIGHTS_CAP_MB``), in its group's second column; its weight and tensor megabytes (float32), and 1."""
    rows = np.zeros((len(kernels), len(NETWORK_TERMS)))
    log_weights = math.log1p(min(sum(kernel.op.params for kernel in kernels) * 4e-6, WEIGHTS_CAP_MB))
    for row, kernel, ms in zip(rows, kernels, alone_ms):
        op, group = kernel.op, GROUPS.index(NETWORK_GROUPS.get(kernel.type, "elementwise"))
        row[[group, len(GROUPS) + group]] = ms, ms * log_weights
        row[2 * len(GROUPS):] = (op.params * 4e-6, (math.prod(op.in_shape) + math.prod(op.out_shape)) * 4e-6, 1.0)
    return rows


def _conv_type(op: Op) -> str:
    if op.in_shape[:2] == (1, 1):
        return "fc"
    if op.groups > 1:
        return "gconv"
    return "conv" if op.kernel > 1 else "pwconv"


def layer_kernels(layer: LayerCost) -> list[Kernel]:
    """The kernels of one layer, in execution order. A strided k x k depthwise convolution runs
    after an explicit PAD (the builder makes "same" explicit there, and ``padding="symmetric"``
    pads it too); the PAD a symmetric spec puts before a strided full convolution fuses into it
    (the fusion test) and is priced as that convolution's "same" padding."""
    ops, out, i = layer.ops, [], 0
    while i < len(ops):
        op = ops[i]
        if op.kind == "pool" and i + 3 < len(ops) and ops[i + 1].kind == "conv" \
                and ops[i + 1].in_shape[:2] == (1, 1) and ops[i + 3].kind == "mul":
            reduce, expand = ops[i + 1], ops[i + 2]
            se = dataclasses.replace(op, out_shape=op.in_shape, act=expand.act,
                                     macs=reduce.macs + expand.macs, params=reduce.params + expand.params)
            out.append(Kernel("se", se, se_channels=reduce.out_shape[2]))
            i += 4
            continue
        if op.kind in ("conv", "dwconv"):
            split_act = op.act in _SPLIT_ACTS and op.out_shape[:2] != (1, 1)
            main = dataclasses.replace(op, act="linear") if split_act else op
            kind = "dwconv" if op.kind == "dwconv" else _conv_type(op)
            padded = op.kind == "dwconv" and op.stride > 1 and op.kernel > 1
            out.append(Kernel(kind, main, padded=padded))
            if split_act:
                out.append(Kernel(op.act, Op("act", op.out_shape, op.out_shape, act=op.act)))
        elif op.kind == "act":
            out.append(Kernel(op.act, op))
        else:
            out.append(Kernel(op.kind, op))
        i += 1
    return out


def detect_kernels(layers: list[LayerCost]) -> list[Kernel]:
    """Every kernel of a layer list, in order."""
    return [kernel for layer in layers for kernel in layer_kernels(layer)]


BASELINE_FLOOR_MS = 1e-4  # a baseline is never below 0.1 us (a fitted constant can be zero)


def basis(x: np.ndarray) -> np.ndarray:
    """The baseline's terms of feature rows ``x``: ``BASIS`` columns and a constant 1."""
    x = np.atleast_2d(x)
    return np.column_stack([x[:, [KERNEL_FEATURES.index(name) for name in BASIS]], np.ones(len(x))])


def baseline_ms(coefficients: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.maximum(basis(x) @ coefficients, BASELINE_FLOOR_MS)


@dataclass(frozen=True)
class TreeEnsemble:
    """Regression trees as flat arrays (all trees' nodes concatenated; a leaf has ``left == -1``):
    prediction = ``(offset + sum over trees of scale x leaf value) / divisor``, summed tree by tree
    as scikit-learn does (so the floats agree exactly). A random forest is (0, 1, trees); gradient
    boosting is (initial constant, learning rate, 1)."""

    feature: np.ndarray    # int32, split feature per node
    threshold: np.ndarray  # float64, go left when x <= threshold
    left: np.ndarray       # int32, global node index of the left child, -1 at leaves
    right: np.ndarray      # int32
    value: np.ndarray      # float64, leaf value
    roots: np.ndarray      # int32, first node of each tree
    offset: float
    scale: float
    divisor: float

    @functools.cached_property
    def _walk(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Children with leaves pointing to themselves (threshold +inf), and the deepest depth."""
        leaf = self.left < 0
        index = np.arange(len(self.left), dtype=np.int32)
        depth, level = 0, self.roots[~leaf[self.roots]]
        while len(level):
            level = np.concatenate([self.left[level], self.right[level]])
            level, depth = level[~leaf[level]], depth + 1
        return (np.where(leaf, index, self.left), np.where(leaf, index, self.right),
                np.where(leaf, np.inf, self.threshold), depth)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for rows ``x`` (n x features). Features are compared as float32, as
        scikit-learn's trees do, so the result is exactly scikit-learn's."""
        x = np.asarray(x, dtype=np.float32).astype(np.float64)
        left, right, threshold, depth = self._walk
        flat, offsets = x.ravel(), (np.arange(len(x)) * x.shape[1])[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots)))
        for _ in range(depth):  # every tree one level down at once; a leaf steps onto itself
            node = np.where(flat[offsets + self.feature[node]] <= threshold[node], left[node], right[node])
        terms = np.column_stack([np.full(len(x), self.offset), self.scale * self.value[node]])
        return np.cumsum(terms, axis=1)[:, -1] / self.divisor  # summed left to right, as scikit-learn does


@dataclass(frozen=True)
class KernelPredictor:
    """Per kernel type a baseline (coefficients on ``basis``) and a tree ensemble predicting
    log(ms / baseline); plus the per-inference constant."""

    ensembles: dict[str, TreeEnsemble]
    baselines: dict[str, np.ndarray]
    overhead_ms: float
    meta: dict
    network: np.ndarray = dataclasses.field(default_factory=IDENTITY_NETWORK.copy)  # on NETWORK_TERMS
    # An int8 model's input conversion (the QUANTIZE of uint8 pixels to int8 the converter puts
    # first; TFLite's own kernel, ~2.5 ns per element on this host, 12 % of FBNet-A 0.35 @ 192), in
    # ms per million input elements; 0 for float models, which have none.
    input_ms_per_melement: float = 0.0

    def type_ms(self, kind: str, x: np.ndarray) -> np.ndarray:
        """ms of kernels of one type from their feature rows ``x``."""
        return baseline_ms(self.baselines[kind], x) * np.exp(self.ensembles[kind].predict(x))

    def kernel_ms(self, kernels: list[Kernel]) -> np.ndarray:
        """Latency of each kernel in ms; a type this predictor lacks is a ``ProfileError``."""
        out = np.zeros(len(kernels))
        by_type: dict[str, list[int]] = {}
        for index, kernel in enumerate(kernels):
            by_type.setdefault(kernel.type, []).append(index)
        missing = sorted(set(by_type) - set(self.ensembles))
        if missing:
            raise ProfileError(f"the kernel predictor has no model for kernel type(s) {', '.join(missing)} "
                               f"(it knows {', '.join(sorted(self.ensembles))}); measure them with "
                               "`edgetailor profile measure --kernels`")
        for kind, indices in by_type.items():
            x = np.array([kernels[i].features() for i in indices])
            out[indices] = self.type_ms(kind, x)
        return out

    def in_network_ms(self, kernels: list[Kernel]) -> np.ndarray:
        """What each kernel costs inside a network, in ms (``NETWORK_TERMS``)."""
        return network_terms(kernels, self.kernel_ms(kernels)) @ self.network

    def predict_ms(self, layers: list[LayerCost]) -> float:
        """Whole-model latency in ms: its kernels as they cost inside a network, plus the
        per-inference constant and the input's conversion."""
        return self.overhead_ms + self.input_ms(layers) + float(self.in_network_ms(detect_kernels(layers)).sum())

    def input_ms(self, layers: list[LayerCost]) -> float:
        """The input conversion's ms (``input_ms_per_melement``)."""
        return self.input_ms_per_melement * math.prod(layers[0].in_shape) / 1e6 if layers else 0.0

    def to_npz_bytes(self) -> bytes:
        arrays = {"meta": np.array(json.dumps({**self.meta, "schema": SCHEMA, "overhead_ms": self.overhead_ms,
                                               "features": list(KERNEL_FEATURES),
                                               "network": dict(zip(NETWORK_TERMS, self.network.tolist())),
                                               "input_ms_per_melement": self.input_ms_per_melement,
                                               "ensembles": {k: {"offset": e.offset, "scale": e.scale,
                                                                 "divisor": e.divisor,
                                                                 "baseline": self.baselines[k].tolist()}
                                                             for k, e in self.ensembles.items()}}))}
        for kind, e in self.ensembles.items():
            for field in ("feature", "threshold", "left", "right", "value", "roots"):
                arrays[f"{kind}/{field}"] = getattr(e, field)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()


def load(path: str | Path) -> KernelPredictor:
    """A kernel predictor from its npz (read without pickle); a bad file is a ``ProfileError``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except FileNotFoundError:
        raise ProfileError(f"kernel predictor file not found: {path}") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:  # not an npz, cut off, no meta
        raise ProfileError(f"{path}: not a kernel predictor ({exc})") from None
    if meta.get("schema") != SCHEMA or tuple(meta.get("features", ())) != KERNEL_FEATURES:
        raise ProfileError(f"{path}: not a {SCHEMA} file with features {list(KERNEL_FEATURES)}")
    ensembles, baselines = {}, {}
    for kind, head in meta["ensembles"].items():
        baselines[kind] = np.asarray(head["baseline"], dtype=float)
        try:
            fields = {f: arrays[f"{kind}/{f}"] for f in ("feature", "threshold", "left", "right", "value", "roots")}
        except KeyError as exc:
            raise ProfileError(f"{path}: kernel type {kind!r} lacks array {exc}") from None
        ensembles[kind] = TreeEnsemble(**fields, offset=float(head["offset"]),
                                       scale=float(head["scale"]), divisor=float(head["divisor"]))
    overhead_ms = float(meta["overhead_ms"])
    # older files: no terms (the plain sum), or none of the weight-size ones (0)
    network = {**dict(zip(NETWORK_TERMS, IDENTITY_NETWORK)), **meta.get("network", {})}
    if set(network) != set(NETWORK_TERMS):
        raise ProfileError(f"{path}: its network terms {sorted(network)} are not {list(NETWORK_TERMS)}")
    input_ms = float(meta.get("input_ms_per_melement", 0.0))  # older files: no input conversion
    meta = {k: v for k, v in meta.items()
            if k not in ("ensembles", "schema", "features", "overhead_ms", "network", "input_ms_per_melement")}
    return KernelPredictor(ensembles, baselines, overhead_ms, meta,
                           np.array([float(network[term]) for term in NETWORK_TERMS]), input_ms)


def predict_layers(predictor: KernelPredictor, layers: list[LayerCost], coefficients: np.ndarray,
                   table: dict[str, float], expected_error_pct: float | None) -> Breakdown:
    """A profile's breakdown from its kernel predictor: each layer as the sum of its kernels as
    they cost inside a network (source ``"kernels"``); a layer holding a kernel type the predictor lacks is priced by the
    profile's op tables and fitted model instead, and its source says so (``"table"``/``"model"``)."""
    per_layer = [layer_kernels(layer) for layer in layers]
    covered = [all(k.type in predictor.ensembles for k in kernels) for kernels in per_layer]
    flat = [k for kernels, ok in zip(per_layer, covered) if ok for k in kernels]
    ms = iter(predictor.in_network_ms(flat))
    out = []
    for layer, kernels, ok in zip(layers, per_layer, covered):
        if ok:
            latency, source = sum(next(ms) for _ in kernels), "kernels"
        else:
            latency, source = layer_latency(layer, coefficients, table)
        out.append(LayerLatency(layer.name, layer_key(layer), float(latency), source))
    overhead = predictor.overhead_ms + predictor.input_ms(layers)  # per inference: invoke() and the input's conversion
    return Breakdown(overhead + sum(l.latency_ms for l in out), expected_error_pct, overhead, tuple(out))
