"""SSD anchors, exactly as the TF Object Detection API's ``ssd_anchor_generator`` makes them.

``ssd_anchor_generator { num_layers: 6 min_scale: 0.2 max_scale: 0.95 aspect_ratios: 1.0,
2.0, 0.5, 3.0, 0.3333 reduce_boxes_in_lowest_layer: true }`` (tensorflow/models
``anchor_generators/multiple_grid_anchor_generator.py::create_ssd_anchors``):

- scales ``s_k = min + (max - min) * k / (n - 1)``, and ``s_n = 1.0`` for the interpolation;
- layer 0 has three boxes ``(0.1, 1.0), (s0, 2.0), (s0, 0.5)``;
- other layers one box per aspect ratio plus ``(sqrt(s_k * s_{k+1}), 1.0)``: six boxes;
- a box of scale s and ratio a is ``w = s * sqrt(a)``, ``h = s / sqrt(a)`` (base size 1x1);
- centres at ``((i + 0.5) / grid_h, (j + 0.5) / grid_w)``; everything normalized to [0, 1].

Anchors are ``[A, 4]`` float32 rows ``(y_center, x_center, height, width)`` ordered map by map,
then row, column, box: the order a ``[B, H, W, boxes * 4]`` predictor reshapes to. Pure numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 0.3333)


@dataclass(frozen=True)
class AnchorConfig:
    """The generator's settings (defaults: SSDLite-MobileNetV3's config)."""

    min_scale: float = 0.2
    max_scale: float = 0.95
    aspect_ratios: tuple[float, ...] = ASPECT_RATIOS
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = True

    def scales(self, num_layers: int) -> list[float]:
        """``s_0 .. s_{n-1}`` and the trailing 1.0 used for the last interpolated box."""
        if num_layers < 2:
            raise ValueError(f"SSD anchors need at least 2 feature maps (got {num_layers})")
        step = (self.max_scale - self.min_scale) / (num_layers - 1)
        return [self.min_scale + step * k for k in range(num_layers)] + [1.0]

    def box_specs(self, num_layers: int) -> list[list[tuple[float, float]]]:
        """Per layer, the (scale, aspect ratio) of each box at one location."""
        scales = self.scales(num_layers)
        out = []
        for layer in range(num_layers):
            scale, scale_next = scales[layer], scales[layer + 1]
            if layer == 0 and self.reduce_boxes_in_lowest_layer:
                out.append([(0.1, 1.0), (scale, 2.0), (scale, 0.5)])
                continue
            specs = [(scale, ratio) for ratio in self.aspect_ratios]
            if self.interpolated_scale_aspect_ratio > 0:
                specs.append((math.sqrt(scale * scale_next), self.interpolated_scale_aspect_ratio))
            out.append(specs)
        return out

    def boxes_per_location(self, num_layers: int) -> list[int]:
        return [len(specs) for specs in self.box_specs(num_layers)]


def grid_sizes(resolution: int, strides: tuple[int, ...]) -> list[int]:
    """Feature-map side per stride for a ``resolution`` px input with 'same' padding."""
    return [math.ceil(resolution / s) for s in strides]


def ssd_anchors(grids: list[int] | list[tuple[int, int]], config: AnchorConfig = AnchorConfig()) -> np.ndarray:
    """All anchors ``[A, 4]`` (y_center, x_center, height, width), normalized, for the maps."""
    sizes = [(g, g) if isinstance(g, int) else tuple(g) for g in grids]
    rows = []
    for (gh, gw), specs in zip(sizes, config.box_specs(len(sizes))):
        scale = np.array([s for s, _ in specs])
        ratio = np.sqrt(np.array([a for _, a in specs]))
        heights, widths = scale / ratio, scale * ratio
        cy, cx = np.meshgrid((np.arange(gh) + 0.5) / gh, (np.arange(gw) + 0.5) / gw, indexing="ij")
        n = len(specs)
        layer = np.stack([
            np.repeat(cy.reshape(-1), n), np.repeat(cx.reshape(-1), n),
            np.tile(heights, gh * gw), np.tile(widths, gh * gw)], axis=1)
        rows.append(layer)
    return np.concatenate(rows).astype(np.float32)


@dataclass(frozen=True)
class MultilevelAnchorConfig:
    """RetinaNet/EfficientDet anchors: per level ``num_scales`` octave scales x the aspect ratios.

    google/automl ``efficientdet/tf2/anchors.py`` @be5340b (``Anchors._generate_configs`` /
    ``_generate_boxes``) with ``hparams_config.py`` @4be6845 defaults (levels 3-7, 3 scales,
    ratios 1.0, 2.0, 0.5, anchor scale 4.0; EfficientDet-Lite0-2 override it to 3.0):

    - a box at level l, octave o, ratio a has base ``anchor_scale * stride * 2**(o / num_scales)``,
      width ``base * sqrt(a)``, height ``base / sqrt(a)`` (ratio = w/h), centred on each cell;
    - order: level, row, column, then octave-major (octave, ratio): a ``[B, H, W, A * 4]``
      predictor reshapes to it.
    """

    min_level: int = 3
    max_level: int = 7
    num_scales: int = 3
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5)
    anchor_scale: float = 4.0

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(range(self.min_level, self.max_level + 1))

    @property
    def boxes_per_location(self) -> int:
        return self.num_scales * len(self.aspect_ratios)


def multilevel_anchors(grids: list[int], config: MultilevelAnchorConfig = MultilevelAnchorConfig()) -> np.ndarray:
    """``[A, 4]`` normalized (y_center, x_center, height, width) anchors for one square map per
    level (``grids[i]`` cells a side at level ``config.min_level + i``). Normalized by the image, a
    level's stride is ``1 / grid``, so the base size is ``anchor_scale * 2**(o/n) / grid``."""
    if len(grids) != len(config.levels):
        raise ValueError(f"{len(grids)} maps for levels {config.levels}")
    rows = []
    for grid in grids:
        sizes = [(config.anchor_scale * 2 ** (octave / config.num_scales), ratio)
                 for octave in range(config.num_scales) for ratio in config.aspect_ratios]
        base = np.array([s for s, _ in sizes]) / grid
        root = np.sqrt(np.array([a for _, a in sizes]))
        heights, widths = base / root, base * root
        centres = (np.arange(grid) + 0.5) / grid
        cy, cx = np.meshgrid(centres, centres, indexing="ij")
        n = len(sizes)
        rows.append(np.stack([np.repeat(cy.reshape(-1), n), np.repeat(cx.reshape(-1), n),
                              np.tile(heights, grid * grid), np.tile(widths, grid * grid)], axis=1))
    return np.concatenate(rows).astype(np.float32)
