"""Which head module describes and builds a detector config (pure Python).

Every head module offers the same functions (``layers``, ``anchors``, ``num_anchors``, ``count``,
``predict_latency``, ``build``) and models with the same outputs (box codes ``[B, A, 4]``, class
logits ``[B, A, 1 + C]`` with column 0 the background), so training, export and evaluation
take any of them.
"""
from __future__ import annotations

from types import ModuleType

from edgetailor.tasks.detection import efficientdet, ssdlite

_BY_CONFIG = {ssdlite.SSDLiteConfig: ssdlite, efficientdet.EfficientDetConfig: efficientdet}


def module_for(config) -> ModuleType:
    """The head module of ``config`` (an ``SSDLiteConfig`` or an ``EfficientDetConfig``)."""
    try:
        return _BY_CONFIG[type(config)]
    except KeyError:
        raise TypeError(f"no detection head takes a {type(config).__name__}") from None


def name_of(config) -> str:
    """The head's name in bundles: ssdlite, efficientdet (BiFPN) or nasfpn."""
    if isinstance(config, efficientdet.EfficientDetConfig):
        return "efficientdet" if config.neck.kind == "bifpn" else "nasfpn"
    return module_for(config).__name__.rsplit(".", 1)[-1]
