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


@dataclass(frozen=True)
class Evaluation:
    subnet: Subnet
    spec: ArchSpec
    top1: float               # held-out top-1, percent
    val_images: int
    calibration_images: int
    seconds: float


def recalibrated(net: Supernet, subnet: Subnet, source: data.Source,
                 images: int = CALIBRATION_IMAGES) -> tuple[ArchSpec, tf.keras.Model, int]:
    """``subnet`` extracted (logits out) with batch-norm statistics from ``images`` training images."""
    spec, model = net.extract(subnet, classifier_activation=None)
    calibration, _ = data.arrays(source, "train", subnet.resolution, limit=images)
    batch = min(CALIBRATION_BATCH, len(calibration))
    recalibrate_batch_norm(model, calibration, batches=-(-len(calibration) // batch), batch_size=batch)
    return spec, model, len(calibration)


def evaluate(net: Supernet, subnet: Subnet, source: data.Source,
             images: int = CALIBRATION_IMAGES) -> Evaluation:
    """Top-1 [%] of ``subnet`` with inherited weights and recalibrated batch norm."""
    started = time.perf_counter()
    spec, model, calibrated = recalibrated(net, subnet, source, images)
    x_val, y_val = data.arrays(source, "val", subnet.resolution)
    logits = model.predict(data.normalise(x_val), batch_size=128, verbose=0)
    top1 = 100.0 * float(np.mean(np.argmax(logits, axis=-1) == y_val))
    return Evaluation(subnet, spec, round(top1, 2), len(y_val), calibrated,
                      round(time.perf_counter() - started, 2))
