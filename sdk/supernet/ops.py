"""Elastic layers: weights held at their largest size, sliced (kernels also transformed) per sub-network.

A sub-network's choices reach these layers as indices that are either Python ints — the graph is
then exactly the extracted model's, static shapes and all — or int32 scalar tensors, so that one
traced training step serves every sub-network (channel counts become dynamic, the kernel sizes are
zero-padded to the largest and one is picked, a skipped layer is a ``tf.cond``).

Padding and batch norm epsilon follow the space's convention (``Space.padding``, ``Space.bn_eps``),
as the builder does for the extracted model: TF "same" and 1e-3 by default; for Once-for-All's
imported weights PyTorch's symmetric ``k // 2`` and its 1e-5.

Following Once-for-All (``ofa/imagenet_classification/elastic_nn/modules/dynamic_op.py`` at
mit-han-lab/once-for-all@f03b2673db313b9167e2a1c2b7a5cad540cc1313): a smaller kernel is the centre
of the next larger one times a learned matrix per layer (7x7 -> 5x5 -> 3x3), a smaller expansion
takes the first channels, and batch norm slices its parameters. Batch norm here keeps no moving
statistics while training: each sub-network gets its own by recalibration (``evaluate``), as
Once-for-All does before every evaluation, and a shared running average would fit none of them.
"""
from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np
import tensorflow as tf

from edgetailor.arch.blocks import Step
from edgetailor.builder.keras_layers import HardSigmoid, HardSwish
from edgetailor.arch.spec import BN_EPSILON
from edgetailor.errors import SupernetError

Index = Union[int, tf.Tensor]  # a Python int (static) or an int32 scalar tensor (dynamic)


def take(table: tuple[int, ...], index: Index):
    """``table[index]`` for a static or a dynamic index (static whenever the table is constant)."""
    if len(set(table)) == 1:
        return table[0]
    if isinstance(index, (int, np.integer)):
        return table[int(index)]
    return tf.gather(tf.constant(table, tf.int32), index)


def _first(value, n, axis: int = 0):
    """The first ``n`` entries of ``value`` along ``axis`` (no slice op when that is all of it)."""
    if isinstance(n, (int, np.integer)) and n == value.shape[axis]:
        return value
    return value[(slice(None),) * axis + (slice(None, n),)]


def activation(name: str) -> Callable:
    """The builder's activation for a step's ``act``/``gate`` name (same ops, same numerics)."""
    layers = {"relu": lambda: tf.keras.layers.ReLU(), "relu6": lambda: tf.keras.layers.ReLU(6.0),
              "hswish": HardSwish, "hsigmoid": HardSigmoid, "swish": lambda: tf.keras.layers.Activation("swish"),
              "sigmoid": lambda: tf.keras.layers.Activation("sigmoid")}
    if name == "linear":
        return tf.identity
    if name not in layers:
        raise SupernetError(f"the supernet has no activation {name!r}")
    return layers[name]()


def _padded(x, kernel: int, stride: int, symmetric: bool):
    """``x`` and the padding mode for a k x k convolution: TF "same", or with ``symmetric`` PyTorch's
    ``kernel // 2`` zeros on each side (different from "same" only for strided convolutions)."""
    if not symmetric or stride == 1 or kernel == 1:
        return x, "SAME"
    p = kernel // 2
    return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]), "VALID"


def _he_fout(fan_out: int):
    """Once-for-All's ``he_fout`` initialisation: normal, std sqrt(2 / (k * k * out channels))
    (``ofa/utils/my_modules.py`` ``init_models``, same commit as above)."""
    return tf.random_normal_initializer(0.0, math.sqrt(2.0 / fan_out))


class _Norm(tf.keras.layers.Layer):
    """Batch norm over the first ``n`` of ``channels`` (gamma/beta trained, moving stats recalibrated)."""

    def __init__(self, channels: int, epsilon: float = BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.gamma = self.add_weight("bn_gamma", [channels], initializer="ones")
        self.beta = self.add_weight("bn_beta", [channels], initializer="zeros")
        self.moving_mean = self.add_weight("moving_mean", [channels], initializer="zeros", trainable=False)
        self.moving_variance = self.add_weight("moving_variance", [channels], initializer="ones",
                                               trainable=False)

    def call(self, x, n, training=False):
        # one fused op, as Keras' BatchNormalization runs it: fewer ops to trace and to run eagerly
        if training:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, _first(self.gamma, n), _first(self.beta, n),
                                                       epsilon=self.epsilon, is_training=True)
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, _first(self.gamma, n), _first(self.beta, n), _first(self.moving_mean, n),
                _first(self.moving_variance, n), epsilon=self.epsilon, is_training=False)
        return y

    def arrays(self, n: int) -> list[np.ndarray]:
        """Keras ``BatchNormalization`` weight order: gamma, beta, moving mean, moving variance."""
        return [v[:n].numpy() for v in (self.gamma, self.beta, self.moving_mean, self.moving_variance)]

    def permute(self, order) -> None:
        for variable in (self.gamma, self.beta, self.moving_mean, self.moving_variance):
            variable.assign(tf.gather(variable, order))


class ElasticConv(tf.keras.layers.Layer):
    """k x k convolution on the first ``n_in`` input channels to the first ``n_out`` outputs,
    then batch norm (or a bias, for the head's ``fc``) and the activation."""

    def __init__(self, step: Step, in_max: int, out_max: int, symmetric: bool = False,
                 bn_eps: float = BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.stride, self.use_bn, self.symmetric = step.stride, step.bn, symmetric
        k = step.kernel
        self.kernel = self.add_weight("kernel", [k, k, in_max, out_max],
                                      initializer=_he_fout(k * k * out_max))
        self.bias = None if step.bn else self.add_weight("bias", [out_max], initializer="zeros")
        self.norm = _Norm(out_max, bn_eps, name="bn") if step.bn else None
        self.act = activation(step.act)

    def call(self, x, n_in, n_out, training=False):
        x, padding = _padded(x, self.kernel.shape[0], self.stride, self.symmetric)
        y = tf.nn.conv2d(x, _first(_first(self.kernel, n_in, 2), n_out, 3), self.stride, padding)
        y = self.norm(y, n_out, training=training) if self.use_bn else tf.nn.bias_add(y, _first(self.bias, n_out))
        return self.act(y)

    def permute_out(self, order) -> None:
        self.kernel.assign(tf.gather(self.kernel, order, axis=3))
        self.norm.permute(order)

    def permute_in(self, order) -> None:
        self.kernel.assign(tf.gather(self.kernel, order, axis=2))

    def arrays(self, n_in: int, n_out: int) -> dict[str, list[np.ndarray]]:
        """Weights for the builder's layers: ``""`` the conv, ``"_bn"`` its batch norm."""
        kernel = self.kernel[:, :, :n_in, :n_out].numpy()
        if not self.use_bn:
            return {"": [kernel, self.bias[:n_out].numpy()]}
        return {"": [kernel], "_bn": self.norm.arrays(n_out)}


class ElasticDepthwise(tf.keras.layers.Layer):
    """Depthwise k x k on the first ``n`` channels, k from ``kernels`` (ascending), + BN + act."""

    def __init__(self, step: Step, kernels: tuple[int, ...], channels: int, symmetric: bool = False,
                 bn_eps: float = BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.stride, self.kernels, self.symmetric = step.stride, kernels, symmetric
        big = kernels[-1]
        # PyTorch counts a depthwise conv's out channels as ``channels``: he_fout's fan-out is k*k*C
        self.kernel = self.add_weight("kernel", [big, big, channels, 1],
                                      initializer=_he_fout(big * big * channels))
        # one matrix per step down, identity at first: Once-for-All's "%dto%d_matrix" (dynamic_op.py)
        self.transforms = [self.add_weight(f"transform_{kernels[i + 1]}to{kernels[i]}",
                                           [kernels[i] ** 2, kernels[i] ** 2], initializer="identity")
                           for i in range(len(kernels) - 1)]
        self.norm = _Norm(channels, bn_eps, name="bn")
        self.act = activation(step.act)

    def filter(self, index: int, n):
        """The ``kernels[index]`` filter of the first ``n`` channels, ``[k, k, n, 1]``."""
        w = _first(self.kernel, n, 2)
        for i in range(len(self.kernels) - 1, index, -1):
            small = self.kernels[i - 1]
            start = (self.kernels[i] - small) // 2
            centre = tf.transpose(w[start:start + small, start:start + small, :, 0], [2, 0, 1])
            # row-major (h, w) per channel times M^T: Once-for-All's F.linear on the same layout
            flat = tf.matmul(tf.reshape(centre, [-1, small * small]), self.transforms[i - 1], transpose_b=True)
            w = tf.transpose(tf.reshape(flat, [-1, small, small]), [1, 2, 0])[..., tf.newaxis]
        return w

    def call(self, x, kernel_index: Index, n, training=False):
        if isinstance(kernel_index, (int, np.integer)):
            weights = self.filter(int(kernel_index), n)
        else:  # every size zero-padded to the largest, one picked: no branch to trace per size
            big = self.kernels[-1]
            weights = tf.gather(tf.stack([tf.pad(self.filter(i, n), [[(big - k) // 2] * 2] * 2 + [[0, 0]] * 2)
                                          for i, k in enumerate(self.kernels)]), kernel_index)
        # a centred, zero-padded kernel under symmetric padding of its padded size: the same output
        x, padding = _padded(x, weights.shape[0], self.stride, self.symmetric)
        y = tf.nn.depthwise_conv2d(x, weights, [1, self.stride, self.stride, 1], padding)
        return self.act(self.norm(y, n, training=training))

    def arrays(self, kernel_index: int, n: int) -> dict[str, list[np.ndarray]]:
        return {"": [self.filter(kernel_index, n).numpy()], "_bn": self.norm.arrays(n)}

    def permute(self, order) -> None:
        self.kernel.assign(tf.gather(self.kernel, order, axis=2))
        self.norm.permute(order)


class ElasticSE(tf.keras.layers.Layer):
    """Squeeze-excite on the first ``n`` channels through the first ``s`` squeeze channels."""

    def __init__(self, step: Step, channels: int, squeeze: int, **kwargs):
        super().__init__(**kwargs)
        self.reduce_kernel = self.add_weight("reduce_kernel", [1, 1, channels, squeeze],
                                             initializer=_he_fout(squeeze))
        self.reduce_bias = self.add_weight("reduce_bias", [squeeze], initializer="zeros")
        self.expand_kernel = self.add_weight("expand_kernel", [1, 1, squeeze, channels],
                                             initializer=_he_fout(channels))
        self.expand_bias = self.add_weight("expand_bias", [channels], initializer="zeros")
        self.act, self.gate = activation(step.act), activation(step.gate)

    def call(self, x, n, s):
        y = tf.reduce_mean(x, [1, 2], keepdims=True)
        y = self.act(tf.nn.bias_add(tf.nn.conv2d(y, self.reduce_kernel[:, :, :n, :s], 1, "SAME"),
                                    self.reduce_bias[:s]))
        y = self.gate(tf.nn.bias_add(tf.nn.conv2d(y, self.expand_kernel[:, :, :s, :n], 1, "SAME"),
                                     self.expand_bias[:n]))
        return x * y

    def arrays(self, n: int, s: int) -> dict[str, list[np.ndarray]]:
        return {"_reduce": [self.reduce_kernel[:, :, :n, :s].numpy(), self.reduce_bias[:s].numpy()],
                "_expand": [self.expand_kernel[:, :, :s, :n].numpy(), self.expand_bias[:n].numpy()]}

    def permute(self, order) -> None:
        """Reorder the excited channels, then the squeeze channels by their own L1 importance."""
        self.reduce_kernel.assign(tf.gather(self.reduce_kernel, order, axis=2))
        self.expand_kernel.assign(tf.gather(self.expand_kernel, order, axis=3))
        self.expand_bias.assign(tf.gather(self.expand_bias, order))
        importance = tf.reduce_sum(tf.abs(self.expand_kernel), axis=[0, 1, 3])
        inner = tf.argsort(importance, direction="DESCENDING", stable=True)
        self.reduce_kernel.assign(tf.gather(self.reduce_kernel, inner, axis=3))
        self.reduce_bias.assign(tf.gather(self.reduce_bias, inner))
        self.expand_kernel.assign(tf.gather(self.expand_kernel, inner, axis=2))
