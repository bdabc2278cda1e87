"""One elastic block: a layer slot's ops for every (kernel, expand) variant, read from ``block_steps``.

The variants' steps come from ``edgetailor.arch.blocks`` — the definition the layer walk and the
builder read — so the supernet holds exactly the ops and widths the extracted model has. All
variants must share one op sequence; only the depthwise kernel may follow the kernel choice and
only channel counts the expand choice.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from edgetailor.arch.blocks import Step
from edgetailor.arch.spec import BN_EPSILON
from edgetailor.errors import SupernetError
from edgetailor.supernet.ops import ElasticConv, ElasticDepthwise, ElasticSE, Index, take


def _shape_free(step: Step) -> Step:
    return dataclasses.replace(step, channels=0, kernel=0 if step.op == "dwconv" else step.kernel)


class ElasticBlock(tf.keras.layers.Layer):
    """``variants[k][e]``: the steps with the ``k``-th kernel and ``e``-th expand (both ascending)."""

    def __init__(self, variants: list[list[tuple[Step, ...]]], in_channels: int, name: str,
                 padding: str = "same", bn_eps: float = BN_EPSILON):
        super().__init__(name=name)
        reference = variants[-1][-1]
        dw = next((p for p, s in enumerate(reference) if s.op == "dwconv"), None)
        kernels = tuple(row[0][dw].kernel if dw is not None else 0 for row in variants)
        # per step: input channels and output (or squeeze) channels, each by expand index
        ins: list[tuple[int, ...]] = [() for _ in reference]
        outs: list[tuple[int, ...]] = [() for _ in reference]
        for k, row in enumerate(variants):
            for e, steps in enumerate(row):
                if tuple(map(_shape_free, steps)) != tuple(map(_shape_free, reference)):
                    raise SupernetError(f"{name}: variants differ in more than kernel and width")
                channels = {"x": in_channels, "in": in_channels}
                for p, step in enumerate(steps):
                    cin = channels[step.inputs[0]]
                    cout = step.channels if step.op in ("conv", "se") else cin
                    if step.op == "dwconv" and step.kernel != kernels[k]:
                        raise SupernetError(f"{name}: the depthwise kernel must follow the kernel choice")
                    if k == 0:
                        ins[p] += (cin,)
                        outs[p] += (cout,)
                    elif (ins[p][e], outs[p][e]) != (cin, cout):
                        raise SupernetError(f"{name}: channel counts must follow the expand choice only")
                    channels[step.outputs[0]] = cin if step.op == "se" else cout
        self.steps, self.kernels, self.dw = reference, kernels, dw
        self.ins, self.outs = tuple(ins), tuple(outs)
        self.layers_by_step = {}
        convention = {"symmetric": padding == "symmetric", "bn_eps": bn_eps}
        for p, step in enumerate(reference):
            if step.op == "conv":
                layer = ElasticConv(step, max(self.ins[p]), max(self.outs[p]), **convention, name=step.name)
            elif step.op == "dwconv":
                layer = ElasticDepthwise(step, self.kernels, max(self.ins[p]), **convention, name=step.name)
            elif step.op == "se":
                layer = ElasticSE(step, max(self.ins[p]), max(self.outs[p]), name=step.name)
            elif step.op in ("add", "pool"):
                continue
            else:
                raise SupernetError(f"{name}: the supernet has no elastic {step.op!r} op")
            self.layers_by_step[step.name] = layer

    def call(self, x, kernel_index: Index = 0, expand_index: Index = 0, training=False):
        tensors = {"x": x, "in": x}
        for p, step in enumerate(self.steps):
            inputs = [tensors[i] for i in step.inputs]
            n_in, n_out = take(self.ins[p], expand_index), take(self.outs[p], expand_index)
            if step.op == "conv":
                y = self.layers_by_step[step.name](inputs[0], n_in, n_out, training=training)
            elif step.op == "dwconv":
                y = self.layers_by_step[step.name](inputs[0], kernel_index, n_in, training=training)
            elif step.op == "se":
                y = self.layers_by_step[step.name](inputs[0], n_in, n_out)
            elif step.op == "add":
                y = inputs[0] + inputs[1]
            else:  # pool
                y = tf.reduce_mean(inputs[0], [1, 2], keepdims=True)
            tensors[step.outputs[0]] = y
        return tensors["x"]

    def arrays(self, kernel_index: int, expand_index: int) -> dict[str, list[np.ndarray]]:
        """The builder's layer name -> Keras weights, for this variant."""
        out = {}
        for p, step in enumerate(self.steps):
            layer = self.layers_by_step.get(step.name)
            if isinstance(layer, ElasticDepthwise):
                parts = layer.arrays(kernel_index, self.ins[p][expand_index])
            elif layer is not None:
                parts = layer.arrays(self.ins[p][expand_index], self.outs[p][expand_index])
            else:
                continue
            out.update({f"{self.name}_{step.name}{suffix}": weights for suffix, weights in parts.items()})
        return out

    def sort_channels(self, keep_groups: int) -> None:
        """Order the expanded channels by importance so a smaller expansion keeps the most important:
        Once-for-All's ``re_organize_middle_weights`` (L1 norm of the projection's weights per
        channel, ``dynamic_layers.py``). With ``keep_groups`` > 0, channels stay within the blocks
        of the ``keep_groups`` next-smaller widths already trained (its ``expand_ratio_stage``)."""
        dw = self.dw
        producer = self.steps[dw - 1] if dw and self.steps[dw - 1].op == "conv" else None
        if producer is None:
            return  # no expand conv (e1): the block's input width is not elastic
        consumer = next(s for s in self.steps[dw + 1:] if s.op == "conv")
        widths = sorted(set(self.outs[self.steps.index(producer)]), reverse=True)
        boundaries = widths[1:1 + keep_groups]
        importance = tf.reduce_sum(tf.abs(self.layers_by_step[consumer.name].kernel), axis=[0, 1, 3]).numpy()
        index = np.arange(importance.size)
        group = sum((index >= b).astype(int) for b in boundaries) if boundaries else np.zeros_like(index)
        order = np.lexsort((-importance, group))  # by group, then most important first
        self.layers_by_step[producer.name].permute_out(order)
        self.layers_by_step[self.steps[dw].name].permute(order)
        for step in self.steps[dw + 1:]:
            if step.op == "se":
                self.layers_by_step[step.name].permute(order)
        self.layers_by_step[consumer.name].permute_in(order)
