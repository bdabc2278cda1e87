"""What a supernet can be set to, read from a search space's data (pure Python, no TensorFlow).

``ElasticSpace.of(space)`` checks that a space is Once-for-All shaped — every stage a list of
per-layer ``ir`` ops that differ only in kernel and expansion (all kernel x expand pairs present),
one width, no ``skip`` — and lists its elastic dimensions: kernel and expand per layer, depth per
stage, resolution. ``Subnet`` is one point: the typed form of a choice vector of that space.
Layer slots are numbered stage by stage up to each stage's largest depth; a slot past its
stage's depth is carried (as in the choice vector and Once-for-All's ``ks``/``e`` lists) but
does not run.
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np

from edgetailor.arch.scaling import make_divisible
from edgetailor.arch.spaces import Space
from edgetailor.arch.spec import BN_EPSILON, ArchSpec, decode_block
from edgetailor.errors import SpecError, SupernetError


@dataclass(frozen=True)
class ElasticStage:
    """One stage of a supernet: fixed channels, stride and block template, elastic the rest."""

    channels: int                # resolved output channels
    stride: int
    depths: tuple[int, ...]      # ascending
    kernels: tuple[int, ...]     # ascending
    expands: tuple[float, ...]   # ascending
    ops: tuple[str, ...]         # the space's op templates, choice-vector order
    pairs: tuple[tuple[int, float], ...]  # (kernel, expand) of each op

    def op_index(self, kernel: int, expand: float) -> int:
        return self.pairs.index((kernel, float(expand)))


@dataclass(frozen=True)
class Subnet:
    """One sub-network: resolution [px], depth per stage, kernel and expand per layer slot."""

    resolution: int
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "kernels", tuple(int(k) for k in self.kernels))
        object.__setattr__(self, "expands", tuple(float(e) for e in self.expands))

    def describe(self) -> str:
        """``r176 d2,3,4,2,3 k...`` — compact, for logs and reports."""
        return (f"r{self.resolution} d{','.join(map(str, self.depths))} "
                f"k{','.join(map(str, self.kernels))} e{','.join(f'{e:g}' for e in self.expands)}")


@dataclass(frozen=True)
class ElasticSpace:
    """A search space read as a supernet: its elastic stages, fixed stem and head."""

    space: Space
    stages: tuple[ElasticStage, ...]

    @classmethod
    def of(cls, space: Space) -> "ElasticSpace":
        stages = tuple(_elastic_stage(space, i, stage) for i, stage in enumerate(space.stages))
        for block in space.stem_blocks():
            if block.kind not in ("conv", "ir"):
                raise SupernetError(f"space {space.name!r}: the supernet has no stem block {block.kind!r}")
        for block in space.head_blocks():
            if block.kind not in ("conv", "pool", "fc"):
                raise SupernetError(f"space {space.name!r}: the supernet has no head block {block.kind!r}")
        return cls(space, stages)

    @property
    def name(self) -> str:
        return self.space.name

    @property
    def slots(self) -> int:
        """Layer slots: every stage at its largest depth."""
        return sum(max(stage.depths) for stage in self.stages)

    def fingerprint(self) -> str:
        """A short hash of the space's definition: a checkpoint fits only the space it was trained on."""
        text = repr((self.space.stem, self.space.stages, self.space.head))
        if (self.space.padding, self.space.bn_eps) != ("same", BN_EPSILON):  # the same weights compute other outputs
            text += repr((self.space.padding, self.space.bn_eps))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def stage_slots(self) -> list[range]:
        """The slot numbers of each stage."""
        out, start = [], 0
        for stage in self.stages:
            out.append(range(start, start + max(stage.depths)))
            start += max(stage.depths)
        return out

    def largest(self, resolution: int | None = None) -> Subnet:
        return self._extreme(max, resolution or max(self.space.resolutions))

    def smallest(self, resolution: int | None = None) -> Subnet:
        return self._extreme(min, resolution or min(self.space.resolutions))

    def _extreme(self, pick, resolution: int) -> Subnet:
        kernels, expands = [], []
        for stage in self.stages:
            kernels += [pick(stage.kernels)] * max(stage.depths)
            expands += [pick(stage.expands)] * max(stage.depths)
        return Subnet(resolution, tuple(pick(s.depths) for s in self.stages), tuple(kernels), tuple(expands))

    def sample(self, rng: np.random.Generator, resolution: int, kernels: int = 0, depths: int = 0,
               expands: int = 0) -> Subnet:
        """A uniformly random sub-network among each stage's ``kernels`` largest kernel sizes,
        ``depths`` largest depths and ``expands`` largest expand ratios (0: all of them) —
        progressive shrinking's phases open the choices from the largest down."""
        def allowed(options: tuple, count: int) -> tuple:
            return options[-count:] if count else options

        depth_list, kernel_list, expand_list = [], [], []
        for stage in self.stages:
            depth_list.append(int(rng.choice(allowed(stage.depths, depths))))
            for _ in range(max(stage.depths)):
                kernel_list.append(int(rng.choice(allowed(stage.kernels, kernels))))
                expand_list.append(float(rng.choice(allowed(stage.expands, expands))))
        return Subnet(resolution, tuple(depth_list), tuple(kernel_list), tuple(expand_list))

    def smallest_of(self, resolution: int, kernels: int = 0, depths: int = 0, expands: int = 0) -> Subnet:
        """The smallest sub-network among the choices ``sample`` draws from."""
        def low(options: tuple, count: int):
            return (options[-count:] if count else options)[0]

        kernel_list, expand_list = [], []
        for stage in self.stages:
            kernel_list += [low(stage.kernels, kernels)] * max(stage.depths)
            expand_list += [low(stage.expands, expands)] * max(stage.depths)
        return Subnet(resolution, tuple(low(s.depths, depths) for s in self.stages),
                      tuple(kernel_list), tuple(expand_list))

    def check(self, subnet: Subnet) -> Subnet:
        """``subnet`` if it fits this space (any resolution a multiple of 8 in 32..1024 px)."""
        where = f"sub-network {subnet.describe()}"
        if len(subnet.depths) != len(self.stages) or len(subnet.kernels) != self.slots \
                or len(subnet.expands) != self.slots:
            raise SupernetError(f"{where} does not fit space {self.name!r}: it needs {len(self.stages)} "
                                f"depths and {self.slots} kernels and expands")
        if subnet.resolution % 8 or not 32 <= subnet.resolution <= 1024:
            raise SupernetError(f"{where}: resolution must be a multiple of 8 in 32..1024 px")
        for stage, slots, depth in zip(self.stages, self.stage_slots(), subnet.depths):
            if depth not in stage.depths:
                raise SupernetError(f"{where}: depth {depth} is not one of {stage.depths}")
            for slot in slots:
                if subnet.kernels[slot] not in stage.kernels or subnet.expands[slot] not in stage.expands:
                    raise SupernetError(f"{where}: layer {slot} needs a kernel in {stage.kernels} and "
                                        f"an expand in {stage.expands}")
        return subnet

    def from_choice(self, choice) -> Subnet:
        """The sub-network of a choice vector of the space (``Space.dims`` layout)."""
        choice = [int(c) for c in choice]
        try:
            self.space.decode(choice)  # validates length and ranges
        except SpecError as exc:
            raise SupernetError(str(exc)) from None
        depths, kernels, expands, position = [], [], [], 1
        for stage in self.stages:
            depths.append(stage.depths[choice[position]])
            for slot in range(max(stage.depths)):
                kernel, expand = stage.pairs[choice[position + 2 + slot]]
                kernels.append(kernel)
                expands.append(expand)
            position += 2 + max(stage.depths)
        return Subnet(self.space.resolutions[choice[0]], tuple(depths), tuple(kernels), tuple(expands))

    def to_choice(self, subnet: Subnet, resolution_index: int | None = None) -> list[int]:
        """The choice vector of ``subnet``; a resolution the space lacks needs ``resolution_index``."""
        self.check(subnet)
        if resolution_index is None:
            if subnet.resolution not in self.space.resolutions:
                raise SupernetError(f"resolution {subnet.resolution} px is not one of space {self.name!r}'s "
                                    f"{self.space.resolutions}")
            resolution_index = self.space.resolutions.index(subnet.resolution)
        choice = [resolution_index]
        for stage, slots, depth in zip(self.stages, self.stage_slots(), subnet.depths):
            choice += [stage.depths.index(depth), 0]
            choice += [stage.op_index(subnet.kernels[s], subnet.expands[s]) for s in slots]
        return choice

    def spec(self, subnet: Subnet) -> ArchSpec:
        """The ordinary spec of ``subnet``: ``space.decode`` of its choice vector, at its resolution."""
        return self.space.decode(self.to_choice(subnet, resolution_index=0)).replace(
            resolution=subnet.resolution)


def _elastic_stage(space: Space, index: int, stage) -> ElasticStage:
    where = f"space {space.name!r}, stage {index + 1}"
    if stage.shared or stage.widths != (1.0,):
        raise SupernetError(f"{where}: the supernet needs per-layer ops and one width (Once-for-All "
                            "shape); shared ops or width choices are not elastic here")
    channels = make_divisible(stage.channels * stage.widths[0], 8)  # as Space.decode resolves them
    blocks = [decode_block(f"{template}_c{channels}") for template in stage.ops]
    if any(block.kind != "ir" for block in blocks):
        raise SupernetError(f"{where}: every op must be an 'ir' block (got {stage.ops})")
    fixed = {(b.se, b.hard_se, b.act, b.groups, b.keep_expand, b.residual) for b in blocks}
    if len(fixed) != 1:
        raise SupernetError(f"{where}: ops may differ only in kernel and expand (got {stage.ops})")
    kernels = tuple(sorted({b.kernel for b in blocks}))
    expands = tuple(sorted({b.expand for b in blocks}))
    pairs = {(b.kernel, b.expand) for b in blocks}
    if len(pairs) != len(blocks) or pairs != set(itertools.product(kernels, expands)):
        raise SupernetError(f"{where}: the ops must be every kernel x expand pair once (got {stage.ops})")
    if min(stage.depths) < 1:
        raise SupernetError(f"{where}: depths must be >= 1")
    return ElasticStage(channels, stage.stride, tuple(sorted(stage.depths)), kernels, expands,
                        tuple(stage.ops), tuple((b.kernel, b.expand) for b in blocks))
