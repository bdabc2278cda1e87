"""Keras layers of the hybrid convolution-attention blocks (EdgeNeXt, EfficientFormerV2, UniNet).

Each holds exactly the parameters the layer walk counts for its step (``edgetailor.arch.layers``:
``hybrid_step_ops``) and lowers to TFLite builtins only (RESHAPE, TRANSPOSE, BATCH_MATMUL,
SOFTMAX, L2_NORMALIZATION, FULLY_CONNECTED, GATHER on constants, MUL, ADD) and to Core ML ops.
Tensors are NHWC; a head's channels are contiguous (channel = head * width + j), as the PyTorch
references lay them out, so their weights map one to one.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from edgetailor.arch.layers import POSENC_HIDDEN

_PACKAGE = "edgetailor"


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class SplitSizes(tf.keras.layers.Layer):
    """Split the channel axis into parts of the given widths (EdgeNeXt's ceil(c / scales) splits)."""

    def __init__(self, sizes, **kwargs):
        super().__init__(**kwargs)
        self.sizes = [int(size) for size in sizes]

    def call(self, inputs):
        return tf.split(inputs, self.sizes, axis=-1)

    def get_config(self):
        return {**super().get_config(), "sizes": self.sizes}


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class LayerScale(tf.keras.layers.Layer):
    """``x * gamma`` per channel; gamma starts at ``init`` (EdgeNeXt 1e-6, EfficientFormerV2 1e-5)."""

    def __init__(self, init: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.init = float(init)

    def build(self, input_shape):
        self.gamma = self.add_weight("gamma", (input_shape[-1],),
                                     initializer=tf.keras.initializers.Constant(self.init))

    def call(self, inputs):
        return inputs * self.gamma

    def get_config(self):
        return {**super().get_config(), "init": self.init}


def fourier_features(height: int, width: int, hidden: int = POSENC_HIDDEN,
                     temperature: float = 10000.0) -> np.ndarray:
    """XCiT's PositionalEncodingFourier before its projection: [H, W, 2 * hidden], y then x, each
    as (sin, cos) pairs of positions normalised to (0, 2 pi] at temperature^(2 (i // 2) / hidden)."""
    eps, scale = 1e-6, 2 * math.pi
    y = np.arange(1, height + 1, dtype=np.float64)[:, None].repeat(width, 1)
    x = np.arange(1, width + 1, dtype=np.float64)[None, :].repeat(height, 0)
    y, x = y / (height + eps) * scale, x / (width + eps) * scale
    dim_t = temperature ** (2 * (np.arange(hidden) // 2) / hidden)

    def encode(pos):
        angles = pos[..., None] / dim_t
        return np.stack([np.sin(angles[..., 0::2]), np.cos(angles[..., 1::2])], axis=-1).reshape(
            height, width, hidden)

    return np.concatenate([encode(y), encode(x)], axis=-1).astype(np.float32)


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class FourierPositions(tf.keras.layers.Layer):
    """Adds a learned 1x1 projection (with bias) of the fixed Fourier features to the input."""

    def build(self, input_shape):
        _, h, w, c = input_shape
        self.features = tf.constant(fourier_features(h, w))
        self.kernel = self.add_weight("kernel", (2 * POSENC_HIDDEN, c))
        self.bias = self.add_weight("bias", (c,), initializer="zeros")

    def call(self, inputs):
        return inputs + (tf.tensordot(self.features, self.kernel, 1) + self.bias)[None]

    def matrix_macs(self) -> int:
        h, w, c = self.input.shape[1:]
        return h * w * 2 * POSENC_HIDDEN * c


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class CrossCovarianceAttention(tf.keras.layers.Layer):
    """XCA on a q|k|v map: per head softmax(temperature * norm(q)^T norm(k)) applied to v (d x d)."""

    def __init__(self, heads: int, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads

    def build(self, input_shape):
        self.temperature = self.add_weight("temperature", (self.heads,), initializer="ones")

    def call(self, inputs):
        _, h, w, c3 = inputs.shape
        c = c3 // 3
        d, n = c // self.heads, h * w

        def heads_first(t):  # [B, H, W, c] -> [B, heads, d, N]
            return tf.transpose(tf.reshape(t, [-1, n, self.heads, d]), [0, 2, 3, 1])

        q, k, v = (heads_first(t) for t in tf.split(inputs, 3, axis=-1))
        q, k = tf.math.l2_normalize(q, axis=-1), tf.math.l2_normalize(k, axis=-1)
        attn = tf.matmul(q, k, transpose_b=True) * self.temperature[:, None, None]
        out = tf.matmul(tf.nn.softmax(attn, axis=-1), v)  # [B, heads, d, N]
        return tf.reshape(tf.transpose(out, [0, 3, 1, 2]), [-1, h, w, c])

    def matrix_macs(self) -> int:
        """q^T k and attn v: heads x (d x N) x (N x d) each."""
        h, w, c3 = self.input.shape[1:]
        d = c3 // 3 // self.heads
        return 2 * self.heads * d * d * h * w

    def get_config(self):
        return {**super().get_config(), "heads": self.heads}


def attention_bias_index(q_side: int, k_side: int) -> np.ndarray:
    """[Nq, Nk] index of each (query, key) pair's offset in the bias table (reference order)."""
    step = math.ceil(k_side / q_side)
    offsets: dict[tuple[int, int], int] = {}
    rows = []
    for qy in range(q_side):
        for qx in range(q_side):
            for ky in range(k_side):
                for kx in range(k_side):
                    rows.append(offsets.setdefault((abs(qy * step - ky), abs(qx * step - kx)), len(offsets)))
    return np.array(rows, dtype=np.int32).reshape(q_side * q_side, k_side * k_side)


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class Attention4D(tf.keras.layers.Layer):
    """EfficientFormerV2's attention on (q, k, v) maps: softmax(q k^T / sqrt(kd) + bias) v per head,
    with talking heads (a heads x heads linear map with bias) before and after the softmax."""

    def __init__(self, heads: int, talking: bool, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.talking = heads, talking

    def build(self, input_shape):
        q, k, _ = input_shape
        self.index = attention_bias_index(q[1], k[1])
        self.biases = self.add_weight("attention_biases", (self.heads, int(self.index.max()) + 1),
                                      initializer="zeros")
        if self.talking:
            self.talk = [(self.add_weight(f"talking_head{i}_kernel", (self.heads, self.heads)),
                          self.add_weight(f"talking_head{i}_bias", (self.heads,), initializer="zeros"))
                         for i in (1, 2)]

    def _mix_heads(self, attn, which: int):
        kernel, bias = self.talk[which]
        _, heads, nq, nk = attn.shape
        rows = tf.reshape(tf.transpose(attn, [0, 2, 3, 1]), [-1, heads])
        mixed = tf.reshape(tf.matmul(rows, kernel, transpose_b=True) + bias, [-1, nq, nk, heads])
        return tf.transpose(mixed, [0, 3, 1, 2])

    def call(self, inputs):
        q, k, v = inputs
        rq, rk = q.shape[1], k.shape[1]
        kd, dv = q.shape[-1] // self.heads, v.shape[-1] // self.heads
        q = tf.transpose(tf.reshape(q, [-1, rq * rq, self.heads, kd]), [0, 2, 1, 3])
        k = tf.transpose(tf.reshape(k, [-1, rk * rk, self.heads, kd]), [0, 2, 3, 1])
        v = tf.transpose(tf.reshape(v, [-1, rk * rk, self.heads, dv]), [0, 2, 1, 3])
        attn = tf.matmul(q, k) * (kd ** -0.5) + tf.gather(self.biases, self.index, axis=1)
        if self.talking:
            attn = self._mix_heads(attn, 0)
        attn = tf.nn.softmax(attn, axis=-1)
        if self.talking:
            attn = self._mix_heads(attn, 1)
        out = tf.transpose(tf.matmul(attn, v), [0, 2, 1, 3])  # [B, Nq, heads, dv]
        return tf.reshape(out, [-1, rq, rq, self.heads * dv])

    def matrix_macs(self) -> int:
        """q k^T, attn v, and the two talking-head mixes, from the layer's own shapes."""
        q, k, v = (t.shape for t in self.input)
        nq, nk = q[1] * q[2], k[1] * k[2]
        talking = 2 * nq * nk * self.heads * self.heads if self.talking else 0
        return nq * nk * q[3] + nq * nk * v[3] + talking

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "talking": self.talking}


@tf.keras.saving.register_keras_serializable(_PACKAGE)
class TokenAttention(tf.keras.layers.Layer):
    """UniNet's softmax attention per head, softmax(q k^T / sqrt(d)) v, on a q|k|v map or on
    (q map, k|v map) where the queries sit on a strided map (LocalGlobalDSM). Channels as PyTorch's
    reshape(B, N, 3 (or 2), heads, d) lays them out: q|k|v parts, each head's d contiguous."""

    def __init__(self, heads: int, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            q, kv = inputs
            k, v = tf.split(kv, 2, axis=-1)
        else:
            q, k, v = tf.split(inputs, 3, axis=-1)
        _, rows, cols, c = q.shape
        d, nq, nk = c // self.heads, rows * cols, k.shape[1] * k.shape[2]
        q = tf.transpose(tf.reshape(q, [-1, nq, self.heads, d]), [0, 2, 1, 3])
        k = tf.transpose(tf.reshape(k, [-1, nk, self.heads, d]), [0, 2, 3, 1])
        v = tf.transpose(tf.reshape(v, [-1, nk, self.heads, d]), [0, 2, 1, 3])
        attn = tf.nn.softmax(tf.matmul(q, k) * (d ** -0.5), axis=-1)
        out = tf.transpose(tf.matmul(attn, v), [0, 2, 1, 3])  # [B, Nq, heads, d]
        return tf.reshape(out, [-1, rows, cols, c])

    def matrix_macs(self) -> int:
        """q k^T and attn v: N_q x N_k x c each."""
        shapes = [t.shape for t in self.input] if isinstance(self.input, (list, tuple)) else [self.input.shape]
        q, kv = shapes[0], shapes[-1]
        c = q[3] if len(shapes) == 2 else q[3] // 3
        return 2 * q[1] * q[2] * kv[1] * kv[2] * c

    def get_config(self):
        return {**super().get_config(), "heads": self.heads}


CUSTOM_OBJECTS = {cls.__name__: cls for cls in (SplitSizes, LayerScale, FourierPositions, CrossCovarianceAttention,
                                                Attention4D, TokenAttention)}
