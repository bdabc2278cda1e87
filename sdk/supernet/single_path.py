"""Single-Path NAS (Stamoulis et al. 2019): one superkernel per layer, its choices learned thresholds.

Reference: ``nas-search/superkernel.py`` ``DepthwiseConv2DMasked``, ``search_main.py`` and
``nas_utils.py`` at dstamoulis/single-path-nas@21c1f3e9c790e591749c0fb861bff3737b6d5fc7.

Each layer slot of the supernet runs once, at its largest kernel and expansion (a 5x5, e6
superkernel in the paper's space). Its depthwise filter is the smallest kernel plus each larger
ring (5x5 minus its inner 3x3) times an indicator ``1[||ring|| > t_k]``; its expanded channels are
the smallest expansion's plus each further group (e3's half, then e6's other half) times
``1[||group of the decided kernel|| > t_e]``, and a layer that may be skipped keeps its whole
residual branch only while ``1[||first group|| > t_skip]`` (the paper's ``d50c``). The indicators
are hard in the forward pass and pass the sigmoid's gradient backward (``Indicator``: straight
through), so the thresholds ``t`` — initialised at 0, every indicator on — learn from the loss.

Runtime model: per slot the profile's latency of each (kernel, expand) op (``single_path_ops.tables``,
the device profile's own per-slot table), weighted by the decided kernel and expansion and the
skip indicator: at any one-hot decision it equals ``profile.predict`` of the decoded spec. The
paper's ``runtime`` scales the 5x5 figures by R(3x3)/R(5x5) of the e6 op; that ratio rule and this
table agree whenever kernel and expansion costs separate, and the table is exact when they do not.

Loss: CE + lambda * 1e3 * log(max(R, budget)) with lambda 0.020 (``search_main.py``: ``runtime_lambda
* 1e3 * tf.log(runtime_val)``; the README's Pixel 1 search runs ``--runtime_lambda_val=0.020``). The
paper has no budget — it sweeps lambda; here the term stops pulling once the runtime is under the
request's budget, so a search lands near it. As in ``search_main.py`` the first 6255 of 10008 steps
(62.5 %) are a warm-up without the runtime term, with every indicator dropped out at keep probability
0.6 (``nas_utils.build_dropout_rate``: ``tf.nn.dropout``'s TF1 ``keep_prob`` argument), and RMSProp
(decay 0.9, momentum 0.9, epsilon 1e-3: ``nas_utils.build_optimizer``) trains weights and thresholds
together. Its learning rate of 0.016 per 256 images (``base_learning_rate``) moves a threshold too
little in a proxy run of a few hundred steps; the default here, 0.01 per step, was chosen at proxy
scale (README: the shapes data at 32 px). Differences: a skipped layer here is exactly the identity
(the reference zeroes the depthwise kernel, so batch norm's offsets still pass through the projection),
the kernel-transform matrices of Once-for-All's elastic kernels stay the identity (frozen), so
the inner 3x3 is the superkernel's centre as in the paper, and a threshold compares a part's norm per
weight (``rms``: ||part|| / sqrt(size)), not its norm: the same rule with thresholds scaled by a
constant, but the indicator's sigmoid gradient is taken at norm - t, and with norms near 10 after
the warm-up (measured at proxy scale) sigmoid'(10) ~ 5e-5 under RMSProp's epsilon of 1e-3 moved no
threshold more than 0.5 in 250 steps; per weight, the norms sit near 0.3-1 where the gradient acts.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from edgetailor.errors import SearchError
from edgetailor.supernet import searches
from edgetailor.supernet.network import Supernet
from edgetailor.supernet.single_path_ops import (Decision, Tables, classify, masked_call, nested_mask,
                                                 padded_filter, run_fixed, slots)
from edgetailor.supernet.single_path_run import search

# settings; the reference is dstamoulis/single-path-nas@21c1f3e9c790e591749c0fb861bff3737b6d5fc7
DEFAULTS = {
    "lambda": 0.020,            # nas-search/README.md: the Pixel 1 search's ``--runtime_lambda_val``
    "warmup": 6255 / 10008,     # search_main.py ``warmup_steps = 6255`` of ``train_steps`` 10008
    "learning_rate": 0.01,      # per step; the reference's 0.016 per 256 images is too slow at proxy scale
    "keep": 0.6,                # nas_utils.py ``build_dropout_rate``: warm-up ``keep_prob`` of the indicators
}
RUNTIME_SCALE = 1e3  # search_main.py: ``runtime_lambda * 1e3 * tf.log(runtime_val)``
L2 = 1e-5            # search_main.py ``weight_decay``, on every variable but batch norm's


def rms(part) -> tf.Tensor:
    """A kernel part's norm per weight, ||part|| / sqrt(size): the reference thresholds ||part||."""
    return tf.norm(part) / math.sqrt(float(np.prod(part.shape)))


def indicator(x):
    """1[x >= 0] forward, the sigmoid's gradient backward (superkernel.py ``Indicator``)."""
    return tf.stop_gradient(tf.cast(x >= 0, x.dtype) - tf.sigmoid(x)) + tf.sigmoid(x)


class _Module(tf.Module):
    def __init__(self, net: Supernet, thresholds: list[tf.Variable]):
        super().__init__(name="single_path")
        self.net, self.thresholds = net, thresholds


class SinglePath:
    """The superkernel network over ``net`` with one threshold per ring, channel group and skip."""

    def __init__(self, net: Supernet, table: Tables, options: dict):
        self.net, self.table, self.options = net, table, options
        self.slots = slots(net)
        self.thresholds = []
        for i, slot in enumerate(self.slots):
            if slot.skippable and slot.block.steps[-1].op != "add":
                raise SearchError(f"layer {i + 1} may be skipped but has no residual")
            count = (len(slot.kernels) - 1) + (len(slot.widths) - 1) + int(slot.skippable)
            self.thresholds.append(tf.Variable(tf.zeros([count]), name=f"thresholds_{i}"))
        self.module = _Module(net, self.thresholds)
        # read by the traced step as variables: the warm-up's end does not retrace it
        self.lam = tf.Variable(0.0, trainable=False, name="runtime_lambda")
        self.keep = tf.Variable(options["keep"], trainable=False, name="indicator_keep")
        self.warmup = True

    def variables(self) -> list:
        frozen = {id(t) for slot in self.slots for t in slot.block.layers_by_step[
            slot.block.steps[slot.block.dw].name].transforms}
        return [v for v in self.net.trainable_variables if id(v) not in frozen] + self.thresholds

    def optimizer(self):
        return tf.keras.optimizers.RMSprop(self.options["learning_rate"], rho=0.9, momentum=0.9, epsilon=1e-3)

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        self.warmup = epoch < round(self.options["warmup"] * epochs)
        self.lam.assign(0.0 if self.warmup else self.options["lambda"])
        self.keep.assign(self.options["keep"] if self.warmup else 1.0)

    def _decide(self, i: int, keep):
        """Slot ``i``'s superkernel filter, channel and squeeze masks, skip indicator, and the
        probabilities (0/1) of its kernel and expand indices."""
        slot, t = self.slots[i], self.thresholds[i]
        n_k, n_e = len(slot.kernels), len(slot.widths)

        def hard(x):
            d = indicator(x)
            if keep is not None:  # warm-up: tf.nn.dropout(indicator, keep_prob) as the reference runs it (1: off)
                d = d * tf.cast(tf.random.uniform([]) < keep, d.dtype) / keep
            return d

        filters = [padded_filter(slot.block, k, slot.widths[-1]) for k in range(n_k)]
        w, on, kernel_on = filters[0], tf.constant(1.0), []
        for r in range(1, n_k):
            ring = filters[r] - filters[r - 1]
            on = on * hard(rms(ring) - t[r - 1])
            w, kernel_on = w + on * ring, kernel_on + [on]
        groups = [w[:, :, :slot.widths[0]]] + [w[:, :, slot.widths[g - 1]:slot.widths[g]] for g in range(1, n_e)]
        skip = hard(rms(groups[0]) - t[-1]) if slot.skippable else tf.constant(1.0)
        on, expand_on = tf.constant(1.0), []
        for g in range(1, n_e):
            on = on * hard(rms(groups[g]) - t[n_k - 1 + g - 1])
            expand_on.append(on)
        squeeze = nested_mask(slot.squeezes, expand_on) if slot.squeezes else None
        return w, nested_mask(slot.widths, expand_on), squeeze, skip, _probabilities(kernel_on), \
            _probabilities(expand_on)

    def forward(self, images, training: bool):
        keep = self.keep if training else None
        x = run_fixed(self.net, images, self.net.stem, training)
        expected = tf.constant(self.table.fixed_ms, tf.float32)
        for i, slot in enumerate(self.slots):
            w, mask, squeeze, skip, p_k, p_e = self._decide(i, keep)
            branch, shortcut = masked_call(slot.block, x, w, len(slot.widths) - 1, mask, squeeze, training)
            x = branch if shortcut is None else shortcut + skip * branch
            cost = tf.constant(self.table.latency_ms[i, :len(slot.kernels), :len(slot.widths)], tf.float32)
            expected = expected + skip * tf.tensordot(p_k, tf.linalg.matvec(cost, p_e), 1)
        logits = classify(self.net, run_fixed(self.net, x, self.net.head, training), training)
        return logits, expected

    def latency_loss(self, expected_ms):
        l2 = tf.add_n([tf.nn.l2_loss(v) for v in self.net.trainable_variables if "bn_" not in v.name])
        runtime = tf.math.log(tf.maximum(expected_ms, self.options["budget_ms"]))
        return self.lam * RUNTIME_SCALE * runtime + L2 * l2

    def decision(self) -> Decision:
        kept, kernels, expands = [], [], []
        for i in range(len(self.slots)):
            _, _, _, skip, p_k, p_e = self._decide(i, None)
            kept.append(bool(skip.numpy() > 0.5))
            kernels.append(int(np.argmax(p_k.numpy())))
            expands.append(int(np.argmax(p_e.numpy())))
        return Decision(tuple(kept), tuple(kernels), tuple(expands))

    def end_epoch(self, epoch: int, epochs: int) -> dict:
        return {"lambda": float(self.lam.numpy()), "warmup": self.warmup}

    def step_key(self) -> tuple:
        return ()

    def forward_macs(self) -> int:
        """The superkernel always runs at the largest kernel and expansion."""
        return int(self.table.fixed_macs + self.table.macs[:, -1, -1].sum())


def _probabilities(on: list) -> tf.Tensor:
    """One-hot over sizes from nested 0/1 decisions: P(size j) = on_j - on_{j+1}, on_0 = 1."""
    chain = [tf.constant(1.0)] + list(on) + [tf.constant(0.0)]
    return tf.stack([chain[j] - chain[j + 1] for j in range(len(chain) - 1)])


def describe(options: dict) -> tuple[str, ...]:
    return (f"Single-Path NAS: lambda {options['lambda']:g} on 1e3 * log(max(R, budget)), warm-up "
            f"{options['warmup']:.3f} of the epochs (indicator keep {options['keep']:g}), RMSProp at "
            f"{options['learning_rate']:g}",)


def run_single_path(request: searches.Request) -> searches.Result:
    """Single-Path NAS on ``request.space`` (``searches`` contract)."""
    return search(request, SinglePath, DEFAULTS, describe)
