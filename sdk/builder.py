"""``ArchSpec -> tf.keras.Model``: the only place (with the converters) that touches TensorFlow.

The graph mirrors ``edgetailor.layers.walk`` op for op, so parameter counts agree exactly.
Every block ends in an Identity layer named ``<section>_<index>_out`` (``stage3_0_out``);
inverted-residual expansions are named ``<section>_<index>_expand_act``. ``feature_info``
(pure Python, in ``edgetailor.features``) lists those names by stride for detection and
segmentation heads. Padding is TF "same" everywhere; for strided depthwise convolutions it is
made explicit (ZeroPadding2D + "valid", Keras Applications' ``correct_pad``), which XNNPACK runs
faster.
"""
from __future__ import annotations

import math

import tensorflow as tf

from edgetailor.keras_layers import ChannelShuffle, HardSigmoid, HardSwish, KeepChannels, SplitChannels
from edgetailor.layers import block_instances, has_residual
from edgetailor.scaling import make_divisible
from edgetailor.spec import ArchSpec, Block, SpecError

L = tf.keras.layers
BN_EPSILON = 1e-3  # Keras Applications and tensorflow/tpu


def _act(x, act: str, name: str):
    if act == "linear":
        return x
    if act == "relu":
        return L.ReLU(name=name)(x)
    if act == "relu6":
        return L.ReLU(6.0, name=name)(x)
    if act == "hswish":
        return HardSwish(name=name)(x)
    if act == "swish":
        return L.Activation("swish", name=name)(x)
    if act == "sigmoid":
        return L.Activation("sigmoid", name=name)(x)
    if act == "hsigmoid":
        return HardSigmoid(name=name)(x)
    raise SpecError(f"no Keras activation for {act!r}")


def _pad_for_stride(x, kernel: int, stride: int, name: str):
    """TF "same" padding made explicit for strided depthwise convs, as Keras Applications do.

    Numerically identical to ``padding="same"``, but an explicit PAD + "valid" convolution lets
    XNNPACK fold the padding into a faster kernel (ours matched Keras' MobileNetV2 only with it).
    """
    if stride == 1 or kernel == 1:
        return x, "same"
    pads = []
    for size in x.shape[1:3]:
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    return L.ZeroPadding2D(tuple(pads), name=f"{name}_pad")(x), "valid"


def _conv_bn(x, filters: int, kernel: int, stride: int, act: str, name: str, groups: int = 1):
    if groups > 1:
        parts = SplitChannels(groups, name=f"{name}_split")(x)
        parts = [L.Conv2D(filters // groups, kernel, stride, "same", use_bias=False,
                          name=f"{name}_g{i}")(part) for i, part in enumerate(parts)]
        x = L.Concatenate(name=name)(parts)
    else:
        x = L.Conv2D(filters, kernel, stride, "same", use_bias=False, name=name)(x)
    x = L.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return _act(x, act, f"{name}_act")


def _dw_bn(x, kernel: int, stride: int, act: str, name: str):
    x, padding = _pad_for_stride(x, kernel, stride, name)
    x = L.DepthwiseConv2D(kernel, stride, padding, use_bias=False, name=name)(x)
    x = L.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return _act(x, act, f"{name}_act")


def _squeeze_excite(x, block: Block, in_channels: int, divisor: int, name: str):
    mid = x.shape[-1]
    if block.hard_se:
        squeeze, inner, gate = make_divisible(mid * block.se, divisor), "relu", "hsigmoid"
    else:
        squeeze, inner, gate = max(1, int(in_channels * block.se)), block.act, "sigmoid"
    s = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = L.Conv2D(squeeze, 1, name=f"{name}_reduce")(s)
    s = _act(s, inner, f"{name}_reduce_act")
    s = L.Conv2D(mid, 1, name=f"{name}_expand")(s)
    s = _act(s, gate, f"{name}_gate")
    return L.Multiply(name=f"{name}_mul")([x, s])


def _inverted_residual(x, block: Block, divisor: int, name: str):
    cin = x.shape[-1]
    if block.expand != 1 or block.keep_expand:
        mid = make_divisible(cin * block.expand, divisor) if block.expand != 1 else cin
        x = _conv_bn(x, mid, 1, 1, block.act, f"{name}_expand", block.groups)
        if block.groups > 1:
            x = ChannelShuffle(block.groups, name=f"{name}_shuffle")(x)
    x = _dw_bn(x, block.kernel, block.stride, block.act, f"{name}_dw")
    if block.se:
        x = _squeeze_excite(x, block, cin, divisor, f"{name}_se")
    return _conv_bn(x, block.channels, 1, 1, "linear", f"{name}_project", block.groups)


def _fused(x, block: Block, divisor: int, name: str):
    cin = x.shape[-1]
    if block.expand == 1:
        x = _conv_bn(x, block.channels, block.kernel, block.stride, block.act, f"{name}_conv")
        return _squeeze_excite(x, block, cin, divisor, f"{name}_se") if block.se else x
    mid = make_divisible(cin * block.expand, divisor)
    x = _conv_bn(x, mid, block.kernel, block.stride, block.act, f"{name}_expand")
    if block.se:
        x = _squeeze_excite(x, block, cin, divisor, f"{name}_se")
    return _conv_bn(x, block.channels, 1, 1, "linear", f"{name}_project")


def _ghost_module(x, out_channels: int, act: str, name: str):
    init = math.ceil(out_channels / 2)
    primary = _conv_bn(x, init, 1, 1, act, f"{name}_primary")
    cheap = _dw_bn(primary, 3, 1, act, f"{name}_cheap")
    x = L.Concatenate(name=f"{name}_concat")([primary, cheap])
    return KeepChannels(out_channels, name=f"{name}_keep")(x) if 2 * init != out_channels else x


def _ghost(x, block: Block, divisor: int, name: str):
    shortcut = x
    cin = x.shape[-1]
    x = _ghost_module(x, make_divisible(cin * block.expand, divisor), "relu", f"{name}_ghost1")
    if block.stride > 1:
        x = _dw_bn(x, block.kernel, block.stride, "linear", f"{name}_dw")
    if block.se:
        x = _squeeze_excite(x, block, cin, divisor, f"{name}_se")
    x = _ghost_module(x, block.channels, "linear", f"{name}_ghost2")
    if cin != block.channels or block.stride > 1:
        shortcut = _dw_bn(shortcut, block.kernel, block.stride, "linear", f"{name}_short_dw")
        shortcut = _conv_bn(shortcut, block.channels, 1, 1, "linear", f"{name}_short_pw")
    return x, shortcut


def _shuffle_unit(x, block: Block, name: str):
    half = block.channels // 2
    if block.stride == 1:
        left, right = SplitChannels(2, name=f"{name}_split")(x)
    else:
        left = _dw_bn(x, block.kernel, block.stride, "linear", f"{name}_b1_dw")
        left = _conv_bn(left, half, 1, 1, block.act, f"{name}_b1_pw")
        right = x
    right = _conv_bn(right, half, 1, 1, block.act, f"{name}_b2_pw1")
    right = _dw_bn(right, block.kernel, block.stride, "linear", f"{name}_b2_dw")
    right = _conv_bn(right, half, 1, 1, block.act, f"{name}_b2_pw2")
    x = L.Concatenate(name=f"{name}_concat")([left, right])
    return ChannelShuffle(2, name=f"{name}_shuffle")(x)


def _block(x, block: Block, divisor: int, name: str):
    """One block instance (repeats already expanded); returns the block's output tensor."""
    cin = x.shape[-1]
    shortcut = x
    kind = block.kind
    if kind == "conv":
        x = _conv_bn(x, block.channels, block.kernel, block.stride, block.act, f"{name}_conv")
    elif kind == "ds":
        x = _dw_bn(x, block.kernel, block.stride, block.act, f"{name}_dw")
        if block.se:
            x = _squeeze_excite(x, block, cin, divisor, f"{name}_se")
        x = _conv_bn(x, block.channels, 1, 1, block.act, f"{name}_pw")
    elif kind == "ir":
        x = _inverted_residual(x, block, divisor, name)
    elif kind == "fused":
        x = _fused(x, block, divisor, name)
    elif kind == "skip":
        if cin != block.channels or block.stride != 1:
            x = _conv_bn(x, block.channels, 1, block.stride, block.act, f"{name}_conv")
    elif kind == "ghost":
        x, shortcut = _ghost(x, block, divisor, name)
    elif kind == "shuffle":
        x = _shuffle_unit(x, block, name)
    elif kind == "maxpool":
        x = L.MaxPooling2D(block.kernel, block.stride, "same", name=f"{name}_maxpool")(x)
    elif kind == "pool":
        x = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    elif kind == "fc":
        x = L.Conv2D(block.channels, 1, name=f"{name}_fc")(x)
        x = _act(x, block.act, f"{name}_fc_act")
    else:
        raise SpecError(f"the builder has no block kind {kind!r}")
    if has_residual(block, cin):
        x = L.Add(name=f"{name}_add")([x, shortcut])
    return L.Identity(name=f"{name}_out")(x)


def build(spec: ArchSpec, num_classes: int = 1000, include_top: bool = True,
          dropout: float = 0.0, classifier_activation: str | None = "softmax",
          preprocessing: list[tf.keras.layers.Layer] | None = None,
          name: str = "edgetailor") -> tf.keras.Model:
    """A tf.keras model of ``spec`` taking float input ``[1, R, R, 3]``.

    The input is expected normalised unless ``preprocessing`` layers (e.g. Keras Applications'
    Rescaling/Normalization) are given; they run first. With ``include_top`` the output is
    ``classifier_activation`` (softmax, or logits for None) over ``num_classes``; without it the
    model ends at the head's pooled features (``[1, 1, 1, C]``).
    """
    if include_top and num_classes < 1:
        raise SpecError(f"num_classes must be >= 1 (got {num_classes})")
    inputs = L.Input((spec.resolution, spec.resolution, 3), name="image")
    x = inputs
    for layer in preprocessing or []:
        x = layer(x)
    for section, index, instance in block_instances(spec):
        x = _block(x, instance, spec.divisor, f"{section}_{index}")
    if include_top:
        x = L.Flatten(name="flatten")(x)
        if dropout > 0:
            x = L.Dropout(dropout, name="dropout")(x)
        x = L.Dense(num_classes, name="classifier")(x)
        if classifier_activation:
            x = L.Activation(classifier_activation, name="probabilities")(x)
    return tf.keras.Model(inputs, x, name=name)


def keras_macs(model: tf.keras.Model) -> int:
    """Multiply-accumulates of a built Keras model's conv and dense layers (independent check)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, L.DepthwiseConv2D):
            h, w, c = layer.output.shape[1:]
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw
        elif isinstance(layer, L.Conv2D):
            h, w, cout = layer.output.shape[1:]
            kh, kw = layer.kernel_size
            total += h * w * cout * kh * kw * layer.input.shape[-1] // layer.groups
        elif isinstance(layer, L.Dense):
            total += layer.input.shape[-1] * layer.units
    return total
