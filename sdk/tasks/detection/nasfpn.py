"""NAS-FPN cells (Ghiasi, Lin & Le 2019) as node graphs, pure Python.

tensorflow/tpu ``models/official/detection/modeling/architecture/nasfpn.py`` @1754ba8:
``NASFPN_BLOCK_SPECS``, the searched cell of seven merging blocks, each ``(level, combine,
(input0, input1), is_output)`` over features numbered in order of creation (the cell's inputs
``P3 .. P7`` are 0-4). ``attention`` is its global attention: the coarser input ``a`` gates the
other, ``a + b * sigmoid(global_max(a))``; ``sum`` adds. An output block also sums every earlier
feature of its level that nothing has read yet (``_build_feature_pyramid``); that rule depends on
the graph only, so ``cell_nodes`` resolves it here. The cell's outputs are the last feature of each
level. The lite variant for phones (the paper's NAS-FPNLite) keeps the cell and uses separable
3x3 convolutions and fewer channels (``neck.NeckConfig``).
"""
from __future__ import annotations

from edgetailor.tasks.detection.bifpn import Node

BLOCK_SPECS = (
    (4, "attention", (1, 3), False),
    (4, "sum", (1, 5), False),
    (3, "sum", (0, 6), True),
    (4, "sum", (6, 7), True),
    (5, "attention", (7, 8), True),
    (7, "attention", (6, 9), True),
    (6, "attention", (9, 10), True),
)


def cell_nodes(min_level: int = 3, max_level: int = 7) -> tuple[Node, ...]:
    """The seven merging blocks of one NAS-FPN cell, with the unread same-level features that
    output blocks add appended to their inputs."""
    if (min_level, max_level) != (3, 7):
        raise ValueError("the published NAS-FPN cell reads and writes levels 3-7")
    levels = list(range(min_level, max_level + 1))
    reads = [0] * len(levels)
    nodes = []
    for level, combine, (a, b), is_output in BLOCK_SPECS:
        reads[a] += 1
        reads[b] += 1
        extra = []
        if is_output:
            for j, (feature_level, n) in enumerate(zip(levels, reads)):
                if n == 0 and feature_level == level:
                    reads[j] += 1
                    extra.append(j)
        nodes.append(Node(level, (a, b, *extra), combine))
        levels.append(level)
        reads.append(0)
    return tuple(nodes)
