"""EfficientDet-Lite (and the NAS-FPN-lite alternative): backbone P3-P5, a BiFPN or NAS-FPN neck,
shared class and box nets, multi-level anchors. Description in pure Python, Keras in ``build``.

google/automl ``efficientdet/tf2/efficientdet_keras.py`` @f83fc71 (``EfficientDetNet``,
``ClassNet``, ``BoxNet``) and ``hparams_config.py`` @4be6845 (``efficientdet_lite_param_dict``):

- backbone features at strides 8/16/32: the last *block* output of each (``reduction_3..5``; the
  backbone's 1280-channel head conv is not used);
- neck (``edgetailor.tasks.detection.neck``): P6/P7 added, ``fpn_cell_repeats`` cells of
  ``fpn_num_filters`` channels; Lite: ReLU6 and plain sum fusion;
- class and box nets shared across levels: ``box_class_repeats`` x (separable 3x3 conv with
  bias -> BN -> act), the conv weights shared by the five levels and a BN per level, then a
  separable 3x3 predictor with bias (``A x 4`` box codes; ``A x classes`` logits, bias
  ``-log((1 - 0.01) / 0.01)``), ``A = 3 scales x 3 ratios``.

Two interface choices keep one detector pipeline (training, TFLite post-processing op, Core ML
NMS) for every head: the class output gets a constant zero background column in front (no
weights; the SSD heads' column 0, which no loss or post-processing reads), and box codes use the
shared SSD box coder (scales 10/10/5/5; automl encodes with scales 1 and weights its box loss
50x), so the TFLite op decodes with the scales training used. Input normalisation is SSD's
(x - 127.5) / 127.5; automl's Lite models use (x - 127) / 128.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgetailor.arch import zoo
from edgetailor.arch.features import FeatureInfo, feature_info
from edgetailor.arch.layers import LayerCost, Op, Shape, conv_op, totals, walk_to
from edgetailor.arch.spec import ArchSpec, Block, SpecError
from edgetailor.latency.detection_postprocess import with_postprocess
from edgetailor.tasks.detection.postprocess import DEFAULT_MAX_DETECTIONS
from edgetailor.tasks.detection import neck
from edgetailor.tasks.detection.anchors import MultilevelAnchorConfig, multilevel_anchors

NORM_MEAN, NORM_STD = 127.5, 127.5  # the SSD heads' normalisation (one detector pipeline)
CLASS_BIAS_INIT = -math.log((1 - 0.01) / 0.01)
DEFAULT_RESOLUTION = 320
_PLACEHOLDER = Block("maxpool", kernel=1)


@dataclass(frozen=True)
class EfficientDetConfig:
    """Everything about the detector that is not the backbone."""

    num_classes: int
    neck: neck.NeckConfig = field(default_factory=neck.NeckConfig)
    box_class_repeats: int = 3
    anchors: MultilevelAnchorConfig = field(default_factory=MultilevelAnchorConfig)
    act: str = "relu6"

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise SpecError(f"a detector needs at least one class (got {self.num_classes})")
        if self.anchors.levels != neck.LEVELS:
            raise SpecError(f"the necks make levels {neck.LEVELS} (anchors ask for {self.anchors.levels})")


@dataclass(frozen=True)
class Reference:
    """A published EfficientDet-Lite (COCO, 90 classes) and its figures."""

    name: str
    backbone: str            # zoo entry
    resolution: int
    filters: int
    cell_repeats: int
    box_class_repeats: int
    anchor_scale: float
    params_m: float
    coco_map: float          # float model, COCO val2017
    pixel4_ms: float         # int8, 4 CPU threads, Pixel 4
    source: str

    def spec(self) -> ArchSpec:
        return zoo.resolve(self.backbone, resolution=self.resolution).spec

    def config(self, num_classes: int = 90) -> EfficientDetConfig:
        return EfficientDetConfig(num_classes, neck.NeckConfig("bifpn", self.filters, self.cell_repeats),
                                  self.box_class_repeats, MultilevelAnchorConfig(anchor_scale=self.anchor_scale))


_AUTOML = ("google/automl efficientdet/hparams_config.py @4be6845 (architecture); efficientdet/README.md "
           "@5333731 table 'mobile-size lite models' (params, mAP); tensorflow/tensorflow "
           "tensorflow/lite/g3doc/models/modify/model_maker/object_detection.ipynb @6bace29 (Pixel 4, "
           "4 CPU threads, int8 models: latency)")
PUBLISHED = (
    Reference("EfficientDet-Lite0", "efficientnet_lite0", 320, 64, 3, 3, 3.0, 3.2, 26.41, 37.0, _AUTOML),
    Reference("EfficientDet-Lite1", "efficientnet_lite1", 384, 88, 4, 3, 3.0, 4.2, 31.50, 49.0, _AUTOML),
    Reference("EfficientDet-Lite2", "efficientnet_lite2", 448, 112, 5, 3, 3.0, 5.3, 35.06, 69.0, _AUTOML),
    Reference("EfficientDet-Lite3", "efficientnet_lite3", 512, 160, 6, 4, 4.0, 8.4, 38.77, 116.0, _AUTOML),
    Reference("EfficientDet-Lite4", "efficientnet_lite4", 640, 224, 7, 4, 4.0, 15.1, 43.18, 260.0, _AUTOML),
)
# NAS-FPN-lite on MobileNetV2 at 320 px: separable convs, 64 channels, 7 cells, 3 box/class
# repeats. The cell is the published one (nasfpn.BLOCK_SPECS); this width/depth is our reading
# of the paper's NAS-FPNLite, not checked against its table.
NASFPN_LITE = ("mobilenet_v2_100", 320, neck.NeckConfig("nasfpn", 64, 7), 3)


def nasfpn_lite(num_classes: int = 90) -> tuple[ArchSpec, EfficientDetConfig]:
    """(backbone, config) of the NAS-FPN-lite detector the picker offers."""
    backbone, resolution, neck_config, repeats = NASFPN_LITE
    return zoo.resolve(backbone, resolution=resolution).spec, EfficientDetConfig(num_classes, neck_config, repeats)


def endpoints(spec: ArchSpec) -> tuple[FeatureInfo, FeatureInfo, FeatureInfo]:
    """The last block output at strides 8, 16 and 32 (the backbone's head conv excluded)."""
    blocks = [f for f in feature_info(spec) if f.kind == "block" and not f.name.startswith("head_")]
    found = []
    for stride in (8, 16, 32):
        at = [f for f in blocks if f.stride == stride]
        if not at:
            raise SpecError(f"no block endpoint at stride {stride}: this backbone cannot feed a feature pyramid")
        found.append(at[-1])
    return tuple(found)


def backbone_shapes(spec: ArchSpec) -> list[Shape]:
    return [(math.ceil(spec.resolution / f.stride),) * 2 + (f.channels,) for f in endpoints(spec)]


def map_shapes(spec: ArchSpec, config: EfficientDetConfig) -> list[Shape]:
    """(H, W, C) of P3-P7, the maps the class and box nets read."""
    return [(s, s, config.neck.filters) for s in neck.sides(spec.resolution)]


def anchors(spec: ArchSpec, config: EfficientDetConfig) -> np.ndarray:
    """``[A, 4]`` normalized (yc, xc, h, w) anchors at ``spec``'s resolution."""
    return multilevel_anchors(neck.sides(spec.resolution), config.anchors)


def num_anchors(spec: ArchSpec, config: EfficientDetConfig) -> int:
    return sum(s * s for s in neck.sides(spec.resolution)) * config.anchors.boxes_per_location


def _shared(ops: list[Op], first_level: bool) -> list[Op]:
    """Ops of a level after the first: the shared conv weights are counted once (MACs every time);
    each level keeps its own BN."""
    if first_level:
        return ops
    from dataclasses import replace

    return [replace(op, params=2 * op.out_shape[2] if op.bn else 0) for op in ops]


def _net_layers(name: str, shapes: list[Shape], outputs: int, config: EfficientDetConfig) -> list[LayerCost]:
    out = []
    f = config.neck.filters
    for level, shape in zip(neck.LEVELS, shapes):
        ops: list[Op] = []
        for _ in range(config.box_class_repeats):
            ops += neck.separable_ops(shape, f, act_out=config.act)
        h, w, c = shape
        ops += [Op("dwconv", shape, shape, 3, 1, c, False, False, "linear", 9 * c, h * w * 9 * c),
                conv_op(shape, outputs, bn=False, bias=True)]
        ops = _shared(ops, level == neck.LEVELS[0])
        out.append(LayerCost(f"{name}.p{level}", _PLACEHOLDER, shape, ops[-1].out_shape, tuple(ops)))
    return out


def head_layers(spec: ArchSpec, config: EfficientDetConfig) -> list[LayerCost]:
    """Neck, class net, box net and output reshaping as LayerCosts."""
    neck_layers, maps = neck.layers(backbone_shapes(spec), spec.resolution, config.neck)
    per = config.anchors.boxes_per_location
    c = config.num_classes
    total = num_anchors(spec, config)
    outputs = LayerCost("effdet.outputs", _PLACEHOLDER, (total, 1, 4), (total, 1, c + 1), (
        Op("concat", (total, 1, 4), (total, 1, 4)),
        Op("concat", (total, 1, c), (total, 1, c)),
        Op("pad", (total, 1, c), (total, 1, c + 1)),
        Op("act", (total, 1, c + 1), (total, 1, c + 1), act="sigmoid")))
    return (neck_layers + _net_layers("effdet.class", maps, per * c, config)
            + _net_layers("effdet.box", maps, per * 4, config) + [outputs])


def layers(spec: ArchSpec, config: EfficientDetConfig) -> list[LayerCost]:
    """Backbone up to its stride-32 block output + neck + heads: the detector's whole layer list."""
    return walk_to(spec, endpoints(spec)[2].name) + head_layers(spec, config)


def predict_latency(spec: ArchSpec, config: EfficientDetConfig, profile,
                    max_detections: int = DEFAULT_MAX_DETECTIONS, walked: list[LayerCost] | None = None):
    """Latency Breakdown (ms) on ``profile``, ``TFLite_Detection_PostProcess`` keeping
    ``max_detections`` included (``latency.detection_postprocess``). ``walked``: ``layers(spec,
    config)`` when the caller has it already."""
    walked = layers(spec, config) if walked is None else walked
    return with_postprocess(profile.predict_layers(walked), profile,
                            num_anchors(spec, config), config.num_classes, max_detections)


def count(spec: ArchSpec, config: EfficientDetConfig) -> tuple[int, int]:
    """(trainable parameters, MACs) of the detector."""
    return totals(layers(spec, config))


def build(spec: ArchSpec, config: EfficientDetConfig, name: str = "efficientdet", backbone=None):
    """A tf.keras model: normalized image -> ``box_encodings [B, A, 4]`` and ``class_logits
    [B, A, 1 + classes]`` (column 0 a constant 0: the background column no one reads).
    ``backbone``: ``spec`` built without its top (a pretrained start); else random."""
    import tensorflow as tf

    from edgetailor.builder import network as builder

    L = tf.keras.layers
    base = backbone if backbone is not None else builder.build(spec, include_top=False)
    feats = [base.get_layer(e.name).output for e in endpoints(spec)]
    maps = neck.build(feats, config.neck, f"{name}_neck")
    per, c, f = config.anchors.boxes_per_location, config.num_classes, config.neck.filters

    def net(label, outputs, width, bias):
        convs = [L.SeparableConv2D(f, 3, padding="same", use_bias=True, name=f"{label}_{i}")
                 for i in range(config.box_class_repeats)]
        predict = L.SeparableConv2D(outputs, 3, padding="same", use_bias=True, bias_initializer=bias,
                                    name=f"{label}_predict")
        flat = []
        for level, x in zip(neck.LEVELS, maps):
            for i, conv in enumerate(convs):
                x = L.BatchNormalization(epsilon=builder.BN_EPSILON, name=f"{label}_{i}_bn_p{level}")(conv(x))
                x = L.ReLU(6.0 if config.act == "relu6" else None, name=f"{label}_{i}_act_p{level}")(x)
            flat.append(L.Reshape((-1, width), name=f"{label}_flat_p{level}")(predict(x)))
        return L.Concatenate(axis=1, name=f"{label}_all")(flat)

    boxes = net(f"{name}_box", per * 4, 4, "zeros")
    logits = net(f"{name}_class", per * c, c, tf.keras.initializers.Constant(CLASS_BIAS_INIT))
    boxes = L.Activation("linear", name="box_encodings")(boxes)
    logits = _background_column(L, logits)
    return tf.keras.Model(base.input, [boxes, logits], name=name)


def _background_column(L, logits):
    """``[B, A, C]`` -> ``[B, A, 1 + C]`` with a zero column 0 (a PAD op, no weights)."""
    import tensorflow as tf

    return L.Lambda(lambda t: tf.pad(t, [[0, 0], [0, 0], [1, 0]]), name="class_logits")(logits)
