"""BiFPN cells (Tan, Pang & Le 2020, EfficientDet) as node graphs, pure Python.

google/automl ``efficientdet/tf2/fpn_configs.py`` @f83fc71 (``bifpn_config``): features are
numbered in order of creation, the cell's inputs ``P3 .. P7`` first (0-4 for levels 3-7); a
top-down path makes ``P6' .. P4'`` and ``P3"`` from the level's last feature and the level above,
then a bottom-up path makes ``P4" .. P7"`` from every feature of the level and the level below.
The cell's outputs are each level's last feature.

Fusion (``efficientdet_keras.py`` @f83fc71, ``FNode.fuse_features``): ``sum`` (EfficientDet-Lite,
``hparams_config.py`` @4be6845 ``lite_common_param``) or ``fastattn`` (fast normalised fusion:
``sum_i relu(w_i) x_i / (sum_j relu(w_j) + 1e-4)``, one scalar weight per input).
"""
from __future__ import annotations

from dataclasses import dataclass

WEIGHT_METHODS = ("sum", "fastattn")


@dataclass(frozen=True)
class Node:
    """A new feature at ``level`` fused from earlier features ``inputs`` by ``combine`` (sum,
    fastattn, or NAS-FPN's attention); NAS-FPN cells are written with it too."""

    level: int
    inputs: tuple[int, ...]
    combine: str


def cell_nodes(min_level: int = 3, max_level: int = 7, weight_method: str = "sum") -> tuple[Node, ...]:
    """The new nodes of one BiFPN cell over levels ``min_level .. max_level``."""
    if weight_method not in WEIGHT_METHODS:
        raise ValueError(f"BiFPN fusion must be one of {WEIGHT_METHODS} (got {weight_method!r})")
    ids = {level: [i] for i, level in enumerate(range(min_level, max_level + 1))}
    count = max_level - min_level + 1
    nodes = []
    for level in range(max_level - 1, min_level - 1, -1):  # top-down
        nodes.append(Node(level, (ids[level][-1], ids[level + 1][-1]), weight_method))
        ids[level].append(count)
        count += 1
    for level in range(min_level + 1, max_level + 1):  # bottom-up
        nodes.append(Node(level, (*ids[level], ids[level - 1][-1]), weight_method))
        ids[level].append(count)
        count += 1
    return tuple(nodes)
