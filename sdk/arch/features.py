"""Feature endpoints of a spec, by stride, for detection and segmentation heads (no TensorFlow).

The names are the Keras layer names the builder gives: each block's output
(``stage4_2_out``) and each inverted-residual expansion (``stage5_0_expand_act``, the
"expansion output" SSDLite takes at stride 16).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from edgetailor.arch.blocks import block_steps
from edgetailor.arch.layers import walk
from edgetailor.arch.spec import ArchSpec
from edgetailor.errors import SpecError


@dataclass(frozen=True)
class FeatureInfo:
    """One endpoint: Keras layer name, output stride (input px per feature px) and channels."""

    name: str
    stride: int
    channels: int
    kind: str  # "block" (a block's output) or "expansion" (an inverted residual's 1x1 expand)


@functools.lru_cache(maxsize=1024)
def feature_info(spec: ArchSpec) -> tuple[FeatureInfo, ...]:
    """Endpoints in graph order; the head (pooling and after) is left out.

    Cached per spec (specs are frozen): a detection pick asks for each candidate's endpoints about
    ten times (anchors, head and cost), each a walk of the whole network."""
    out: list[FeatureInfo] = []
    stride = 1
    for layer in walk(spec, num_classes=None):
        if layer.name.startswith("head.") and layer.block.kind in ("pool", "fc"):
            break
        prefix = layer.name.replace(".", "_")
        block = layer.block
        if block.kind == "ir" and any(s.name == "expand" for s in block_steps(block, layer.in_shape[2])):
            # the expand conv is the block's first op (its width is the walk's, divisor included)
            out.append(FeatureInfo(f"{prefix}_expand_act", stride, layer.ops[0].out_shape[2], "expansion"))
        stride *= block.stride
        out.append(FeatureInfo(f"{prefix}_out", stride, layer.out_shape[2], "block"))
    return tuple(out)


def last_at_stride(spec: ArchSpec, stride: int, kind: str = "block") -> FeatureInfo:
    """The deepest endpoint of ``kind`` at ``stride`` (e.g. SSDLite's stride-16 expansion)."""
    matches = [f for f in feature_info(spec) if f.stride == stride and f.kind == kind]
    if not matches:
        strides = sorted({f.stride for f in feature_info(spec) if f.kind == kind})
        raise SpecError(f"no {kind} endpoint at stride {stride}; this spec has strides {strides}")
    return matches[-1]
