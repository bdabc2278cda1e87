"""The architecture registry: families (a base spec plus its scaling rule) and named zoo entries
(a family at a published width/depth/resolution, with the published figures and their source).

Names are snake_case with the width x100 suffix (``mobilenet_v3_large_100``). Any width and
resolution of a family can be asked for: ``resolve("mobilenet_v2", width=0.6, resolution=176)``.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from edgetailor import scaling
from edgetailor.spec import ArchSpec, SpecError, decode


@dataclass(frozen=True)
class Published:
    """Published ImageNet figures at the entry's default resolution, with where they come from."""

    top1: float | None
    params_m: float | None
    macs_m: float | None
    source: str
    note: str = ""  # why our count may differ from the published one, when it does


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


class UnknownArchitecture(SpecError):
    """A name that is neither a zoo entry, a family, nor an architecture string."""


def suggestions(name: str, limit: int = 3) -> list[str]:
    return difflib.get_close_matches(name, list(ZOO) + list(FAMILIES), n=limit, cutoff=0.5)


@dataclass(frozen=True)
class Resolved:
    """What a user's ARCH argument resolved to."""

    spec: ArchSpec
    name: str
    entry: ZooEntry | None = None
    family: Family | None = None


def resolve(arch: str, width: float | None = None, resolution: int | None = None) -> Resolved:
    """A zoo name, a family name or an inline architecture string, at an optional width/resolution.

    For a zoo entry, ``width`` replaces the entry's width (the family rule is applied from the
    base). For an inline spec, ``width`` scales its channels with the default rule.
    """
    arch = arch.strip()
    if arch in ZOO:
        entry = ZOO[arch]
        family = FAMILIES[entry.family]
        spec = family.spec(entry.width if width is None else width, entry.depth,
                           resolution or entry.resolution)
        return Resolved(spec, arch, entry, family)
    if arch in FAMILIES:
        family = FAMILIES[arch]
        return Resolved(family.spec(width or 1.0, 1.0, resolution), arch, None, family)
    if "|" in arch:
        spec = decode(arch)
        if width is not None or resolution is not None:
            spec = scaling.scale(spec, width or 1.0, 1.0, resolution)
        return Resolved(spec, "custom")
    hint = suggestions(arch)
    more = f"; did you mean {', '.join(hint)}?" if hint else "; see `edgetailor zoo`"
    raise UnknownArchitecture(f"unknown architecture {arch!r}{more}")


def entries() -> list[ZooEntry]:
    return list(ZOO.values())


# The published families register themselves; imported last, once the machinery above exists.
from edgetailor import zoo_families  # noqa: E402,F401
