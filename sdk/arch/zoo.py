"""The architecture registry: families (a base spec plus its scaling rule) and named zoo entries
(a family at a published width/depth/resolution, with the published figures and their source).

Names are snake_case with the width x100 suffix (``mobilenet_v3_large_100``). Any width and
resolution of a family can be asked for: ``resolve("mobilenet_v2", width=0.6, resolution=176)``.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from edgetailor.arch import families, scaling  # noqa: F401  families fill the registry on import
from edgetailor.arch.registry import FAMILIES, ZOO, Family, Published, ZooEntry, register, register_family  # noqa: F401
from edgetailor.arch.spec import ArchSpec, SpecError, decode


class UnknownArchitecture(SpecError):
    """A name that is neither a zoo entry, a family, nor an architecture string."""


def suggestions(name: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` known names close to ``name``, each once (a family and its zoo entry can
    share a name, as ``fbnet_b`` does)."""
    known = list(dict.fromkeys(list(ZOO) + list(FAMILIES)))
    return difflib.get_close_matches(name, known, n=limit, cutoff=0.5)


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

