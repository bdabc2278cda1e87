"""Weight mapping: a trained parent's weights sliced onto a smaller network of the same space.

The parent is an ordinary builder model of the space's largest network; a candidate's layer takes
the parent's layer of the same name (the builder names layers by stage and block index, so a
shallower stage holds the parent's first blocks), sliced as Once-for-All's elastic ops slice their
weights (``edgetailor.supernet.ops``; ``dynamic_op.py`` at mit-han-lab/once-for-all@f03b2673): the
first channels on every channel axis, and the centre of a larger kernel. A plain trained parent
holds no kernel transform matrices, so the centre is taken as it is (Once-for-All's matrices start
as the identity). A layer with no parent counterpart that slices to its shape (another op kind: a
fused conv under an ``ir`` parent, a grouped conv) keeps its own initial weights; ``Inherited``
says how many did.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgetailor.supernet.network import load_by_layer_name


@dataclass(frozen=True)
class Inherited:
    """Which weighted layers took the parent's slices and which kept their initial weights."""

    inherited: tuple[str, ...]
    fresh: tuple[str, ...]

    def describe(self) -> str:
        total = len(self.inherited) + len(self.fresh)
        return f"{len(self.inherited)} of {total} weighted layers inherited"


def parent_slice(parent: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``parent`` cut to ``shape``: the centre of the two spatial axes of a 4-D kernel, the first
    entries of every other axis; None when ``parent`` is smaller on an axis or of another rank."""
    if parent.ndim != len(shape) or any(p < c for p, c in zip(parent.shape, shape)):
        return None
    index = []
    for axis, (p, c) in enumerate(zip(parent.shape, shape)):
        start = (p - c) // 2 if parent.ndim == 4 and axis < 2 else 0
        index.append(slice(start, start + c))
    return parent[tuple(index)]


def weights_by_layer(model) -> dict[str, list[np.ndarray]]:
    """Layer name -> its weights (Keras order), for every layer that has weights."""
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def inherit(model, parent: dict[str, list[np.ndarray]]) -> Inherited:
    """Set ``model``'s weights from ``parent`` (``weights_by_layer`` of the parent) by slicing."""
    weights, inherited, fresh = {}, [], []
    for name, own in weights_by_layer(model).items():
        source = parent.get(name)
        parts = ([parent_slice(p, o.shape) for p, o in zip(source, own)]
                 if source is not None and len(source) == len(own) else None)
        if parts is None or any(part is None for part in parts):
            weights[name] = own
            fresh.append(name)
        else:
            weights[name] = parts
            inherited.append(name)
    load_by_layer_name(model, weights)
    return Inherited(tuple(inherited), tuple(fresh))
