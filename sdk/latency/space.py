"""Vectorised latency for a whole search space: one table lookup per layer slot.

Every (resolution, input width, own width, op) combination of every layer slot is priced once
with the device profile; a batch of choice vectors is then summed with numpy fancy indexing.
The result equals ``profile.predict(space.decode(choice))`` (a test checks it).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from edgetailor.latency.cost import layer_latency
from edgetailor.arch.layers import block_cost, classifier_cost
from edgetailor.latency.profiles import DeviceProfile
from edgetailor.arch.scaling import make_divisible
from edgetailor.arch.spaces import Space
from edgetailor.arch.spec import decode_block


class SpacePredictor:
    """Predict the latency (ms) of many points of ``space`` on ``profile`` at once."""

    def __init__(self, space: Space, profile: DeviceProfile, num_classes: int = 1000):
        self.space = space
        coefficients, table = profile.coefficients, profile.table
        self.overhead = float(coefficients[-1])
        price = lambda layer: layer_latency(layer, coefficients, table)[0]  # noqa: E731
        head_blocks = space.head_blocks()
        n_res = len(space.resolutions)
        self.stem_ms = np.zeros(n_res)
        self.slots: list[tuple[int, int, int, int, int, np.ndarray]] = []
        shapes = []
        for r, resolution in enumerate(space.resolutions):
            shape = (resolution, resolution, 3)
            for block in space.stem_blocks():
                layer = block_cost(block, shape, 8)
                self.stem_ms[r] += price(layer)
                shape = layer.out_shape
            shapes.append(shape)
        position = 1
        previous_channels = [shapes[0][2]]
        templates = {}
        for s, stage in enumerate(space.stages):
            widths = [make_divisible(stage.channels * w, 8) for w in stage.widths]
            n_ops = 1 if stage.shared else max(stage.depths)
            for layer_index in range(max(stage.depths)):
                lut = np.zeros((n_res, len(previous_channels), len(widths), len(stage.ops)))
                for r in range(n_res):
                    h = shapes[r][0] if layer_index == 0 else -(-shapes[r][0] // stage.stride)
                    for p, cin_prev in enumerate(previous_channels if layer_index == 0 else [None]):
                        for w, channels in enumerate(widths):
                            cin = cin_prev if layer_index == 0 else channels
                            for o, template in enumerate(stage.ops):
                                if template not in templates:
                                    templates[template] = decode_block(f"{template}_c8")
                                block = dataclasses.replace(
                                    templates[template], channels=channels,
                                    stride=stage.stride if layer_index == 0 else 1)
                                lut[r, p, w, o] = price(block_cost(block, (h, h, cin), 8))
                    if layer_index > 0:
                        lut[r] = lut[r, :1]
                op_position = position + 2 + (0 if stage.shared else layer_index)
                self.slots.append((s, layer_index, position, op_position,
                                   position - 2 - self._ops_of(s - 1) if s else -1, lut))
            shapes = [(-(-sh[0] // stage.stride),) * 2 + (0,) for sh in shapes]
            previous_channels = widths
            position += 2 + n_ops
        self.head_ms = np.zeros((n_res, len(previous_channels)))
        for r in range(n_res):
            for w, channels in enumerate(previous_channels):
                shape = (shapes[r][0], shapes[r][1], channels)
                for block in head_blocks:
                    layer = block_cost(block, shape, 8)
                    self.head_ms[r, w] += price(layer)
                    shape = layer.out_shape
                self.head_ms[r, w] += price(classifier_cost(shape, num_classes))
        self.last_width_position = position - 2 - self._ops_of(len(space.stages) - 1) + 1

    def _ops_of(self, stage_index: int) -> int:
        stage = self.space.stages[stage_index]
        return 1 if stage.shared else max(stage.depths)

    def predict(self, choices: np.ndarray) -> np.ndarray:
        """Latency in ms for each row of ``choices`` (shape [n, len(space.dims())])."""
        choices = np.atleast_2d(np.asarray(choices, dtype=np.int64))
        r = choices[:, 0]
        total = self.overhead + self.stem_ms[r]
        depths = {}  # per stage: each row's depth, read once for the stage's slots
        for s, layer_index, position, op_position, previous_width_position, lut in self.slots:
            if s not in depths:
                depths[s] = np.asarray(self.space.stages[s].depths)[choices[:, position]]
            _, n_prev, n_widths, n_ops = lut.shape
            # one flat lookup: faster than indexing the 4-D table with four index arrays
            index = (r * n_prev * n_widths + choices[:, position + 1]) * n_ops + choices[:, op_position]
            if layer_index == 0 and previous_width_position >= 0:
                index += choices[:, previous_width_position + 1] * (n_widths * n_ops)
            value = lut.ravel().take(index)
            total += value * (layer_index < depths[s])
        return total + self.head_ms[r, choices[:, self.last_width_position]]
