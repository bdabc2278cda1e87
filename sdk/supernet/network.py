"""The supernet: one Keras network that holds every sub-network of a Once-for-All shaped space.

Built from the space's data (``ElasticSpace``): its stem and head as they are, and for every
stage its largest depth of layer slots, each an ``ElasticBlock`` over the stage's kernel x expand
ops. Elastic depth runs the first ``d`` slots of a stage (the others are residual, so skipping one
is the identity); resolution is whatever the images have.

The spaces ``ofa_mbv3`` and ``ofa_mbv3_w1.0`` hold Once-for-All's width-1.2 and width-1.0 channels
(``ofa_mbv3_d234_e346_k357_w1.2``, ``..._w1.0``); the space's padding and batch-norm epsilon reach
every layer (``supernet.ofa`` imports Once-for-All's weights into a space with PyTorch's).

``set_active(subnet)`` picks the sub-network ``call`` runs; ``extract(subnet)`` returns the spec
``space.decode`` gives for it and an ordinary ``edgetailor.builder.build`` model holding the
inherited weights, batch-norm moving statistics included, copied layer by layer.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from edgetailor import builder
from edgetailor.arch.blocks import block_steps
from edgetailor.arch.layers import expand_repeats
from edgetailor.arch.spaces import Space
from edgetailor.arch.spec import ArchSpec, decode_block
from edgetailor.builder.keras_layers import ChannelAffine
from edgetailor.errors import SupernetError
from edgetailor.supernet.block import ElasticBlock
from edgetailor.supernet.subnet import ElasticSpace, Subnet

DROPOUT = 0.1  # before the classifier while training: train_ofa_net.py ``args.dropout`` (f03b2673)


@dataclass(frozen=True)
class Encoded:
    """A sub-network as the network reads it: kernel and expand indices per slot, depth per stage."""

    kernels: tuple[int, ...]
    expands: tuple[int, ...]
    depths: tuple[int, ...]

    def tensors(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """int32 tensors, so that one traced step serves every sub-network."""
        return tuple(tf.constant(v, tf.int32) for v in (self.kernels, self.expands, self.depths))


class Supernet(tf.keras.Model):
    """Weight-sharing network over ``space``; ``call`` returns logits over ``num_classes``."""

    def __init__(self, space: ElasticSpace | Space, num_classes: int, dropout: float = DROPOUT,
                 input_affine: tuple[tuple[float, ...], tuple[float, ...]] | None = None):
        """``input_affine`` (scale, offset per channel) maps the [-1, 1] input first, for weights
        that expect another normalisation (Once-for-All's ImageNet mean and std); the extracted
        model starts with the same map (``ChannelAffine``)."""
        super().__init__(name="supernet")
        self.input_affine = input_affine
        if num_classes < 2:
            raise SupernetError(f"a supernet classifier needs at least two classes (got {num_classes})")
        self.elastic = space if isinstance(space, ElasticSpace) else ElasticSpace.of(space)
        self.num_classes, self.dropout = num_classes, dropout
        channels, space = 3, self.elastic.space
        convention = {"padding": space.padding, "bn_eps": space.bn_eps}
        self.stem, channels = _fixed_blocks("stem", space.stem_blocks(), channels, convention)
        self.stages = []
        for s, stage in enumerate(self.elastic.stages):
            slots = []
            for j in range(max(stage.depths)):
                variants = [[block_steps(_stage_block(stage, k, e, j), channels if j == 0 else stage.channels)
                             for e in range(len(stage.expands))] for k in range(len(stage.kernels))]
                slots.append(ElasticBlock(variants, channels if j == 0 else stage.channels, f"stage{s + 1}_{j}",
                                          **convention))
            self.stages.append(slots)
            channels = stage.channels
        self.head, channels = _fixed_blocks("head", space.head_blocks(), channels, convention)
        bound = 1.0 / math.sqrt(channels)  # Once-for-All's nn.Linear init (ofa/utils/my_modules.py)
        self.classifier_kernel = self.add_weight("classifier_kernel", [channels, num_classes],
                                                 initializer=tf.random_uniform_initializer(-bound, bound))
        self.classifier_bias = self.add_weight("classifier_bias", [num_classes], initializer="zeros")
        self._active = self.elastic.largest()

    @property
    def active(self) -> Subnet:
        return self._active

    def set_active(self, subnet) -> Subnet:
        """Run ``subnet`` (a ``Subnet`` or a choice vector of the space) from now on."""
        self._active = subnet if isinstance(subnet, Subnet) else self.elastic.from_choice(subnet)
        self.elastic.check(self._active)
        return self._active

    def encode(self, subnet: Subnet) -> Encoded:
        self.elastic.check(subnet)
        kernels, expands = [], []
        for stage, slots in zip(self.elastic.stages, self.elastic.stage_slots()):
            kernels += [stage.kernels.index(subnet.kernels[s]) for s in slots]
            expands += [stage.expands.index(subnet.expands[s]) for s in slots]
        return Encoded(tuple(kernels), tuple(expands), subnet.depths)

    def call(self, images, training=False, subnet=None):
        """Logits of ``subnet`` (an ``Encoded``, or its ``tensors()``; default: the active one)."""
        kernels, expands, depths = _fields(subnet if subnet is not None else self.encode(self._active))
        x = images
        if self.input_affine:
            x = x * tf.constant(self.input_affine[0], x.dtype) + tf.constant(self.input_affine[1], x.dtype)
        for block in self.stem:
            x = block(x, training=training)
        for s, (blocks, slots) in enumerate(zip(self.stages, self.elastic.stage_slots())):
            always = min(self.elastic.stages[s].depths)
            for j, (block, slot) in enumerate(zip(blocks, slots)):
                def run(x=x, block=block, slot=slot):
                    return block(x, kernels[slot], expands[slot], training=training)
                if j < always:
                    x = run()
                elif isinstance(depths[s], (int, np.integer)):
                    x = run() if j < depths[s] else x
                else:  # a layer past the depth is skipped; its residual makes that the identity
                    x = tf.cond(j < depths[s], run, lambda x=x: x)
        for block in self.head:
            x = block(x, training=training)
        x = tf.reshape(x, [-1, x.shape[-1]])
        if training and self.dropout:
            x = tf.nn.dropout(x, self.dropout)
        return tf.nn.bias_add(tf.matmul(x, self.classifier_kernel), self.classifier_bias)

    def extract(self, subnet: Subnet | None = None, classifier_activation: str | None = "softmax"
                ) -> tuple[ArchSpec, tf.keras.Model]:
        """``subnet``'s spec (what ``space.decode`` gives) and a builder model with its weights."""
        subnet = self.elastic.check(subnet or self._active)
        spec = self.elastic.spec(subnet)
        preprocessing = [ChannelAffine(*self.input_affine, name="input_affine")] if self.input_affine else None
        model = builder.build(spec, num_classes=self.num_classes, classifier_activation=classifier_activation,
                              preprocessing=preprocessing, name="extracted")
        code = self.encode(subnet)
        weights = {"classifier": [self.classifier_kernel.numpy(), self.classifier_bias.numpy()]}
        for block in [*self.stem, *self.head]:
            weights.update(block.arrays(0, 0))
        for blocks, slots, depth in zip(self.stages, self.elastic.stage_slots(), subnet.depths):
            for block, slot in list(zip(blocks, slots))[:depth]:
                weights.update(block.arrays(code.kernels[slot], code.expands[slot]))
        load_by_layer_name(model, weights)
        return spec, model

    def sort_channels(self, keep_groups: int = 0) -> None:
        """Re-order every block's expanded channels by importance (see ``ElasticBlock.sort_channels``)."""
        for blocks in self.stages:
            for block in blocks:
                block.sort_channels(keep_groups)


def load_by_layer_name(model: tf.keras.Model, weights: dict[str, list]) -> None:
    """Set every weighted layer of an extracted ``model`` from ``weights`` (layer name -> arrays, in
    the layer's order). A layer without arrays, or arrays without a layer, is a bug, not a user's
    mistake: the spec and the supernet were built from the same space."""
    weights = dict(weights)
    for layer in model.layers:
        if layer.weights:
            if layer.name not in weights:
                raise RuntimeError(f"the supernet holds no weights for the extracted layer {layer.name!r}")
            layer.set_weights(weights.pop(layer.name))
    if weights:
        raise RuntimeError(f"the extracted model lacks the supernet's layers {sorted(weights)}")


def _fields(subnet):
    if isinstance(subnet, Encoded):
        return subnet.kernels, subnet.expands, subnet.depths
    return subnet


def _stage_block(stage, kernel_index: int, expand_index: int, slot: int):
    """The block ``Space.decode`` makes for this op in this slot (channels resolved, stride set)."""
    template = stage.ops[stage.op_index(stage.kernels[kernel_index], stage.expands[expand_index])]
    return dataclasses.replace(decode_block(f"{template}_c{stage.channels}"),
                               stride=stage.stride if slot == 0 else 1)


def _fixed_blocks(section: str, blocks, channels: int, convention: dict) -> tuple[list[ElasticBlock], int]:
    """Stem or head blocks: one variant each, named as the builder names them."""
    out = []
    for block in (instance for b in blocks for instance in (expand_repeats(b) if b.kind not in ("pool", "fc")
                                                             else [b])):
        steps = block_steps(block, channels)
        out.append(ElasticBlock([[steps]], channels, f"{section}_{len(out)}", **convention))
        channels = block.channels or channels
    return out, channels
