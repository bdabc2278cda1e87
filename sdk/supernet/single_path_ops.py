"""What Single-Path NAS and PruNet share on the supernet: a block run under channel masks, per-slot
latency and MAC tables, and the sub-network (with inherited weights) of per-layer decisions.

Both searches run the supernet's own ``ElasticBlock`` layers (``network.Supernet``), not copies:
``masked_call`` runs a block's steps at a given expanded width with a given depthwise filter, and
multiplies the expanded channels (and the squeeze-excite's squeeze channels) by a mask. A mask of
ones on the first ``n`` channels and zeros after computes exactly the block at expand width ``n``
(every op before the projection is per channel), so a one-hot decision is the extracted network.

A skipped layer is the identity (its residual alone). A stage whose later layers may be skipped
one by one holds the same networks as one of smaller depth — every layer after the first of a stage
has the same input and output shapes — so ``compact`` turns per-layer skips into the stage depth
of ``ElasticSpace``'s ``Subnet`` and ``extract`` copies each kept layer's weights to its new place.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from edgetailor import builder
from edgetailor.arch.layers import block_cost, classifier_cost
from edgetailor.arch.spec import ArchSpec, decode_block
from edgetailor.errors import SupernetError
from edgetailor.latency.profiles import DeviceProfile
from edgetailor.latency.space import SpacePredictor
from edgetailor.supernet.block import ElasticBlock
from edgetailor.supernet.genome import Genomes, RowLatency
from edgetailor.supernet.network import Supernet, load_by_layer_name
from edgetailor.supernet.ops import _padded
from edgetailor.supernet.subnet import ElasticSpace, Subnet


@dataclass(frozen=True)
class Slot:
    """One searchable layer: its stage, place, block, and the widths its expand choices give."""

    stage: int
    position: int                    # within the stage, from 0
    block: ElasticBlock
    skippable: bool                  # a later layer of a stage whose depth may stop before it
    kernels: tuple[int, ...]
    widths: tuple[int, ...]          # expanded (depthwise) channels per expand index
    squeezes: tuple[int, ...] | None  # squeeze-excite channels per expand index (None: no SE)


def slots(net: Supernet) -> list[Slot]:
    """The supernet's layer slots in order; a stage's depths must run without gaps (1..4, 2..4)."""
    out = []
    for s, (stage, blocks) in enumerate(zip(net.elastic.stages, net.stages)):
        if stage.depths != tuple(range(min(stage.depths), max(stage.depths) + 1)):
            raise SupernetError(f"stage {s + 1}: depths {list(stage.depths)} have a gap; a layer-by-layer "
                                "skip needs every depth from the smallest to the largest")
        for j, block in enumerate(blocks):
            se = next((p for p, step in enumerate(block.steps) if step.op == "se"), None)
            out.append(Slot(s, j, block, j >= min(stage.depths), stage.kernels, block.ins[block.dw],
                            block.outs[se] if se is not None else None))
    return out


def prefix_mask(width: int, n: int) -> np.ndarray:
    """``width`` float32 entries: ones on the first ``n``."""
    return (np.arange(width) < n).astype(np.float32)


def masked_call(block: ElasticBlock, x, dw_filter, expand_index: int, channel_mask, squeeze_mask,
                training: bool):
    """``block`` at expand ``expand_index`` with the depthwise ``dw_filter`` ([k, k, C, 1]),
    the expanded channels times ``channel_mask`` and the squeeze channels times ``squeeze_mask``.
    Returns (residual branch, the block's input when the block adds it back, else None)."""
    tensors = {"x": x, "in": x}
    for p, step in enumerate(block.steps):
        inputs = [tensors[i] for i in step.inputs]
        n_in, n_out = block.ins[p][expand_index], block.outs[p][expand_index]
        layer = block.layers_by_step.get(step.name)
        if step.op == "conv":
            y = layer(inputs[0], n_in, n_out, training=training)
        elif step.op == "dwconv":
            padded, padding = _padded(inputs[0], int(dw_filter.shape[0]), layer.stride, layer.symmetric)
            y = tf.nn.depthwise_conv2d(padded, dw_filter, [1, layer.stride, layer.stride, 1], padding)
            y = layer.act(layer.norm(y, n_in, training=training)) * channel_mask
        elif step.op == "se":
            pooled = tf.reduce_mean(inputs[0], [1, 2], keepdims=True)
            squeezed = layer.act(tf.nn.bias_add(tf.nn.conv2d(pooled, layer.reduce_kernel[:, :, :n_in, :n_out],
                                                             1, "SAME"), layer.reduce_bias[:n_out]))
            gate = layer.gate(tf.nn.bias_add(tf.nn.conv2d(squeezed * squeeze_mask,
                                                          layer.expand_kernel[:, :, :n_out, :n_in], 1, "SAME"),
                                             layer.expand_bias[:n_in]))
            y = inputs[0] * gate
        elif step.op == "add":
            return inputs[0], inputs[1]
        else:
            raise SupernetError(f"{block.name}: a masked block has no {step.op!r} step")
        tensors[step.outputs[0]] = y
    return tensors["x"], None


def padded_filter(block: ElasticBlock, kernel_index: int, n: int):
    """The depthwise ``kernels[kernel_index]`` filter of ``n`` channels, zero-padded to the largest."""
    layer, big = block.layers_by_step[block.steps[block.dw].name], block.kernels[-1]
    pad = (big - block.kernels[kernel_index]) // 2
    return tf.pad(layer.filter(kernel_index, n), [[pad, pad], [pad, pad], [0, 0], [0, 0]])


@dataclass(frozen=True)
class Tables:
    """Per slot, kernel index and expand index: latency [ms] on the profile and MACs, at one resolution;
    ``fixed_ms``/``fixed_macs``: stem, head, classifier (and the profile's overhead)."""

    latency_ms: np.ndarray   # [slots, kernels, expands]
    macs: np.ndarray         # [slots, kernels, expands]
    fixed_ms: float
    fixed_macs: int
    layout: Genomes
    row_latency: RowLatency


def tables(elastic: ElasticSpace, profile: DeviceProfile, resolution: int, num_classes: int) -> Tables:
    """The profile's per-slot table (``genome.RowLatency``, exact: equals ``profile.predict``) and the
    layer walk's MACs, at ``resolution`` [px] with ``num_classes`` classes."""
    layout = Genomes(elastic, (resolution,))
    rows = RowLatency(layout, SpacePredictor(layout.space(), profile, num_classes))
    shape, fixed_macs = (resolution, resolution, 3), 0
    for block in elastic.space.stem_blocks():
        layer = block_cost(block, shape, 8)
        fixed_macs, shape = fixed_macs + layer.macs, layer.out_shape
    macs = np.zeros(rows.table.shape[:1] + rows.table.shape[2:])
    slot = 0
    for stage in elastic.stages:
        for j in range(max(stage.depths)):
            channels = stage.channels if j else shape[2]
            for k, kernel in enumerate(stage.kernels):
                for e, expand in enumerate(stage.expands):
                    template = stage.ops[stage.op_index(kernel, expand)]
                    block = dataclasses.replace(decode_block(f"{template}_c{stage.channels}"),
                                                stride=stage.stride if j == 0 else 1)
                    macs[slot, k, e] = block_cost(block, shape[:2] + (channels,), 8).macs
            if j == 0:
                shape = block_cost(dataclasses.replace(decode_block(f"{stage.ops[0]}_c{stage.channels}"),
                                                       stride=stage.stride), shape, 8).out_shape
            slot += 1
    for block in elastic.space.head_blocks():
        layer = block_cost(block, shape, 8)
        fixed_macs, shape = fixed_macs + layer.macs, layer.out_shape
    fixed_macs += classifier_cost(shape, num_classes).macs
    return Tables(rows.table[:, 0], macs, float(rows.fixed[0]), int(fixed_macs), layout, rows)


@dataclass(frozen=True)
class Decision:
    """One architecture of the search: per slot kept or skipped, kernel index and expand index."""

    kept: tuple[bool, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]

    def latency_ms(self, table: Tables) -> float:
        per_slot = table.latency_ms[np.arange(len(self.kept)), self.kernels, self.expands]
        return float(table.fixed_ms + np.sum(np.where(self.kept, per_slot, 0.0)))


def compact(elastic: ElasticSpace, decision: Decision, resolution: int) -> tuple[Subnet, list[list[int]]]:
    """The ``Subnet`` of ``decision`` (skipped layers dropped, the kept ones moved forward) and, per
    stage, the slots whose weights its layers take."""
    kernels, expands, depths, sources = [], [], [], []
    for stage, stage_slots in zip(elastic.stages, elastic.stage_slots()):
        kept = [slot for slot in stage_slots if decision.kept[slot] or slot == stage_slots[0]]
        depth = len(kept)
        if depth not in stage.depths:
            raise SupernetError(f"{depth} layers kept in a stage of depths {list(stage.depths)}")
        chosen = kept + [stage_slots[-1]] * (max(stage.depths) - depth)  # past the depth: carried, unused
        kernels += [stage.kernels[decision.kernels[slot]] for slot in chosen]
        expands += [stage.expands[decision.expands[slot]] for slot in chosen]
        depths.append(depth)
        sources.append(kept)
    return Subnet(resolution, tuple(depths), tuple(kernels), tuple(expands)), sources


def extract(net: Supernet, decision: Decision, resolution: int, classifier_activation: str | None = "softmax"
            ) -> tuple[ArchSpec, tf.keras.Model]:
    """The spec of ``decision`` and a builder model holding the supernet's weights of its kept layers."""
    subnet, sources = compact(net.elastic, decision, resolution)
    spec = net.elastic.spec(subnet)
    model = builder.build(spec, num_classes=net.num_classes, classifier_activation=classifier_activation,
                          name="extracted")
    weights = {"classifier": [net.classifier_kernel.numpy(), net.classifier_bias.numpy()]}
    for block in [*net.stem, *net.head]:
        weights.update(block.arrays(0, 0))
    for s, (blocks, stage_slots, kept) in enumerate(zip(net.stages, net.elastic.stage_slots(), sources)):
        for new, slot in enumerate(kept):
            j = slot - stage_slots[0]
            old, moved = f"stage{s + 1}_{j}_", f"stage{s + 1}_{new}_"
            arrays = blocks[j].arrays(decision.kernels[slot], decision.expands[slot])
            weights.update({moved + name[len(old):]: value for name, value in arrays.items()})
    load_by_layer_name(model, weights)
    return spec, model


def nested_mask(widths: tuple[int, ...], kept) -> tf.Tensor:
    """A channel mask over ``widths[-1]`` channels: the first ``widths[0]`` always, and the group
    ``widths[g - 1]..widths[g]`` times ``kept[g - 1]`` (a 0/1 tensor, the product of the decisions
    up to group ``g``)."""
    mask = tf.constant(prefix_mask(widths[-1], widths[0]))
    for g in range(1, len(widths)):
        group = prefix_mask(widths[-1], widths[g]) - prefix_mask(widths[-1], widths[g - 1])
        mask = mask + kept[g - 1] * tf.constant(group)
    return mask


def run_fixed(net: Supernet, images, blocks, training: bool):
    """Stem or head blocks as the supernet runs them."""
    x = images
    for block in blocks:
        x = block(x, training=training)
    return x


def classify(net: Supernet, features, training: bool):
    """Logits from the head's output (dropout while training, as ``Supernet.call``)."""
    x = tf.reshape(features, [-1, features.shape[-1]])
    if training and net.dropout:
        x = tf.nn.dropout(x, net.dropout)
    return tf.nn.bias_add(tf.matmul(x, net.classifier_kernel), net.classifier_bias)
