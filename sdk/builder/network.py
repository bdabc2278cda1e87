"""``ArchSpec -> tf.keras.Model``: the only place (with the converters) that touches TensorFlow.

The graph mirrors ``edgetailor.arch.layers.walk`` op for op, so parameter counts agree exactly:
both read each block's steps and widths from ``edgetailor.arch.blocks``.
Every block ends in an Identity layer named ``<section>_<index>_out`` (``stage3_0_out``);
inverted-residual expansions are named ``<section>_<index>_expand_act``. ``feature_info``
(pure Python, in ``edgetailor.arch.features``) lists those names by stride for detection and
segmentation heads. Padding is TF "same" everywhere; for strided depthwise convolutions it is
made explicit (ZeroPadding2D + "valid", Keras Applications' ``correct_pad``), which XNNPACK runs
faster. A spec with ``padding="symmetric"`` (weights from PyTorch) pads every strided k x k
convolution k // 2 on each side the same explicit way (at stride 1 that is what "same" does), and
its batch norms use the spec's ``bn_eps``.
"""
from __future__ import annotations

import math

import tensorflow as tf

from edgetailor.builder.keras_layers import (ChannelShuffle, HardSigmoid, HardSwish, KeepChannels, SplitChannels,
                                              TailChannels)
from edgetailor.builder import attention_layers as attention
from edgetailor.arch.blocks import CELL_KINDS, Step, block_steps
from edgetailor.arch.layers import HYBRID_STEP_OPS, block_instances, count, prev_state, size_problem
from edgetailor.arch.spec import BN_EPSILON, ArchSpec, Block, SpecError

L = tf.keras.layers
__all__ = ["BN_EPSILON", "build", "keras_macs"]


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
    if act == "gelu":  # exact (erf) GELU, as torch.nn.GELU; TFLite's builtin GELU
        return L.Activation("gelu", name=name)(x)
    raise SpecError(f"no Keras activation for {act!r}")


def _pad_for_stride(x, kernel: int, stride: int, name: str, symmetric: bool = False):
    """TF "same" padding made explicit for strided depthwise convs, as Keras Applications do; or,
    ``symmetric``, PyTorch's ``kernel // 2`` on each side (the same output size).

    "Same" this way is numerically identical to ``padding="same"``, but an explicit PAD + "valid"
    convolution lets XNNPACK fold the padding into a faster kernel (ours matched Keras'
    MobileNetV2 only with it).
    """
    if stride == 1 or kernel == 1:
        return x, "same"
    if symmetric:
        return L.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x), "valid"
    pads = []
    for size in x.shape[1:3]:
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads.append((total // 2, total - total // 2))
    return L.ZeroPadding2D(tuple(pads), name=f"{name}_pad")(x), "valid"


def _conv_bn(x, filters: int, kernel: int, stride: int, act: str, name: str, spec: ArchSpec, groups: int = 1):
    padding = "same"
    if spec.padding == "symmetric":
        x, padding = _pad_for_stride(x, kernel, stride, name, symmetric=True)
    if groups > 1:
        parts = SplitChannels(groups, name=f"{name}_split")(x)
        parts = [L.Conv2D(filters // groups, kernel, stride, padding, use_bias=False,
                          name=f"{name}_g{i}")(part) for i, part in enumerate(parts)]
        x = L.Concatenate(name=name)(parts)
    else:
        x = L.Conv2D(filters, kernel, stride, padding, use_bias=False, name=name)(x)
    x = L.BatchNormalization(epsilon=spec.bn_eps, name=f"{name}_bn")(x)
    return _act(x, act, f"{name}_act")


def _dw_bn(x, kernel: int, stride: int, act: str, name: str, spec: ArchSpec):
    x, padding = _pad_for_stride(x, kernel, stride, name, symmetric=spec.padding == "symmetric")
    x = L.DepthwiseConv2D(kernel, stride, padding, use_bias=False, name=name)(x)
    x = L.BatchNormalization(epsilon=spec.bn_eps, name=f"{name}_bn")(x)
    return _act(x, act, f"{name}_act")


def _squeeze_excite(x, step: Step, name: str):
    s = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    s = L.Conv2D(step.channels, 1, name=f"{name}_reduce")(s)
    s = _act(s, step.act, f"{name}_reduce_act")
    s = L.Conv2D(x.shape[-1], 1, name=f"{name}_expand")(s)
    s = _act(s, step.gate, f"{name}_gate")
    return L.Multiply(name=f"{name}_mul")([x, s])


def _step(step: Step, inputs: list, name: str, spec: ArchSpec) -> list:
    """The Keras layers of one step on ``inputs`` (the last is the running tensor); its outputs."""
    x = inputs[-1]
    if step.op == "conv" and step.bn:
        return [_conv_bn(x, step.channels, step.kernel, step.stride, step.act, name, spec, step.groups)]
    if step.op == "conv":  # fc: a bias and no BN; 1x1 on 1x1, so Keras' default "valid" padding
        return [_act(L.Conv2D(step.channels, step.kernel, step.stride, name=name)(x), step.act,
                     f"{name}_act")]
    if step.op == "dwconv" and not step.bn:  # a bias and no BN (EdgeNeXt, EfficientFormerV2's LGQuery)
        x, padding = _pad_for_stride(x, step.kernel, step.stride, name, symmetric=spec.padding == "symmetric")
        return [_act(L.DepthwiseConv2D(step.kernel, step.stride, padding, name=name)(x), step.act, f"{name}_act")]
    if step.op == "dwconv":
        return [_dw_bn(x, step.kernel, step.stride, step.act, name, spec)]
    if step.op == "bn":  # BatchNorm alone (UniNet's norm on a block's input)
        return [L.BatchNormalization(epsilon=spec.bn_eps, name=name)(x)]
    if step.op in HYBRID_STEP_OPS:
        return [_hybrid_step(step, inputs, name)]
    if step.op == "se":
        return [_squeeze_excite(x, step, name)]
    if step.op == "shuffle":
        return [ChannelShuffle(step.groups, name=name)(x)]
    if step.op == "split":
        return list(SplitChannels(step.groups, name=name)(x))
    if step.op == "keep":
        return [KeepChannels(step.channels, name=name)(x)]
    if step.op == "tail":
        return [TailChannels(step.channels, name=name)(x)]
    if step.op == "sep":  # NASNet: dw k x k without bias or BN, then 1x1 + BN
        x, padding = _pad_for_stride(x, step.kernel, step.stride, f"{name}_dw",
                                     symmetric=spec.padding == "symmetric")
        x = L.DepthwiseConv2D(step.kernel, step.stride, padding, use_bias=False, name=f"{name}_dw")(x)
        return [_conv_bn(x, step.channels, 1, 1, "linear", name, spec)]
    if step.op == "shift":  # factorized reduction's second path: x[1:, 1:] padded back with zeros
        x = L.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(x)
        return [L.Cropping2D(((1, 0), (1, 0)), name=name)(x)]
    if step.op == "concat":
        return [L.Concatenate(name=name)(inputs)]
    if step.op == "add":
        return [L.Add(name=name)(inputs)]
    if step.op == "maxpool":
        if spec.padding == "symmetric" and step.stride > 1:  # PyTorch pads max pooling with -inf
            raise SpecError(f"{name}: max pooling has no symmetric padding here")
        return [L.MaxPooling2D(step.kernel, step.stride, "same", name=name)(x)]
    if step.op == "pool":
        return [L.GlobalAveragePooling2D(keepdims=True, name=name)(x)]
    raise SpecError(f"the builder has no step op {step.op!r}")


# EdgeNeXt's layer-scale start (conv_encoder.py / sdta_encoder.py layer_scale_init_value=1e-6 @e7dd814);
# EfficientFormerV2 starts at 1e-5 (efficientformer_v2.py @bdde63a). One value here: both make a block
# start near the identity, and the spec (not the initialiser) is what the grammar records.
LAYER_SCALE_INIT = 1e-6
LAYER_NORM_EPSILON = 1e-6  # EdgeNeXt's LayerNorm(eps=1e-6)


def _hybrid_step(step: Step, inputs: list, name: str):
    """One hybrid (attention-block) step; its output tensor."""
    x = inputs[-1]
    if step.op == "ln":
        return L.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=name)(x)
    if step.op == "scale":
        return attention.LayerScale(LAYER_SCALE_INIT, name=name)(x)
    if step.op == "act":
        return _act(x, step.act, name)
    if step.op == "avgpool":
        return L.AveragePooling2D(step.kernel, step.stride, "same", name=name)(x)
    if step.op == "upsample":
        return L.UpSampling2D(step.stride, interpolation="bilinear", name=name)(x)
    if step.op == "posenc":
        return attention.FourierPositions(name=name)(x)
    if step.op == "splitdw":  # chained dw 3x3 (bias) on all splits but the last, then concat
        widths = [min(step.channels, x.shape[-1] - i * step.channels) for i in range(step.groups)]
        parts = list(attention.SplitSizes(widths, name=f"{name}_split")(x))
        out, running = [], None
        for i, part in enumerate(parts[:-1]):
            running = part if i == 0 else L.Add(name=f"{name}_add{i}")([running, part])
            running = L.DepthwiseConv2D(step.kernel, 1, "same", name=f"{name}_dw{i}")(running)
            out.append(running)
        return L.Concatenate(name=name)(out + parts[-1:])
    if step.op == "xca":
        return attention.CrossCovarianceAttention(step.groups, name=name)(x)
    if step.op == "mhsa":
        return attention.TokenAttention(step.groups, name=name)(inputs if len(inputs) > 1 else x)
    return attention.Attention4D(step.groups, talking=step.op == "attend", name=name)(inputs)


def _block(x, block: Block, spec: ArchSpec, name: str, prev=None):
    """One block instance (repeats already expanded); returns the block's output tensor.
    ``prev``: a NASNet cell's second input (the previous cell's input), if there is one."""
    tensors = {"x": x, "in": x, "prev": x if prev is None else prev}
    state = None if prev is None else prev_state(tuple(prev.shape[1:]), tuple(x.shape[1:]))
    for step in block_steps(block, x.shape[-1], spec.divisor, state):
        outputs = _step(step, [tensors[i] for i in step.inputs], f"{name}_{step.name}", spec)
        tensors.update(zip(step.outputs, outputs, strict=True))
    return L.Identity(name=f"{name}_out")(tensors["x"])


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
    too_large = size_problem(count(spec, num_classes if include_top else None)[0])
    if too_large:  # refused before Keras allocates the weights (and runs out of memory)
        raise SpecError(f"cannot build {name}: {too_large}")
    inputs = L.Input((spec.resolution, spec.resolution, 3), name="image")
    x = inputs
    for layer in preprocessing or []:
        x = layer(x)
    prev = None  # as in the layer walk: the previous block's input, when that block was a cell
    for section, index, instance in block_instances(spec):
        cell = instance.kind in CELL_KINDS
        block_in = x
        x = _block(x, instance, spec, f"{section}_{index}", prev if cell else None)
        prev = block_in if cell else None
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
        elif hasattr(layer, "matrix_macs"):  # attention's matrix products (attention_layers)
            total += layer.matrix_macs()
    return total
