"""YOLOX-lite: YOLOX's anchor-free decoupled head on any backbone's stride 8/16/32 features.

The head follows Megvii-BaseDetection/YOLOX ``yolox/models/yolo_head.py`` @02aecba (``YOLOXHead``)
with the nano/tiny settings of ``exps/default/yolox_nano.py`` @390ec1a (width 0.25, depthwise)
and ``yolox_tiny.py`` @2668185 (width 0.375, full 3x3 convs):

- per stride (8, 16, 32; one grid point per cell): a 1x1 stem conv to ``int(256 * width)``
  channels, then two branches of two 3x3 convs each (``DWConv`` when depthwise: 3x3 depthwise +
  BN + act, 1x1 + BN + act), all with act SiLU (YOLOX's default ``act="silu"``); the class branch
  ends in a 1x1 conv to the classes, the box branch in a 1x1 conv to 4 offsets and a 1x1 conv to
  objectness (both from the box branch); class and objectness biases start at
  ``-log((1 - 0.01) / 0.01)`` (``initialize_biases(1e-2)``); no weights shared between levels;
- decoding (``decode_outputs``): ``(x, y) = (dx + gx, dy + gy) * stride``, ``(w, h) = exp(dw,
  dh) * stride`` with ``(gx, gy)`` the cell's integer column and row (its top-left corner), score
  ``sigmoid(obj) * sigmoid(cls)``.

Left out: YOLOX's PAFPN neck (the stems read the backbone's features directly, as SSDLite's
predictors do) and SimOTA's dynamic assignment (see ``assign``).

One pipeline for every head (``heads``): the grid points are anchors ``(y, x, h, w) = (gy *
stride, gx * stride, stride, stride) / resolution``, and the box output holds YOLOX's offsets in
the shared SSD coder's units, ``(ty, tx, th, tw) = (10 dy, 10 dx, 5 dh, 5 dw)``
(``box_coder.SCALES``; a scaling the 1x1 box conv's weights absorb, no extra op): the
``TFLite_Detection_PostProcess`` op, the Core ML decoder and ``box_coder.decode`` then compute
exactly YOLOX's boxes (``yc = ty / 10 * h_a + y_a = (dy + gy) * stride / R``, ``h = exp(th / 5) *
h_a = exp(dh) * stride / R``). The class output ``[B, A, 1 + C]`` holds the objectness logit in
column 0 (where the SSD heads keep the background, which the op and Core ML skip) and the class
logits after it; ``scores`` turns it into ``sigmoid(obj) * sigmoid(cls)`` in the graph, before
the post-processing op. Pure Python/numpy except ``build``, ``scores`` and ``losses``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgetailor.arch.features import FeatureInfo
from edgetailor.arch.layers import LayerCost, Op, Shape, block_cost, conv_op, totals, walk_to
from edgetailor.arch.spec import ArchSpec, Block, SpecError
from edgetailor.latency.detection_postprocess import with_postprocess
from edgetailor.tasks.detection.postprocess import DEFAULT_MAX_DETECTIONS
from edgetailor.tasks.detection import box_coder, efficientdet

PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)  # yolo_head.py initialize_biases(prior_prob=1e-2)
STEM_CHANNELS = 256                         # int(256 * width) in every YOLOXHead conv
CENTER_RADIUS = 2.5                         # yolo_head.py get_in_boxes_info center_radius
STRIDES = (8, 16, 32)
ACTIVATIONS = ("swish", "relu", "relu6")    # SiLU is YOLOX's; the ReLUs for int8-friendly heads
_PLACEHOLDER = Block("maxpool", kernel=1)   # keeps free ops out of measured tables (as ssdlite)


@dataclass(frozen=True)
class YOLOXConfig:
    """The head: ``width`` scales the 256 channels of every head conv (nano 0.25, tiny 0.375);
    ``depthwise``: DWConv branches (nano) or full 3x3 convs (tiny); ``act``: SiLU ("swish")."""

    num_classes: int
    width: float = 0.25
    depthwise: bool = True
    strides: tuple[int, ...] = STRIDES
    act: str = "swish"

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise SpecError(f"a detector needs at least one class (got {self.num_classes})")
        strides = list(self.strides)
        if not strides or not set(strides) <= set(STRIDES) or strides != sorted(set(strides)):
            raise SpecError(f"YOLOX strides must be increasing, from {STRIDES} (got {self.strides})")
        if self.act not in ACTIVATIONS:
            raise SpecError(f"YOLOX head activation must be one of {', '.join(ACTIVATIONS)} "
                            f"(got {self.act!r})")
        if self.hidden < 1:
            raise SpecError(f"width {self.width} leaves the head no channels")

    @property
    def hidden(self) -> int:
        return int(STEM_CHANNELS * self.width)


def endpoints(spec: ArchSpec, config: YOLOXConfig) -> list[FeatureInfo]:
    """The backbone feature at each of ``config.strides``: its last block output there (the
    C3/C4/C5 maps EfficientDet reads, ``efficientdet.endpoints``)."""
    by_stride = {f.stride: f for f in efficientdet.endpoints(spec)}
    return [by_stride[s] for s in config.strides]


def grid_sides(spec: ArchSpec, config: YOLOXConfig) -> list[int]:
    return [math.ceil(spec.resolution / s) for s in config.strides]


def grid_points(spec: ArchSpec, config: YOLOXConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gx, gy, stride) per grid point ``[A]``, in the output order: level, row, column."""
    gx, gy, stride = [], [], []
    for side, s in zip(grid_sides(spec, config), config.strides):
        rows, cols = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        gx.append(cols.reshape(-1))
        gy.append(rows.reshape(-1))
        stride.append(np.full(side * side, s))
    return tuple(np.concatenate(v).astype(np.float32) for v in (gx, gy, stride))


def anchors(spec: ArchSpec, config: YOLOXConfig) -> np.ndarray:
    """``[A, 4]`` normalized (yc, xc, h, w): each grid point's top-left corner, stride-sized."""
    gx, gy, stride = grid_points(spec, config)
    r = float(spec.resolution)
    return np.stack([gy * stride / r, gx * stride / r, stride / r, stride / r], axis=1).astype(np.float32)


def num_anchors(spec: ArchSpec, config: YOLOXConfig) -> int:
    return sum(side * side for side in grid_sides(spec, config))


def offsets_to_codes(offsets: np.ndarray) -> np.ndarray:
    """YOLOX offsets ``(dx, dy, dw, dh)`` -> box encodings ``(ty, tx, th, tw)`` in SSD coder units."""
    dx, dy, dw, dh = np.moveaxis(np.asarray(offsets, np.float32), -1, 0)
    sy, sx, sh, sw = box_coder.SCALES
    return np.stack([sy * dy, sx * dx, sh * dh, sw * dw], axis=-1)


def _branch(prefix: str, shape: Shape, config: YOLOXConfig, divisor: int) -> list[LayerCost]:
    kind = Block("ds", kernel=3, channels=config.hidden, act=config.act) if config.depthwise \
        else Block("conv", kernel=3, channels=config.hidden, act=config.act)
    first = block_cost(kind, shape, divisor, f"{prefix}.0")
    return [first, block_cost(kind, first.out_shape, divisor, f"{prefix}.1")]


def head_layers(spec: ArchSpec, config: YOLOXConfig) -> list[LayerCost]:
    """Stems, class and box branches, predictions and the output concat/score ops as LayerCosts."""
    out: list[LayerCost] = []
    for level, (feature, side) in enumerate(zip(endpoints(spec, config), grid_sides(spec, config))):
        stem = block_cost(Block("conv", kernel=1, channels=config.hidden, act=config.act),
                          (side, side, feature.channels), spec.divisor, f"yolox.stem{level}")
        cls = _branch(f"yolox.cls{level}", stem.out_shape, config, spec.divisor)
        reg = _branch(f"yolox.reg{level}", stem.out_shape, config, spec.divisor)
        shape = stem.out_shape
        preds = (conv_op(shape, config.num_classes, bn=False, bias=True),
                 conv_op(shape, 4, bn=False, bias=True), conv_op(shape, 1, bn=False, bias=True))
        out += [stem, *cls, *reg, LayerCost(f"yolox.pred{level}", _PLACEHOLDER, shape,
                                            (side, side, config.num_classes + 5), preds)]
    total, c = num_anchors(spec, config), config.num_classes
    out.append(LayerCost("yolox.outputs", _PLACEHOLDER, (total, 1, 4), (total, 1, c + 1), (
        Op("concat", (total, 1, 4), (total, 1, 4)),
        Op("concat", (total, 1, c + 1), (total, 1, c + 1)),
        Op("act", (total, 1, c + 1), (total, 1, c + 1), act="sigmoid"),
        Op("mul", (total, 1, c), (total, 1, c)))))
    return out


def layers(spec: ArchSpec, config: YOLOXConfig) -> list[LayerCost]:
    """Backbone up to its deepest feature + head: the detector's whole layer list."""
    return walk_to(spec, endpoints(spec, config)[-1].name) + head_layers(spec, config)


def predict_latency(spec: ArchSpec, config: YOLOXConfig, profile,
                    max_detections: int = DEFAULT_MAX_DETECTIONS, walked: list[LayerCost] | None = None):
    """Latency Breakdown (ms) on ``profile``, ``TFLite_Detection_PostProcess`` keeping
    ``max_detections`` included (``latency.detection_postprocess``). ``walked``: ``layers(spec,
    config)`` when the caller has it already."""
    walked = layers(spec, config) if walked is None else walked
    return with_postprocess(profile.predict_layers(walked), profile,
                            num_anchors(spec, config), config.num_classes, max_detections)


def count(spec: ArchSpec, config: YOLOXConfig) -> tuple[int, int]:
    """(trainable parameters, MACs) of the detector."""
    return totals(layers(spec, config))


def build(spec: ArchSpec, config: YOLOXConfig, name: str = "yolox", backbone=None):
    """A tf.keras model: normalized image -> ``box_encodings [B, A, 4]`` (ty, tx, th, tw in SSD
    coder units) and ``class_logits [B, A, 1 + C]`` (column 0 objectness, then the classes).
    ``backbone``: ``spec`` built without its top (a pretrained start); else random."""
    import tensorflow as tf

    from edgetailor.builder import network as builder

    L = tf.keras.layers
    base = backbone if backbone is not None else builder.build(spec, include_top=False)
    prior = tf.keras.initializers.Constant(PRIOR_BIAS)

    def conv_bn(x, kernel, label, depthwise=False):
        if depthwise:
            x = L.DepthwiseConv2D(kernel, 1, "same", use_bias=False, name=label)(x)
        else:
            x = L.Conv2D(config.hidden, kernel, 1, "same", use_bias=False, name=label)(x)
        x = L.BatchNormalization(epsilon=builder.BN_EPSILON, name=f"{label}_bn")(x)
        if config.act == "relu6":
            return L.ReLU(6.0, name=f"{label}_act")(x)
        return L.Activation(config.act, name=f"{label}_act")(x)

    def branch(x, label):
        for i in range(2):
            if config.depthwise:
                x = conv_bn(x, 3, f"{label}_{i}_dw", depthwise=True)
                x = conv_bn(x, 1, f"{label}_{i}_pw")
            else:
                x = conv_bn(x, 3, f"{label}_{i}")
        return x

    boxes, logits = [], []
    for level, feature in enumerate(endpoints(spec, config)):
        x = conv_bn(base.get_layer(feature.name).output, 1, f"{name}_stem{level}")
        cls = L.Conv2D(config.num_classes, 1, bias_initializer=prior, name=f"{name}_cls{level}")(
            branch(x, f"{name}_cls{level}_conv"))
        reg = branch(x, f"{name}_reg{level}_conv")
        box = L.Conv2D(4, 1, name=f"{name}_box{level}")(reg)
        obj = L.Conv2D(1, 1, bias_initializer=prior, name=f"{name}_obj{level}")(reg)
        boxes.append(L.Reshape((-1, 4), name=f"{name}_box{level}_flat")(box))
        both = L.Concatenate(name=f"{name}_logits{level}")([obj, cls])
        logits.append(L.Reshape((-1, config.num_classes + 1), name=f"{name}_logits{level}_flat")(both))
    box_out = L.Concatenate(axis=1, name="box_encodings")(boxes)
    cls_out = L.Concatenate(axis=1, name="class_logits")(logits)
    return tf.keras.Model(base.input, [box_out, cls_out], name=name)


def scores(logits):
    """Scores ``[B, A, 1 + C]`` from the class output (a TF tensor): column 0 ``sigmoid(obj)``,
    then ``sigmoid(obj) * sigmoid(cls)``, YOLOX's detection score, computed in the graph."""
    import tensorflow as tf

    obj = tf.sigmoid(logits[..., :1])
    return tf.concat([obj, obj * tf.sigmoid(logits[..., 1:])], axis=-1)


def assign(boxes: np.ndarray, classes: np.ndarray, anchors: np.ndarray,
           radius: float = CENTER_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """Targets for one image by YOLOX's centre prior, not SimOTA: a grid point is positive for a
    box when its cell centre ``(g + 0.5) * stride`` lies inside the box and within ``radius``
    strides of the box centre on both axes (``get_in_boxes_info``'s in-box-and-in-centre set);
    a box with no such point (smaller than a cell) takes the one point nearest its centre, in
    strides. A point positive for several boxes takes the smallest box. Returns class per point
    ``[A]`` (0 = negative, k + 1 = class k) and box codes ``[A, 4]`` (YOLOX's L1 targets,
    ``get_l1_target``, in coder units: ``box_coder.encode`` against the grid anchors)."""
    n = len(anchors)
    cls_target = np.zeros(n, np.int32)
    box_target = np.zeros((n, 4), np.float32)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return cls_target, box_target
    ya, xa, stride = anchors[:, 0], anchors[:, 1], anchors[:, 2]
    cy, cx = ya + stride / 2, xa + stride / 2                           # cell centres [A]
    y0, x0, y1, x1 = (boxes[:, i:i + 1] for i in range(4))             # [G, 1]
    by, bx = (y0 + y1) / 2, (x0 + x1) / 2
    inside = (cy > y0) & (cy < y1) & (cx > x0) & (cx < x1)             # [G, A]
    near = (np.abs(cy - by) < radius * stride) & (np.abs(cx - bx) < radius * stride)
    positive = inside & near
    for g in np.flatnonzero(~positive.any(axis=1)):                     # smaller than a cell
        positive[g, np.argmin(np.maximum(np.abs(cy - by[g]), np.abs(cx - bx[g])) / stride)] = True
    area = ((y1 - y0) * (x1 - x0))[:, 0]
    cost = np.where(positive, area[:, None], np.inf)
    matched = positive.any(axis=0)
    match = cost.argmin(axis=0)
    cls_target[matched] = np.asarray(classes, np.int32)[match[matched]] + 1
    box_target[matched] = box_coder.encode(boxes[match[matched]], anchors[matched])
    return cls_target, box_target


def losses(cls_target, box_target, codes, logits, num_classes: int):
    """(classification, box) losses of a batch, each summed and divided by the positive count
    as YOLOX's ``get_losses`` does: classification = BCE on objectness at every point + BCE on
    the classes at positives (one-hot targets; YOLOX weights them by the IoU SimOTA matched);
    box = L1 on YOLOX's offsets (codes over the coder scales) at positives (YOLOX adds an IoU
    loss, weight 5; not here)."""
    import tensorflow as tf

    positive = cls_target > 0
    num_pos = tf.maximum(tf.reduce_sum(tf.cast(positive, tf.float32)), 1.0)
    bce = tf.nn.sigmoid_cross_entropy_with_logits
    obj_loss = tf.reduce_sum(bce(labels=tf.cast(positive, tf.float32), logits=logits[..., 0]))
    onehot = tf.one_hot(cls_target, num_classes + 1)[..., 1:]
    cls_elem = tf.reduce_sum(bce(labels=onehot, logits=logits[..., 1:]), -1)
    cls_loss = tf.reduce_sum(tf.where(positive, cls_elem, tf.zeros_like(cls_elem)))
    scale = tf.constant(box_coder.SCALES, tf.float32)
    l1 = tf.reduce_sum(tf.abs(codes - box_target) / scale, -1)
    box_loss = tf.reduce_sum(tf.where(positive, l1, tf.zeros_like(l1)))
    return (obj_loss + cls_loss) / num_pos, box_loss / num_pos
