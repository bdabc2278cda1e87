"""Width, depth and resolution scaling as pure ``ArchSpec -> ArchSpec`` functions.

Channel rounding follows the reference implementations: ``make_divisible`` is the rule shared by
TF-slim MobileNet, Keras Applications (``_make_divisible``/``_depth``), tensorflow/tpu
(``round_filters``) and GhostNet; MobileNetV1 truncates (``int(c * alpha)``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from edgetailor.arch.spec import ArchSpec, Block, SpecError

# EfficientNet compound scaling (Tan & Le 2019, Sec. 3.3): depth alpha, width beta, resolution gamma.
COMPOUND_ALPHA, COMPOUND_BETA, COMPOUND_GAMMA = 1.2, 1.1, 1.15


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never more than 10% down."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def round_repeats(repeats: int, depth: float) -> int:
    """tensorflow/tpu ``round_repeats``: ceil(depth * repeats)."""
    return int(math.ceil(depth * repeats))


@dataclass(frozen=True)
class ChannelRule:
    """How a family rounds channels under a width multiplier.

    ``rounding``: ``divisible`` (make_divisible of c*w), ``truncate_divisible`` (Keras
    MobileNetV2: make_divisible(int(c*w))) or ``truncate`` (Keras MobileNetV1: int(c*w)).
    ``stem``/``head_conv``/``head_fc``: ``always``, ``never`` or ``above_one`` (only when w > 1,
    as Keras MobileNetV2's 1280 head and MobileNetV3's 1280 fc).
    ``fixed_depth_blocks``: indices into the stage blocks (negative from the end) whose repeats
    do not scale (EfficientNet-Lite keeps its first and last block arguments).
    """

    rounding: str = "divisible"
    stem: str = "always"
    head_conv: str = "always"
    head_fc: str = "always"
    fixed_depth_blocks: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.rounding not in ("divisible", "truncate_divisible", "truncate"):
            raise SpecError(f"unknown rounding {self.rounding!r}")
        for part in (self.stem, self.head_conv, self.head_fc):
            if part not in ("always", "never", "above_one"):
                raise SpecError(f"unknown scaling policy {part!r}")


DEFAULT_RULE = ChannelRule()


def scale_channels(channels: int, width: float, divisor: int, rounding: str = "divisible") -> int:
    if rounding == "truncate":
        return max(1, int(channels * width))
    if rounding == "truncate_divisible":
        return make_divisible(int(channels * width), divisor)
    return make_divisible(channels * width, divisor)


def scale(spec: ArchSpec, width: float = 1.0, depth: float = 1.0, resolution: int | None = None,
          rule: ChannelRule = DEFAULT_RULE) -> ArchSpec:
    """Scale a spec's channels by ``width``, repeats by ``depth`` and set ``resolution``.

    The multipliers compose with those already recorded in the spec (``spec.width * width``).
    """
    if not (math.isfinite(width) and math.isfinite(depth) and width > 0 and depth > 0):
        raise SpecError(f"width and depth multipliers must be finite and positive (got {width}, {depth})")

    def channels(block: Block, policy: str = "always") -> Block:
        applies = policy == "always" or (policy == "above_one" and width > 1)
        if not applies or block.kind in ("pool", "maxpool", "ln") or block.channels == 0 or width == 1:
            return block
        return dataclasses.replace(
            block, channels=scale_channels(block.channels, width, spec.divisor, rule.rounding))

    count = len(spec.blocks)
    fixed = {index % count for index in rule.fixed_depth_blocks}
    stages, position = [], 0
    for stage in spec.stages:
        scaled = []
        for block in stage:
            repeats = block.repeats if position in fixed else round_repeats(block.repeats, depth)
            scaled.append(dataclasses.replace(channels(block), repeats=repeats))
            position += 1
        stages.append(tuple(scaled))
    head = tuple(channels(b, rule.head_conv if b.kind == "conv" else rule.head_fc) for b in spec.head)
    return dataclasses.replace(
        spec,
        stem=tuple(channels(b, rule.stem) for b in spec.stem),
        stages=tuple(stages),
        head=head,
        resolution=spec.resolution if resolution is None else int(resolution),
        width=spec.width * width,
        depth=spec.depth * depth,
    )


def compound_coefficients(phi: float, base_resolution: int = 224) -> tuple[float, float, int]:
    """EfficientNet compound scaling for ``phi``: (width, depth, resolution in px, multiple of 8)."""
    width = COMPOUND_BETA ** phi
    depth = COMPOUND_ALPHA ** phi
    resolution = int(round(base_resolution * COMPOUND_GAMMA ** phi / 8)) * 8
    return width, depth, resolution


def compound_scale(spec: ArchSpec, phi: float, rule: ChannelRule = DEFAULT_RULE) -> ArchSpec:
    """Apply compound scaling with coefficient ``phi`` to any spec, from its own resolution."""
    width, depth, resolution = compound_coefficients(phi, spec.resolution)
    return scale(spec, width=width, depth=depth, resolution=resolution, rule=rule)
