"""The search supernet of the differentiable searches: one weight set per layer slot, ops as paths.

Every slot of a ``DnasSpace`` is one ``ElasticBlock`` (``supernet.block``) over its kernel x
expand ops — the weights held at the largest kernel and expansion, a smaller kernel the centre
times Once-for-All's learned transform, a smaller expansion the first channels — so the
candidates of a slot share one weight set as in Once-for-All and Single-Path NAS, and ``skip`` has
no weights. The stem, head and classifier are the Once-for-All supernet's (``supernet.network``).

``call`` runs, per slot, some of its candidates as gated paths. A slot whose input and output
shapes agree computes ``x + sum(gate * (op(x) - x))`` — ProxylessNAS's mixed edge beside a
shortcut, where the zero op adds nothing — and any other slot ``sum(gate * op(x))``. FBNet runs
every candidate with its Gumbel-softmax weight ("all"); LightNAS one path with its straight-through
hard weight ("one"); ProxylessNAS one path for a weight step and two, the second detached, for an
architecture step ("two"). ``ran`` lists the (slot, candidate) pairs the last call computed.
"""
from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

from edgetailor import builder
from edgetailor.arch.blocks import block_steps
from edgetailor.arch.spec import ArchSpec, decode_block
from edgetailor.supernet.block import ElasticBlock
from edgetailor.supernet.dnas_space import SKIP, DnasSpace
from edgetailor.supernet.network import _fixed_blocks, load_by_layer_name


class SearchNet(tf.keras.Model):
    """The weight-sharing network over ``search``'s slots; logits over ``num_classes``."""

    def __init__(self, search: DnasSpace, num_classes: int):
        super().__init__(name="dnas_supernet")
        self.search, self.num_classes = search, num_classes
        space = search.space
        convention = {"padding": space.padding, "bn_eps": space.bn_eps}
        self.stem, channels = _fixed_blocks("stem", space.stem_blocks(), 3, convention)
        self.blocks, i = [], 0
        for s, stage in enumerate(space.stages):
            for j in range(stage.depths[0]):
                slot = search.slots[i]
                by_pair = {(k, e): op for op, k, e in slot.candidates if k != SKIP}
                variants = []
                for k in range(len(slot.kernels)):
                    row = []
                    for e in range(len(slot.expands)):
                        block = dataclasses.replace(decode_block(f"{stage.ops[by_pair[(k, e)]]}_c{stage.channels}"),
                                                    stride=stage.stride if j == 0 else 1)
                        row.append(block_steps(block, channels))
                    variants.append(row)
                self.blocks.append(ElasticBlock(variants, channels, f"stage{s + 1}_{j}", **convention))
                channels, i = stage.channels, i + 1
        self.head, channels = _fixed_blocks("head", space.head_blocks(), channels, convention)
        bound = 1.0 / math.sqrt(channels)  # Once-for-All's nn.Linear init, as ``Supernet``
        self.classifier_kernel = self.add_weight("classifier_kernel", [channels, num_classes],
                                                 initializer=tf.random_uniform_initializer(-bound, bound))
        self.classifier_bias = self.add_weight("classifier_bias", [num_classes], initializer="zeros")
        self.ran: list[tuple[int, int]] = []

    def call(self, images, mode: str, picks=None, gates=None, training=False):
        """Logits. ``mode`` "all": every candidate, ``gates`` [slots, max_ops]; "one": candidate
        ``picks[slot]`` with gate ``gates[slot]``; "two": ``picks[slot][0]`` gated by ``gates[slot, 0]``
        and ``picks[slot][1]`` detached, gated by ``gates[slot, 1]``. Picks are Python ints: the ops
        run at the candidate's exact size."""
        self.ran = []
        x = images
        for block in self.stem:
            x = block(x, training=training)
        for i, (block, slot) in enumerate(zip(self.blocks, self.search.slots)):
            if mode == "all":
                paths = [(c, gates[i, c], False) for c in range(len(slot.candidates))]
            elif mode == "one":
                paths = [(int(picks[i]), gates[i], False)]
            else:
                paths = [(int(picks[i][0]), gates[i, 0], False), (int(picks[i][1]), gates[i, 1], True)]
            terms = [self._path(block, i, x, *path, training) for path in paths
                     if slot.candidates[path[0]][1] != SKIP]  # the zero op adds nothing
            if slot.residual:
                x = x + tf.add_n(terms) if terms else x
            else:
                x = tf.add_n(terms)
        for block in self.head:
            x = block(x, training=training)
        x = tf.reshape(x, [-1, x.shape[-1]])
        return tf.nn.bias_add(tf.matmul(x, self.classifier_kernel), self.classifier_bias)

    def _path(self, block, i: int, x, candidate: int, gate, detached: bool, training: bool):
        """``gate * (op(x) - x)`` beside a shortcut, ``gate * op(x)`` otherwise."""
        slot = self.search.slots[i]
        self.ran.append((i, candidate))
        y = block(x, slot.candidates[candidate][1], slot.candidates[candidate][2], training=training)
        y = y - x if slot.residual else y
        return gate * (tf.stop_gradient(y) if detached else y)

    def extract(self, picks) -> tuple[ArchSpec, tf.keras.Model]:
        """The spec of one candidate per slot and a builder model (softmax out) with its weights."""
        spec = self.search.spec(picks)
        model = builder.build(spec, num_classes=self.num_classes, classifier_activation="softmax", name="found")
        weights = {"classifier": [self.classifier_kernel.numpy(), self.classifier_bias.numpy()]}
        for block in [*self.stem, *self.head]:
            weights.update(block.arrays(0, 0))
        for block, slot, pick in zip(self.blocks, self.search.slots, picks):
            _, k, e = slot.candidates[int(pick)]
            if k != SKIP:
                weights.update(block.arrays(k, e))
        load_by_layer_name(model, weights)
        return spec, model
