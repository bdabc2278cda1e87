"""LR-ASPP (MobileNetV3's segmentation head) on any backbone: definition, layer list, Keras model.

As torchvision's ``lraspp.py`` (CONVENTIONS §4), on the backbone's stride-8 and stride-16 block
outputs (found by stride through ``edgetailor.arch.features``; the backbone is cut after the
stride-16 block, so no dilation is needed):

- ``x = relu(bn(conv1x1_128(high))) * sigmoid(conv1x1_128(global_pool(high)))``;
- ``x`` bilinearly resized to the stride-8 map, ``logits = conv1x1_C(low) + conv1x1_C(x)``
  (both with bias), then bilinearly resized to the input (half-pixel centres).

``num_classes`` counts the background (class 0). ``layers`` / ``predict_latency`` price backbone
+ head with a device profile. TensorFlow is imported only inside ``build``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from edgetailor.arch.features import FeatureInfo, last_at_stride
from edgetailor.arch.layers import LayerCost, Op, Shape, block_cost, conv_op, totals, walk_to
from edgetailor.arch.spec import ArchSpec, Block, SpecError

INTER_CHANNELS = 128
NORM_MEAN, NORM_STD = 127.5, 127.5  # input (x - 127.5) / 127.5, as the detectors


@dataclass(frozen=True)
class LRASPPConfig:
    """``num_classes`` includes the background; ``inter_channels`` is the 1x1 branch width."""

    num_classes: int
    inter_channels: int = INTER_CHANNELS

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise SpecError(f"a segmenter needs background plus at least one class "
                            f"(num_classes={self.num_classes})")


def endpoints(spec: ArchSpec) -> tuple[FeatureInfo, FeatureInfo]:
    """(low, high): the last stride-8 and stride-16 block outputs."""
    return last_at_stride(spec, 8, "block"), last_at_stride(spec, 16, "block")


def _side(resolution: int, stride: int) -> int:
    return math.ceil(resolution / stride)


def _classifier(name: str, shape: Shape, num_classes: int) -> LayerCost:
    op = conv_op(shape, num_classes, bn=False, bias=True)
    return LayerCost(name, Block("conv", kernel=1, channels=num_classes, act="linear"), shape,
                     op.out_shape, (op,))


def head_layers(spec: ArchSpec, config: LRASPPConfig) -> list[LayerCost]:
    """The head's layers as LayerCosts of the one layer walk."""
    low, high = endpoints(spec)
    r, c, inter = spec.resolution, config.num_classes, config.inter_channels
    low_shape: Shape = (_side(r, 8), _side(r, 8), low.channels)
    high_shape: Shape = (_side(r, 16), _side(r, 16), high.channels)
    cbr = block_cost(Block("conv", kernel=1, channels=inter, act="relu"), high_shape, spec.divisor,
                     "lraspp.cbr")
    pool = block_cost(Block("pool"), high_shape, spec.divisor, "lraspp.pool")
    gate_op = conv_op((1, 1, high.channels), inter, act="sigmoid", bn=False)
    gate = LayerCost("lraspp.gate", Block("fc", channels=inter, act="linear"), (1, 1, high.channels),
                     gate_op.out_shape, (gate_op,))
    up: Shape = (low_shape[0], low_shape[1], inter)
    # Resizes are priced by the elements they write: their in_shape is the output's size.
    scale = LayerCost("lraspp.scale", Block("maxpool", kernel=1), cbr.out_shape, up,
                      (Op("mul", cbr.out_shape, cbr.out_shape), Op("resize", up, up)))
    low_cls = _classifier("lraspp.low_classifier", low_shape, c)
    high_cls = _classifier("lraspp.high_classifier", up, c)
    out: Shape = (r, r, c)
    merge = LayerCost("lraspp.merge", Block("maxpool", kernel=1), low_cls.out_shape, out,
                      (Op("add", low_cls.out_shape, low_cls.out_shape), Op("resize", out, out)))
    return [cbr, pool, gate, scale, low_cls, high_cls, merge]


def layers(spec: ArchSpec, config: LRASPPConfig) -> list[LayerCost]:
    """Backbone (up to its stride-16 block) + head: the segmenter's whole layer list."""
    return walk_to(spec, endpoints(spec)[1].name) + head_layers(spec, config)


def predict_latency(spec: ArchSpec, config: LRASPPConfig, profile, walked: list[LayerCost] | None = None):
    """Latency Breakdown (ms) of backbone + head on ``profile`` (a DeviceProfile); ``walked``:
    ``layers(spec, config)`` when the caller has it already."""
    return profile.predict_layers(layers(spec, config) if walked is None else walked)


def count(spec: ArchSpec, config: LRASPPConfig) -> tuple[int, int]:
    """(parameters, MACs) of backbone (to stride 16) + head."""
    return totals(layers(spec, config))


def build(spec: ArchSpec, config: LRASPPConfig, name: str = "lraspp", backbone=None):
    """A tf.keras model: normalized image ``[B, R, R, 3]`` -> ``logits [B, R, R, classes]``.
    ``backbone``: ``spec`` already built without its top (a pretrained start); else random."""
    import tensorflow as tf

    from edgetailor.builder import network as builder

    L = tf.keras.layers
    low_info, high_info = endpoints(spec)
    base = backbone if backbone is not None else builder.build(spec, include_top=False)
    low, high = base.get_layer(low_info.name).output, base.get_layer(high_info.name).output
    r, inter = spec.resolution, config.inter_channels
    x = L.Conv2D(inter, 1, use_bias=False, name="lraspp_cbr")(high)
    x = L.BatchNormalization(epsilon=builder.BN_EPSILON, name="lraspp_cbr_bn")(x)
    x = L.ReLU(name="lraspp_cbr_act")(x)
    s = L.GlobalAveragePooling2D(keepdims=True, name="lraspp_pool")(high)
    s = L.Conv2D(inter, 1, use_bias=False, name="lraspp_gate")(s)
    s = L.Activation("sigmoid", name="lraspp_gate_act")(s)
    x = L.Multiply(name="lraspp_scale")([x, s])
    x = L.Resizing(low.shape[1], low.shape[2], "bilinear", name="lraspp_up")(x)
    y = L.Add(name="lraspp_merge")([
        L.Conv2D(config.num_classes, 1, name="lraspp_low_classifier")(low),
        L.Conv2D(config.num_classes, 1, name="lraspp_high_classifier")(x)])
    y = L.Resizing(r, r, "bilinear", name="logits")(y)
    return tf.keras.Model(base.input, y, name=name)
