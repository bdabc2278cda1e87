"""Which candidates a pick may choose when the model starts pretrained (``--pretrained``)."""
from __future__ import annotations

from pathlib import Path

from edgetailor.arch import pretrained as published
from edgetailor.tasks.base import Progress, Request


def scope(request: Request, families: tuple[str, ...], progress: Progress) -> tuple[tuple[str, ...], float | None]:
    """(families, widest width) to pick from: every family with published weights for "imagenet";
    a local file's own family, no wider than the file; without ``--pretrained``, as given."""
    if request.pretrained is None:
        return tuple(families), None
    if request.pretrained == published.IMAGENET:
        return tuple(f for f in families if f in published.FAMILIES), None
    from edgetailor.builder.pretrained import identify_or_fail

    held = identify_or_fail(Path(request.pretrained))
    progress(f"{request.pretrained} holds {held.label}: picking {held.family} up to width {held.width:g}")
    return (held.family,), held.width

