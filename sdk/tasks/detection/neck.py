"""Feature-pyramid necks (BiFPN, NAS-FPN) as node graphs: the layer walk and the Keras build.

A neck turns the backbone's stride-8/16/32 features into five maps ``P3 .. P7`` of ``filters``
channels, then repeats a cell ``repeats`` times. A cell is a list of ``Node``s (``bifpn``,
``nasfpn``); features are numbered in order of creation, the cell's five inputs first. Each node
resamples its inputs to its level and width, fuses them, and applies ``act -> separable 3x3 conv
(bias) -> BN`` (google/automl ``efficientdet/tf2/efficientdet_keras.py`` @f83fc71
``OpAfterCombine``, the ``conv_bn_act_pattern=False`` default; tensorflow/tpu ``nasfpn.py``
@1754ba8 ``op_after_combine``: the same order).

Resampling an input (automl ``ResampleFeatureMap``; tpu ``resample_feature_map``): a 1x1 conv
with bias + BN where the width differs, then max pooling to a coarser level (BiFPN: kernel
stride + 1, NAS-FPN: kernel = stride; 'same' padding) or nearest-neighbour resizing to a finer one.
Every resampling has its own weights. Extra levels: BiFPN makes P6 from the raw P5 (1x1 conv +
BN, pool) and P7 from P6 (pool), and each first-cell node resamples the raw backbone features
itself; NAS-FPN first projects P3-P5 to ``filters`` once, then pools P6 and P7.

``layers`` is pure Python (``LayerCost`` entries of the one walk, every op priced by a profile's
op model); ``build`` imports TensorFlow and creates the same weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from edgetailor.arch.layers import LayerCost, Op, Shape, conv_op
from edgetailor.arch.spec import Block, SpecError
from edgetailor.tasks.detection import bifpn, nasfpn
from edgetailor.tasks.detection.bifpn import Node

LEVELS = (3, 4, 5, 6, 7)
KINDS = ("bifpn", "nasfpn")
# Keras-free ops carry this placeholder block: no measured table holds its key, so a profile
# prices each of the layer's ops with its fitted op model (as ssdlite's free layers do).
_PLACEHOLDER = Block("maxpool", kernel=1)


@dataclass(frozen=True)
class NeckConfig:
    """Which cell, its width (channels), how many cells, BiFPN fusion, activation."""

    kind: str = "bifpn"
    filters: int = 64
    repeats: int = 3
    weight_method: str = "sum"
    act: str = "relu6"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SpecError(f"neck must be one of {', '.join(KINDS)} (got {self.kind!r})")
        if self.filters < 1 or self.repeats < 1:
            raise SpecError(f"a neck needs at least one filter and one cell (got {self.filters}, {self.repeats})")

    def nodes(self) -> tuple[Node, ...]:
        if self.kind == "bifpn":
            return bifpn.cell_nodes(LEVELS[0], LEVELS[-1], self.weight_method)
        return nasfpn.cell_nodes(LEVELS[0], LEVELS[-1])

    @property
    def pool_extra(self) -> int:
        """Max-pool kernel minus stride: BiFPN pools 3x3 stride 2, NAS-FPN 2x2 stride 2."""
        return 1 if self.kind == "bifpn" else 0


def sides(resolution: int) -> list[int]:
    """Map side (px) per level 3-7 with 'same' padding: ceil(r / 2**level)."""
    return [math.ceil(resolution / 2 ** level) for level in LEVELS]


def _layer(name: str, ops: list[Op]) -> LayerCost:
    return LayerCost(name, _PLACEHOLDER, ops[0].in_shape, ops[-1].out_shape, tuple(ops))


def _resample_ops(shape: Shape, level: int, target: int, side: int, config: NeckConfig) -> list[Op]:
    ops = []
    if shape[2] != config.filters:
        ops.append(conv_op(shape, config.filters, bn=True, bias=True))
        shape = ops[-1].out_shape
    if target > level:
        stride = 2 ** (target - level)
        ops.append(Op("maxpool", shape, (side, side, shape[2]), kernel=stride + config.pool_extra, stride=stride))
    elif target < level:
        ops.append(Op("resize", (side, side, shape[2]), (side, side, shape[2])))
    return ops


def separable_ops(shape: Shape, filters: int, act_in: str = "linear", act_out: str = "linear") -> list[Op]:
    """Keras ``SeparableConv2D(filters, 3, use_bias=True)`` + BN: a 3x3 depthwise with no bias and
    no BN of its own, then a 1x1 with bias and BN. ``act_in`` is the activation fused into the op
    before it (priced there); ``act_out`` follows the BN."""
    h, w, c = shape
    dw = Op("dwconv", shape, shape, 3, 1, c, False, False, "linear", 9 * c, h * w * 9 * c)
    return [dw, conv_op(shape, filters, act=act_out, bn=True, bias=True)]


def _fuse_ops(node: Node, shapes: list[Shape], act: str) -> list[Op]:
    """Ops that fuse resampled ``shapes`` (one per input, all alike) and apply ``act``."""
    shape, n = shapes[0], len(shapes)
    ops: list[Op] = []
    if node.combine == "fastattn":  # the weights' relu and normalisation fold into constants
        ops += [Op("mul", shape, shape) for _ in range(n)]
    elif node.combine == "attention":
        pooled = (1, 1, shape[2])
        ops += [Op("pool", shape, pooled), Op("act", pooled, pooled, act="sigmoid"), Op("mul", shape, shape)]
    adds = n - 1
    ops += [Op("add", shape, shape, act=act if i == adds - 1 else "linear") for i in range(adds)]
    if not adds:
        ops.append(Op("act", shape, shape, act=act))
    return ops


def fusion_weights(node: Node) -> int:
    """Trainable scalars of a node: one per input for fast normalised fusion."""
    return len(node.inputs) if node.combine == "fastattn" else 0


def layers(backbone: list[Shape], resolution: int, config: NeckConfig) -> tuple[list[LayerCost], list[Shape]]:
    """The neck's layers on backbone features ``[P3, P4, P5]`` (H, W, C) and its five output shapes."""
    side = sides(resolution)
    f = config.filters
    out: list[LayerCost] = []
    feats = list(backbone)
    if config.kind == "nasfpn":
        for i, shape in enumerate(backbone):
            if shape[2] != f:
                out.append(_layer(f"neck.p{LEVELS[i]}", [conv_op(shape, f, bn=True, bias=True)]))
                feats[i] = out[-1].out_shape
    for level in (6, 7):
        ops = _resample_ops(feats[-1], level - 1, level, side[level - 3], config)
        out.append(_layer(f"neck.p{level}", ops))
        feats.append(out[-1].out_shape)
    for r in range(config.repeats):
        levels = list(LEVELS)
        for i, node in enumerate(config.nodes()):
            target = side[node.level - 3]
            ops: list[Op] = []
            resampled = []
            for j in node.inputs:
                step = _resample_ops(feats[j], levels[j], node.level, target, config)
                ops += step
                resampled.append(step[-1].out_shape if step else feats[j])
            ops += _fuse_ops(node, resampled, config.act)
            ops += separable_ops(resampled[0], f)
            if fusion_weights(node):  # the scalars sit on the first mul (params only)
                first = next(k for k, op in enumerate(ops) if op.kind == "mul")
                ops[first] = Op("mul", ops[first].in_shape, ops[first].out_shape, params=fusion_weights(node))
            out.append(_layer(f"neck.cell{r}.node{i}", ops))
            feats.append(out[-1].out_shape)
            levels.append(node.level)
        feats = [feats[max(k for k, lv in enumerate(levels) if lv == level)] for level in LEVELS]
    return out, feats


def build(backbone: list, config: NeckConfig, name: str = "neck") -> list:
    """Keras tensors P3-P7 from backbone tensors ``[P3, P4, P5]``; the weights ``layers`` counts."""
    import tensorflow as tf

    from edgetailor.builder.network import BN_EPSILON

    L = tf.keras.layers
    f = config.filters

    def bn(x, label):
        return L.BatchNormalization(epsilon=BN_EPSILON, name=f"{label}_bn")(x)

    def resample(x, level, target, label):
        if x.shape[-1] != f:
            x = bn(L.Conv2D(f, 1, use_bias=True, name=f"{label}_conv")(x), label)
        if target > level:
            stride = 2 ** (target - level)
            x = L.MaxPooling2D(stride + config.pool_extra, stride, "same", name=f"{label}_pool")(x)
        elif target < level:
            x = L.Resizing(*target_side[target], interpolation="nearest", name=f"{label}_up")(x)
        return x

    def act(x, label):
        if config.act == "relu6":
            return L.ReLU(6.0, name=f"{label}_act")(x)
        if config.act == "relu":
            return L.ReLU(name=f"{label}_act")(x)
        raise SpecError(f"neck activation must be relu or relu6 (got {config.act!r})")

    feats = list(backbone)
    if config.kind == "nasfpn":
        feats = [bn(L.Conv2D(f, 1, use_bias=True, name=f"{name}_p{LEVELS[i]}_conv")(x), f"{name}_p{LEVELS[i]}")
                 if x.shape[-1] != f else x for i, x in enumerate(feats)]
    side5 = feats[2].shape[1]
    target_side = {3: (feats[0].shape[1],) * 2, 4: (feats[1].shape[1],) * 2, 5: (side5,) * 2}
    for level in (6, 7):
        feats.append(resample(feats[-1], level - 1, level, f"{name}_p{level}"))
        target_side[level] = (feats[-1].shape[1],) * 2
    fast_fusion = _fast_fusion_layer(tf) if config.weight_method == "fastattn" else None
    for r in range(config.repeats):
        levels = list(LEVELS)
        for i, node in enumerate(config.nodes()):
            label = f"{name}_cell{r}_node{i}"
            inputs = [resample(feats[j], levels[j], node.level, f"{label}_in{k}") for k, j in enumerate(node.inputs)]
            if node.combine == "fastattn":
                x = fast_fusion(name=f"{label}_fuse")(inputs)
            elif node.combine == "attention":
                a, b = (inputs[0], inputs[1]) if levels[node.inputs[0]] >= levels[node.inputs[1]] else (inputs[1], inputs[0])
                gate = L.Activation("sigmoid", name=f"{label}_gate")(
                    L.GlobalMaxPooling2D(keepdims=True, name=f"{label}_max")(a))
                x = L.Add(name=f"{label}_fuse")([a, L.Multiply(name=f"{label}_mul")([b, gate]), *inputs[2:]])
            else:
                x = L.Add(name=f"{label}_fuse")(inputs)
            x = act(x, label)
            x = L.SeparableConv2D(f, 3, padding="same", use_bias=True, name=f"{label}_conv")(x)
            feats.append(bn(x, label))
            levels.append(node.level)
        feats = [feats[max(k for k, lv in enumerate(levels) if lv == level)] for level in LEVELS]
    return feats


def _fast_fusion_layer(tf):
    """Keras layer: ``sum_i relu(w_i) x_i / (sum_j relu(w_j) + 1e-4)``, ``w`` starting at 1."""

    class FastNormalizedFusion(tf.keras.layers.Layer):
        def build(self, shapes):
            self.w = self.add_weight(name="weights", shape=(len(shapes),), initializer="ones")

        def call(self, inputs):
            w = tf.nn.relu(self.w)
            w = w / (tf.reduce_sum(w) + 1e-4)
            return tf.add_n([x * w[i] for i, x in enumerate(inputs)])

    return FastNormalizedFusion
