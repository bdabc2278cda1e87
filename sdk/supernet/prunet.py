"""PruNet (Kierat et al. 2022, "Tiered Pruning for Efficient Differentiable Inference-Aware Neural
Architecture Search", arXiv:2209.11785): DNAS whose supernet shrinks while it searches.

No public code of the paper could be found (searched GitHub code and issues for PruNet/Prunode);
this follows the paper's description (abstract and Sec. 3 as summarised there), and the rules and
constants the text does not give are this module's own, named as such below.

- Stochastic layers (FBNet's DNAS, Wu et al. 2019): every layer slot mixes its candidate blocks —
  one per kernel size, plus the skip where a layer may be skipped — with Gumbel-softmax weights of
  learned logits; the expected latency is the weighted sum of the profile's per-op table
  (``single_path_ops.tables``), exact at a one-hot choice. Temperature 5.0, times 0.956
  (exp(-0.045)) per epoch, and a weights-only warm-up of 10 of 90 epochs: FBNet Sec. 4.1.
- Prunode (Sec. 3.1): a candidate block searches its inner hidden (expansion) width with two paths
  only — the adjacent widths ``lo < hi`` around a focal point — mixed by their own Gumbel-softmax.
  Both paths are one pass at width ``hi`` whose channels past ``lo`` are scaled by the ``hi`` path's
  weight (a projection is linear in its input channels), so memory and compute do not grow with the
  number of widths. Own rule: after an epoch, when one path's probability exceeds ``move`` (0.6) the
  pair shifts one width towards it (its logits reset), until it reaches the narrowest or widest.
- Pruning blocks within a stochastic layer (Sec. 3.2): own rule: after each epoch past the warm-up,
  a candidate whose probability among the layer's remaining candidates falls below ``block`` (0.1)
  is removed for good — it is no longer computed — keeping at least one block per layer.
- Pruning stochastic layers (Sec. 3.3): own rule: a layer whose skip candidate's probability exceeds
  ``layer`` (0.6) is removed (the identity from then on).

Search cost: the per-epoch report carries the MACs one image costs in a search step (the forward
pass over every remaining candidate at its Prunode's ``hi`` width); ``{"pruning": False}`` runs the
same search with neither kind of pruning, to compare wall time and MACs (benchmarks/single_path_prunet.py).

Loss: CE + lambda * 1e3 * log(max(R, budget)) as ``single_path`` (its constants and the budget floor;
the paper's own loss constants are not in the text available here). Weights: SGD momentum 0.9 at 0.1
(FBNet Sec. 4.1); architecture logits: Adam at 0.01 (FBNet Sec. 4.1).
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from edgetailor.errors import SearchError
from edgetailor.supernet import searches
from edgetailor.supernet.network import Supernet
from edgetailor.supernet.single_path_ops import (Decision, Tables, classify, masked_call, padded_filter,
                                                 prefix_mask, run_fixed, slots)
from edgetailor.supernet.single_path_run import search

DEFAULTS = {
    "pruning": True,                          # off: the same search without Sec. 3.2/3.3's pruning
    "lambda": 0.020,                          # single_path's (nas-search/README.md, single-path-nas@21c1f3e9)
    "warmup": 10 / 90,                        # FBNet Sec. 4.1: 10 of 90 epochs train the weights only
    "temperature": 5.0,                       # FBNet Sec. 4.1: initial Gumbel-softmax temperature
    "temperature_decay": math.exp(-0.045),    # FBNet Sec. 4.1: annealed by exp(-0.045) per epoch
    "block": 0.1,                             # own: prune a block below this probability (paper gives none here)
    "layer": 0.6,                             # own: prune a layer whose skip is above this probability
    "move": 0.6,                              # own: a Prunode moves towards a path above this probability
    "learning_rate": 0.1,                     # FBNet Sec. 4.1: SGD for the weights
    "arch_learning_rate": 0.01,               # FBNet Sec. 4.1: Adam for the architecture logits
}
RUNTIME_SCALE = 1e3  # as single_path (search_main.py ``runtime_lambda * 1e3 * tf.log(runtime_val)``)


class _Split(tf.Module):
    """SGD for the network's weights, Adam for the architecture logits (FBNet Sec. 4.1)."""

    def __init__(self, arch_ids: set, learning_rate: float, arch_learning_rate: float):
        super().__init__(name="prunet_optimizer")
        self.arch_ids = arch_ids
        self.weights = tf.keras.optimizers.SGD(learning_rate, momentum=0.9)
        self.arch = tf.keras.optimizers.Adam(arch_learning_rate)

    def _split(self, variables):
        arch = [v for v in variables if id(v) in self.arch_ids]
        return [v for v in variables if id(v) not in self.arch_ids], arch

    def build(self, variables) -> None:
        weights, arch = self._split(variables)
        self.weights.build(weights)
        self.arch.build(arch)

    def apply_gradients(self, pairs) -> None:
        pairs = list(pairs)
        self.weights.apply_gradients([(g, v) for g, v in pairs if id(v) not in self.arch_ids])
        self.arch.apply_gradients([(g, v) for g, v in pairs if id(v) in self.arch_ids])


class _Module(tf.Module):
    def __init__(self, net, logits, prunode_logits, alive, focal, temperature):
        super().__init__(name="prunet")
        self.net, self.logits, self.prunode_logits = net, logits, prunode_logits
        self.alive, self.focal, self.temperature = alive, focal, temperature


def gumbel_softmax(logits, temperature):
    """Soft Gumbel-softmax sample (FBNet eq. 5)."""
    u = tf.random.uniform(tf.shape(logits), 1e-6, 1.0 - 1e-6)
    return tf.nn.softmax((logits - tf.math.log(-tf.math.log(u))) / temperature)


class PruNet:
    """Stochastic layers of Prunode blocks over ``net``; per slot the candidates are its kernels, then skip."""

    def __init__(self, net: Supernet, table: Tables, options: dict):
        self.net, self.table, self.options = net, table, options
        self.slots = slots(net)
        for i, slot in enumerate(self.slots):
            if slot.skippable and slot.block.steps[-1].op != "add":
                raise SearchError(f"layer {i + 1} may be skipped but has no residual")
        n = [len(s.kernels) + int(s.skippable) for s in self.slots]
        self.logits = [tf.Variable(tf.zeros([c]), name=f"logits_{i}") for i, c in enumerate(n)]
        self.prunode_logits = [tf.Variable(tf.zeros([len(s.kernels), 2]), name=f"prunode_{i}")
                               for i, s in enumerate(self.slots)]
        # what is left (1) or pruned (0) per candidate, the last entry of a skippable slot being the layer
        # itself; and each Prunode's pair (lo = focal, hi = focal + 1), starting at the widest
        self.alive = [tf.Variable(tf.ones([c + int(s.skippable)]), trainable=False, name=f"alive_{i}")
                      for i, (c, s) in enumerate(zip(n, self.slots))]
        self.focal = [tf.Variable(tf.fill([len(s.kernels)], max(len(s.widths) - 2, 0)), trainable=False,
                                  name=f"focal_{i}") for i, s in enumerate(self.slots)]
        self.temperature = tf.Variable(options["temperature"], trainable=False, name="temperature")
        self.lam = tf.Variable(0.0, trainable=False, name="runtime_lambda")
        self.arch_on = tf.Variable(0.0, trainable=False, name="arch_on")
        self.module = _Module(net, self.logits, self.prunode_logits, self.alive, self.focal, self.temperature)
        self.warmup = True
        self.pairs = [self._state(i)[2] for i in range(len(self.slots))]

    # --- structure (Python, read from the checkpointed variables) ---------------------------------

    def _state(self, i: int):
        """Slot ``i``: alive candidate indices, whether the layer is pruned, Prunode pairs per kernel."""
        slot, alive = self.slots[i], self.alive[i].numpy()
        n_k, last = len(slot.kernels), len(slot.widths) - 1
        candidates = [c for c in range(n_k + int(slot.skippable)) if alive[c] > 0.5]
        layer_pruned = slot.skippable and alive[-1] < 0.5
        pairs = [(int(f), min(int(f) + 1, last)) for f in self.focal[i].numpy()]
        return candidates, layer_pruned, pairs

    def step_key(self) -> tuple:
        """Pruning only switches ``tf.cond`` branches off; a Prunode that moves changes widths: a retrace."""
        return tuple(tuple(self._state(i)[2]) for i in range(len(self.slots)))

    def variables(self) -> list:
        return self.net.trainable_variables + self.logits + self.prunode_logits

    def optimizer(self):
        arch = {id(v) for v in self.logits + self.prunode_logits}
        return _Split(arch, self.options["learning_rate"], self.options["arch_learning_rate"])

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        self.warmup = epoch < max(1, round(self.options["warmup"] * epochs)) if epochs > 1 else False
        self.lam.assign(0.0 if self.warmup else self.options["lambda"])
        self.arch_on.assign(0.0 if self.warmup else 1.0)
        self.temperature.assign(self.options["temperature"] * self.options["temperature_decay"] ** epoch)
        self.pairs = [self._state(i)[2] for i in range(len(self.slots))]  # read once, outside the traced step

    # --- the search step ------------------------------------------------------------------------------

    def forward(self, images, training: bool):
        x = run_fixed(self.net, images, self.net.stem, training)
        expected = tf.constant(self.table.fixed_ms, tf.float32)
        for i, slot in enumerate(self.slots):
            run = lambda x=x, i=i: self._layer(i, x, training)  # noqa: E731
            if slot.skippable:  # a pruned layer is the identity and costs nothing
                x, cost = tf.cond(self.alive[i][-1] > 0.5, run, lambda x=x: (x, tf.constant(0.0)))
            else:
                x, cost = run()
            expected = expected + cost
        logits = classify(self.net, run_fixed(self.net, x, self.net.head, training), training)
        return logits, expected

    def _layer(self, i: int, x, training: bool):
        """Stochastic layer ``i``: its output and expected latency [ms]; pruned blocks are not computed."""
        slot, pairs, n_k = self.slots[i], self.pairs[i], len(self.slots[i].kernels)
        n_c = n_k + int(slot.skippable)
        on = self.arch_on  # 0 in the warm-up: FBNet trains the weights only
        logits = tf.stop_gradient(self.logits[i]) * (1 - on) + self.logits[i] * on
        logits = logits + (self.alive[i][:n_c] - 1.0) * 1e9  # pruned candidates: probability 0
        weights = gumbel_softmax(logits, self.temperature) if training else tf.one_hot(tf.argmax(logits), n_c)
        stride, channels = slot.block.steps[slot.block.dw].stride, self.net.elastic.stages[slot.stage].channels
        size = -(-tf.shape(x)[1] // stride)
        zeros = tf.zeros(tf.stack([tf.shape(x)[0], size, size, channels]))
        mixed, expected = 0.0, tf.constant(0.0)
        for k in range(n_k):
            lo, hi = pairs[k]
            prunode = tf.stop_gradient(self.prunode_logits[i][k]) * (1 - on) + self.prunode_logits[i][k] * on
            path = gumbel_softmax(prunode, self.temperature) if training else tf.one_hot(tf.argmax(prunode), 2)
            mask = path[0] * prefix_mask(slot.widths[hi], slot.widths[lo]) + path[1] * tf.ones(slot.widths[hi])
            squeeze = (path[0] * prefix_mask(slot.squeezes[hi], slot.squeezes[lo])
                       + path[1] * tf.ones(slot.squeezes[hi])) if slot.squeezes else None

            def branch(k=k, hi=hi, mask=mask, squeeze=squeeze):
                return masked_call(slot.block, x, padded_filter(slot.block, k, slot.widths[hi]), hi, mask, squeeze,
                                   training)[0]
            mixed = mixed + weights[k] * tf.cond(self.alive[i][k] > 0.5, branch, lambda: zeros)
            expected = expected + weights[k] * (path[0] * self.table.latency_ms[i, k, lo]
                                                 + path[1] * self.table.latency_ms[i, k, hi])
        # the skip's share is the residual alone: sum_k w_k (x + b_k) + w_skip x = x + sum_k w_k b_k
        return (x + mixed if slot.block.steps[-1].op == "add" else mixed), expected

    def latency_loss(self, expected_ms):
        return self.lam * RUNTIME_SCALE * tf.math.log(tf.maximum(expected_ms, self.options["budget_ms"]))

    # --- after an epoch -------------------------------------------------------------------------------

    def end_epoch(self, epoch: int, epochs: int) -> dict:
        """Move Prunodes; past the warm-up (and with pruning on) prune blocks and layers."""
        moved = pruned_blocks = pruned_layers = 0
        for i, slot in enumerate(self.slots):
            candidates, layer_pruned, pairs = self._state(i)
            for k in range(len(slot.kernels)):
                p = _softmax(self.prunode_logits[i][k].numpy())
                lo, hi = pairs[k]
                step = -1 if p[0] > self.options["move"] and lo > 0 else \
                    1 if p[1] > self.options["move"] and hi < len(slot.widths) - 1 else 0
                if step and not self.warmup:
                    self.focal[i][k].assign(lo + step)
                    self.prunode_logits[i][k].assign(tf.zeros([2]))
                    moved += 1
            if self.warmup or not self.options["pruning"] or layer_pruned:
                continue
            p = _softmax(self.logits[i].numpy()[candidates])
            alive = self.alive[i].numpy()
            if slot.skippable and candidates[-1] == len(slot.kernels) and p[-1] > self.options["layer"]:
                alive[-1] = 0.0
                pruned_layers += 1
            else:
                weak = [c for c, q in zip(candidates, p) if q < self.options["block"]]
                if all(c in weak for c in candidates if c < len(slot.kernels)):  # keep the likeliest block
                    best = max((a for a, c in enumerate(candidates) if c < len(slot.kernels)), key=lambda a: p[a])
                    weak.remove(candidates[best])
                alive[weak] = 0.0
                pruned_blocks += len(weak)
            self.alive[i].assign(alive)
        self.pairs = [self._state(i)[2] for i in range(len(self.slots))]
        return {"temperature": float(self.temperature.numpy()), "lambda": float(self.lam.numpy()),
                "warmup": self.warmup,
                "prunodes_moved": moved, "blocks_pruned": pruned_blocks, "layers_pruned": pruned_layers}

    def decision(self) -> Decision:
        kept, kernels, expands = [], [], []
        for i, slot in enumerate(self.slots):
            candidates, layer_pruned, pairs = self._state(i)
            best = candidates[int(np.argmax(self.logits[i].numpy()[candidates]))]
            skip = layer_pruned or best == len(slot.kernels)
            k = 0 if skip else best
            kept.append(not skip)
            kernels.append(k)
            expands.append(pairs[k][int(np.argmax(self.prunode_logits[i][k].numpy()))])  # as tf.argmax: ties -> lo
        return Decision(tuple(kept), tuple(kernels), tuple(expands))

    def forward_macs(self) -> int:
        """MACs per image of a search step now: every remaining block at its Prunode's wider path."""
        total = self.table.fixed_macs
        for i in range(len(self.slots)):
            candidates, layer_pruned, pairs = self._state(i)
            if not layer_pruned:
                total += sum(self.table.macs[i, k, pairs[k][1]] for k in candidates if k < len(self.slots[i].kernels))
        return int(total)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return e / e.sum()


def describe(options: dict) -> tuple[str, ...]:
    return (f"PruNet: pruning {'on' if options['pruning'] else 'off'} (block < {options['block']:g}, layer skip > "
            f"{options['layer']:g}), Prunode move > {options['move']:g}, temperature {options['temperature']:g} x "
            f"{options['temperature_decay']:.3f}/epoch, lambda {options['lambda']:g}",)


def run_prunet(request: searches.Request) -> searches.Result:
    """PruNet on ``request.space`` (``searches`` contract)."""
    return search(request, PruNet, DEFAULTS, describe)
