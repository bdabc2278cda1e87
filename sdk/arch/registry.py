"""The registry's records: families (a base spec plus its scaling rule) and zoo entries (a
family at a published width/depth/resolution with its figures and their source).

``families`` fills the registry; ``zoo`` resolves names against it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edgetailor.arch import scaling
from edgetailor.arch.spec import ArchSpec, decode


@dataclass(frozen=True)
class Published:
    """Published ImageNet figures at the entry's default resolution, with where they come from."""

    top1: float | None
    params_m: float | None
    macs_m: float | None
    source: str
    note: str = ""  # why our count may differ from the published one, when it does
    # published on-device latencies, references only (never calibration data): (device and runtime, ms)
    device_ms: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Family:
    """A base architecture at width 1.0 and how it scales.

    ``tables`` maps a width to a full spec string where the paper lists channels per width
    (ShuffleNetV2) instead of using a multiplier rule.
    """

    name: str
    base: str
    rule: scaling.ChannelRule = scaling.DEFAULT_RULE
    dropout: float = 0.2
    reference: str = ""
    tables: dict[float, str] = field(default_factory=dict)

    def spec(self, width: float = 1.0, depth: float = 1.0, resolution: int | None = None) -> ArchSpec:
        """The family at ``width``/``depth``/``resolution`` (px; default: the base's)."""
        if width in self.tables:
            base = decode(self.tables[width]).replace(width=width)
            return scaling.scale(base, depth=depth, resolution=resolution, rule=self.rule)
        return scaling.scale(decode(self.base), width, depth, resolution, self.rule)


@dataclass(frozen=True)
class ZooEntry:
    """A published model: a family at a width, depth and resolution."""

    name: str
    family: str
    published: Published
    width: float = 1.0
    depth: float = 1.0
    resolution: int = 224
    dropout: float | None = None

    @property
    def spec(self) -> ArchSpec:
        return FAMILIES[self.family].spec(self.width, self.depth, self.resolution)


FAMILIES: dict[str, Family] = {}
ZOO: dict[str, ZooEntry] = {}


def register_family(family: Family) -> Family:
    if family.name in FAMILIES:
        raise ValueError(f"family {family.name!r} registered twice")
    decode(family.base)  # fail at import, not at first use
    for table in family.tables.values():
        decode(table)
    FAMILIES[family.name] = family
    return family


def register(entry: ZooEntry) -> ZooEntry:
    if entry.name in ZOO:
        raise ValueError(f"zoo entry {entry.name!r} registered twice")
    if entry.family not in FAMILIES:
        raise ValueError(f"zoo entry {entry.name!r} names unknown family {entry.family!r}")
    ZOO[entry.name] = entry
    return entry
