"""Which head module describes and builds a detector config (pure Python).

Every head module offers the same functions (``layers``, ``anchors``, ``num_anchors``, ``count``,
``predict_latency``, ``build``) and models with the same outputs (box codes ``[B, A, 4]``, class
logits ``[B, A, 1 + C]`` with column 0 the background), so training, export and evaluation
take any of them.
"""
from __future__ import annotations

from types import ModuleType

from edgetailor.tasks.detection import efficientdet, ssdlite, yolox

_BY_CONFIG = {ssdlite.SSDLiteConfig: ssdlite, efficientdet.EfficientDetConfig: efficientdet,
              yolox.YOLOXConfig: yolox}


def module_for(config) -> ModuleType:
    """The head module of ``config`` (an ``SSDLiteConfig``, ``EfficientDetConfig`` or ``YOLOXConfig``)."""
    try:
        return _BY_CONFIG[type(config)]
    except KeyError:
        raise TypeError(f"no detection head takes a {type(config).__name__}") from None


def name_of(config) -> str:
    """The head's name in bundles: ssdlite, efficientdet (BiFPN), nasfpn or yolox."""
    if isinstance(config, efficientdet.EfficientDetConfig):
        return "efficientdet" if config.neck.kind == "bifpn" else "nasfpn"
    return module_for(config).__name__.rsplit(".", 1)[-1]


def scores(config, logits):
    """Scores in [0, 1] ``[B, A, 1 + C]`` from the model's class output (a TF tensor): the head's
    own ``scores`` where it has one (YOLOX: objectness x class), else the sigmoid."""
    own = getattr(module_for(config), "scores", None)
    if own is not None:
        return own(logits)
    import tensorflow as tf

    return tf.sigmoid(logits)


def own_training(config) -> tuple:
    """(assign, losses) of a head that trains by its own target assignment and losses (YOLOX's
    centre prior and objectness/class BCE + L1), else (None, None): the trainer's SSD ones."""
    head = module_for(config)
    return getattr(head, "assign", None), getattr(head, "losses", None)
