"""A sub-network's measured accuracy: extract it, recalibrate its batch norm, score the held-out split.

Batch-norm statistics are recomputed for each sub-network from training images, as Once-for-All
does before every evaluation (``set_running_statistics`` over 2,000 images in batches of 200,
``run_manager.py`` ``reset_running_statistics`` at mit-han-lab/once-for-all@f03b2673): the same
ten batches here, or as many of the training images as there are.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from edgetailor.arch.spec import ArchSpec
from edgetailor.supernet import data
from edgetailor.supernet.network import Supernet
from edgetailor.supernet.subnet import Subnet
from edgetailor.tasks.classification.train import recalibrate_batch_norm

CALIBRATION_IMAGES = 2000  # Once-for-All's subset_size
CALIBRATION_BATCH = 200    # and subset_batch_size
EVAL_BATCH = 128


@dataclass(frozen=True)
class Evaluation:
    subnet: Subnet
    spec: ArchSpec
    top1: float               # held-out top-1, percent
    val_images: int
    calibration_images: int
    seconds: float


def recalibrated(net: Supernet, subnet: Subnet, source: data.Source, images: int = CALIBRATION_IMAGES,
                 classifier_activation: str | None = None) -> tuple[ArchSpec, tf.keras.Model, int]:
    """``subnet`` extracted (logits out unless ``classifier_activation``) with batch-norm statistics
    from ``images`` training images."""
    spec, model = net.extract(subnet, classifier_activation=classifier_activation)
    calibration, _ = data.arrays(source, "train", subnet.resolution, limit=images)
    batch = min(CALIBRATION_BATCH, len(calibration))
    recalibrate_batch_norm(model, calibration, batches=-(-len(calibration) // batch), batch_size=batch)
    return spec, model, len(calibration)


def top1(model: tf.keras.Model, source: data.Source, resolution: int) -> tuple[float, int]:
    """Held-out top-1 [%] of ``model`` at ``resolution`` [px], and the number of images scored."""
    x_val, y_val = data.arrays(source, "val", resolution)
    scores = np.concatenate([model(data.normalise(x_val[i:i + EVAL_BATCH]), training=False).numpy()
                             for i in range(0, len(x_val), EVAL_BATCH)])
    return round(100.0 * float(np.mean(np.argmax(scores, axis=-1) == y_val)), 2), len(y_val)


def evaluate(net: Supernet, subnet: Subnet, source: data.Source,
             images: int = CALIBRATION_IMAGES) -> Evaluation:
    """Top-1 [%] of ``subnet`` with inherited weights and recalibrated batch norm."""
    started = time.perf_counter()
    spec, model, calibrated = recalibrated(net, subnet, source, images)
    score, scored = top1(model, source, subnet.resolution)
    return Evaluation(subnet, spec, score, scored, calibrated, round(time.perf_counter() - started, 2))
