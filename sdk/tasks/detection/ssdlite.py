"""SSDLite on any backbone: head definition, its layer list (for latency), and the Keras model.

The head follows ``ssdlite_mobilenet_v3_large_320x320_coco.config`` (tensorflow/models):

- features: the backbone's stride-16 inverted-residual *expansion* output (``layer_14/
  expansion_output``; a backbone without one gives its stride-16 block output) and its last
  stride-32 block output, found by stride through ``edgetailor.arch.features``;
- four extra layers, each a 1x1 conv to depth/2 then a 3x3 stride-2 depthwise-separable conv to
  depth, depths 512, 256, 256, 128 (times the backbone's width multiplier, at least 16, as the
  OD API's ``depth_multiplier``/``min_depth`` do): six maps, 20/10/5/3/2/1 at 320 px;
- per map, a box and a class predictor, each 3x3 depthwise + BN + ReLU6 -> 1x1 conv with bias
  (``boxes x 4`` and ``boxes x (classes + 1)`` channels; class bias starts at -4.6);
- SSD anchors (``edgetailor.tasks.detection.anchors``), box coder 10/10/5/5 (``edgetailor.tasks.detection.box_coder``).

``head_layers`` expresses the head as ``LayerCost`` entries of the one layer walk, so a device
profile prices backbone + head with ``predict_latency``. This module imports TensorFlow only
inside ``build``; everything else is pure Python/numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from edgetailor.arch import zoo
from edgetailor.tasks.detection.anchors import AnchorConfig, ssd_anchors
from edgetailor.arch.features import FeatureInfo, feature_info, last_at_stride
from edgetailor.arch.layers import LayerCost, Op, Shape, block_cost, conv_op, dwconv_op, totals, walk_to
from edgetailor.arch.spec import ArchSpec, Block, SpecError
from edgetailor.latency.detection_postprocess import with_postprocess
from edgetailor.tasks.detection.postprocess import DEFAULT_MAX_DETECTIONS

EXTRA_DEPTHS = (512, 256, 256, 128)
MIN_DEPTH = 16
CLASS_BIAS_INIT = -4.6  # sigmoid prior of 0.01
NORM_MEAN, NORM_STD = 127.5, 127.5  # input (x - 127.5) / 127.5: the SSD preprocessing (2/255) x - 1
DEFAULT_RESOLUTION = 320


@dataclass(frozen=True)
class Reference:
    """A published SSDLite detector (COCO, 320 px, 90 classes, float) and its Pixel 1 latency."""

    name: str
    family: str
    width: float
    reduced_tail: bool
    pixel1_ms: float
    coco_map: float
    source: str

    def spec(self) -> ArchSpec:
        base = zoo.FAMILIES[self.family].spec(self.width, 1.0, DEFAULT_RESOLUTION)
        return reduce_tail(base) if self.reduced_tail else base


_ZOO = ("tensorflow/models research/object_detection/g3doc/tf1_detection_zoo.md, Mobile models "
        "(Pixel 1 latency, COCO mAP): {}")
_PAPER = "Howard et al. 2019, Searching for MobileNetV3, Table 6 (SSDLite, COCO, Pixel 1)"
PUBLISHED = (
    Reference("SSDLite MobileNetV3-Large (reduced tail)", "mobilenet_v3_large", 1.0, True, 119.0, 22.6,
              _ZOO.format("ssd_mobilenet_v3_large_coco")),
    Reference("SSDLite MobileNetV3-Small (reduced tail)", "mobilenet_v3_small", 1.0, True, 43.0, 15.4,
              _ZOO.format("ssd_mobilenet_v3_small_coco")),
    Reference("SSDLite MobileNetV3-Large", "mobilenet_v3_large", 1.0, False, 137.0, 22.0, _PAPER),
    Reference("SSDLite MobileNetV3-Small", "mobilenet_v3_small", 1.0, False, 52.0, 16.0, _PAPER),
)
# MobileNetV3 paper §6.3: detection backbones halve the channels between C4 and C5 ("reduced
# tail": V3_LARGE_DETECTION / V3_SMALL_DETECTION in tensorflow/models slim mobilenet_v3.py).
REDUCED_TAIL = ("mobilenet_v3_large", "mobilenet_v3_small")


def reduce_tail(spec: ArchSpec) -> ArchSpec:
    """``spec`` with its last stage's block outputs and the head's 1x1 conv at half their
    channels (expansions follow, being ratios of the input)."""
    half = lambda block: replace(block, channels=int(round(block.channels * 0.5)))  # noqa: E731
    head = tuple(half(b) if b.kind == "conv" else b for b in spec.head)
    return replace(spec, stages=spec.stages[:-1] + (tuple(half(b) for b in spec.stages[-1]),), head=head)


def detection_backbone(family: str, width: float = 1.0, resolution: int = DEFAULT_RESOLUTION) -> ArchSpec:
    """The backbone SSDLite uses for ``family``: the zoo spec, reduced-tail for MobileNetV3."""
    spec = zoo.FAMILIES[family].spec(width, 1.0, resolution)
    return reduce_tail(spec) if family in REDUCED_TAIL else spec


@dataclass(frozen=True)
class SSDLiteConfig:
    """Everything about the head that is not the backbone."""

    num_classes: int
    extra_depths: tuple[int, ...] | None = None  # None: EXTRA_DEPTHS x the backbone's width
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    kernel: int = 3

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise SpecError(f"a detector needs at least one class (got {self.num_classes})")

    def depths(self, spec: ArchSpec) -> tuple[int, ...]:
        if self.extra_depths is not None:
            return tuple(self.extra_depths)
        return tuple(max(MIN_DEPTH, int(d * spec.width)) for d in EXTRA_DEPTHS)


def endpoints(spec: ArchSpec) -> tuple[FeatureInfo, FeatureInfo]:
    """The two backbone features SSDLite reads: stride-16 expansion (or block) and stride 32."""
    infos = feature_info(spec)
    if any(f.stride == 16 and f.kind == "expansion" for f in infos):
        low = last_at_stride(spec, 16, "expansion")
    else:
        low = last_at_stride(spec, 16, "block")
    return low, last_at_stride(spec, 32, "block")


def map_shapes(spec: ArchSpec, config: SSDLiteConfig) -> list[Shape]:
    """(H, W, C) of the six feature maps the predictors read."""
    low, high = endpoints(spec)
    r = spec.resolution
    shapes: list[Shape] = [(math.ceil(r / 16),) * 2 + (low.channels,), (math.ceil(r / 32),) * 2 + (high.channels,)]
    for depth in config.depths(spec):
        side = math.ceil(shapes[-1][0] / 2)
        shapes.append((side, side, depth))
    return shapes


def anchors(spec: ArchSpec, config: SSDLiteConfig) -> np.ndarray:
    """``[A, 4]`` normalized (yc, xc, h, w) anchors for ``spec`` at its resolution."""
    return ssd_anchors([s[0] for s in map_shapes(spec, config)], config.anchors)


def num_anchors(spec: ArchSpec, config: SSDLiteConfig) -> int:
    shapes = map_shapes(spec, config)
    per = config.anchors.boxes_per_location(len(shapes))
    return sum(s[0] * s[1] * n for s, n in zip(shapes, per))


def _free_layer(name: str, ops: list[Op]) -> LayerCost:
    # Data movement with no block of its own (concat, sigmoid, resize). The placeholder block
    # (a 1x1 max pool, which no network in a profile has) keeps the key out of measured
    # tables, so the profile's fitted model prices the ops from their element counts.
    return LayerCost(name, Block("maxpool", kernel=1), ops[0].in_shape, ops[-1].out_shape, tuple(ops))


def _predictor(name: str, shape: Shape, out_channels: int, kernel: int) -> LayerCost:
    dw = dwconv_op(shape, kernel, act="relu6")
    pw = conv_op(dw.out_shape, out_channels, bn=False, bias=True)
    return LayerCost(name, Block("ds", kernel=kernel, channels=out_channels, act="relu6"),
                     shape, pw.out_shape, (dw, pw))


def head_layers(spec: ArchSpec, config: SSDLiteConfig) -> list[LayerCost]:
    """The head's layers (extra layers, predictors, output concat and sigmoid) as LayerCosts."""
    shapes = map_shapes(spec, config)
    out: list[LayerCost] = []
    shape = shapes[1]
    for i, depth in enumerate(config.depths(spec)):
        pw = block_cost(Block("conv", kernel=1, channels=depth // 2, act="relu6"), shape,
                        spec.divisor, f"ssd.extra{i}.pw")
        ds = block_cost(Block("ds", kernel=3, stride=2, channels=depth, act="relu6"), pw.out_shape,
                        spec.divisor, f"ssd.extra{i}.ds")
        out += [pw, ds]
        shape = ds.out_shape
    per = config.anchors.boxes_per_location(len(shapes))
    for i, (s, n) in enumerate(zip(shapes, per)):
        out.append(_predictor(f"ssd.box{i}", s, n * 4, config.kernel))
        out.append(_predictor(f"ssd.cls{i}", s, n * (config.num_classes + 1), config.kernel))
    total = num_anchors(spec, config)
    c = config.num_classes + 1
    out.append(_free_layer("ssd.outputs", [
        Op("concat", (total, 1, 4), (total, 1, 4)),
        Op("concat", (total, 1, c), (total, 1, c)),
        Op("act", (total, 1, c), (total, 1, c), act="sigmoid"),
    ]))
    return out


def layers(spec: ArchSpec, config: SSDLiteConfig) -> list[LayerCost]:
    """Backbone (up to its stride-32 feature) + head: the detector's whole layer list."""
    return walk_to(spec, endpoints(spec)[1].name) + head_layers(spec, config)


def predict_latency(spec: ArchSpec, config: SSDLiteConfig, profile,
                    max_detections: int = DEFAULT_MAX_DETECTIONS, walked: list[LayerCost] | None = None):
    """Latency Breakdown (ms) of backbone + head + ``TFLite_Detection_PostProcess`` (decode + NMS
    keeping ``max_detections``, ``latency.detection_postprocess``) on ``profile`` (a DeviceProfile).
    ``walked``: ``layers(spec, config)`` when the caller has it already."""
    walked = layers(spec, config) if walked is None else walked
    anchors = walked[-1].ops[0].in_shape[0]  # "ssd.outputs" concatenates one box row per anchor
    return with_postprocess(profile.predict_layers(walked), profile, anchors, config.num_classes, max_detections)


def count(spec: ArchSpec, config: SSDLiteConfig) -> tuple[int, int]:
    """(parameters, MACs) of the detector (backbone to stride 32 + head)."""
    return totals(layers(spec, config))


def build(spec: ArchSpec, config: SSDLiteConfig, name: str = "ssdlite", backbone=None):
    """A tf.keras model: normalized image ``[B, R, R, 3]`` -> ``box_encodings [B, A, 4]``
    (ty, tx, th, tw) and ``class_logits [B, A, classes + 1]`` (column 0 = background).
    ``backbone``: ``spec`` already built without its top (a pretrained start); else random."""
    import tensorflow as tf

    from edgetailor.builder import network as builder

    L = tf.keras.layers
    low, high = endpoints(spec)
    base = backbone if backbone is not None else builder.build(spec, include_top=False)
    maps = [base.get_layer(low.name).output, base.get_layer(high.name).output]

    def conv_bn(x, filters, kernel, stride, layer_name, depthwise=False):
        if depthwise:
            x = L.DepthwiseConv2D(kernel, stride, "same", use_bias=False, name=layer_name)(x)
        else:
            x = L.Conv2D(filters, kernel, stride, "same", use_bias=False, name=layer_name)(x)
        x = L.BatchNormalization(epsilon=builder.BN_EPSILON, name=f"{layer_name}_bn")(x)
        return L.ReLU(6.0, name=f"{layer_name}_act")(x)

    x = maps[-1]
    for i, depth in enumerate(config.depths(spec)):
        x = conv_bn(x, depth // 2, 1, 1, f"ssd_extra{i}_pw")
        x = conv_bn(x, None, 3, 2, f"ssd_extra{i}_dw", depthwise=True)
        x = conv_bn(x, depth, 1, 1, f"ssd_extra{i}_out")
        maps.append(x)
    per = config.anchors.boxes_per_location(len(maps))
    boxes, classes = [], []
    c = config.num_classes + 1
    for i, (feature, n) in enumerate(zip(maps, per)):
        b = conv_bn(feature, None, config.kernel, 1, f"ssd_box{i}_dw", depthwise=True)
        b = L.Conv2D(n * 4, 1, name=f"ssd_box{i}")(b)
        boxes.append(L.Reshape((-1, 4), name=f"ssd_box{i}_flat")(b))
        k = conv_bn(feature, None, config.kernel, 1, f"ssd_cls{i}_dw", depthwise=True)
        k = L.Conv2D(n * c, 1, bias_initializer=tf.keras.initializers.Constant(CLASS_BIAS_INIT),
                     name=f"ssd_cls{i}")(k)
        classes.append(L.Reshape((-1, c), name=f"ssd_cls{i}_flat")(k))
    box_out = L.Concatenate(axis=1, name="box_encodings")(boxes)
    cls_out = L.Concatenate(axis=1, name="class_logits")(classes)
    return tf.keras.Model(base.input, [box_out, cls_out], name=name)
