"""Train and evaluate LR-ASPP segmenters (TensorFlow).

Data is anything with ``images`` (uint8 ``[n, H, W, 3]``), ``masks`` (uint8 ``[n, H, W]``,
0 = background, ``k + 1`` = class k), ``classes`` (the object classes, background not
included) and optionally ``background`` (the name of class 0): ``edgetailor.data.shapes.detection``
and ``edgetailor.data.folders.load_mask_folder`` both qualify. Loss: per-pixel softmax
cross-entropy; metric: mean IoU over the classes that occur (background included).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from edgetailor.tasks.segmentation import lraspp
from edgetailor.tasks.detection.train import resize_uint8, run_epochs, set_bn_momentum
from edgetailor.arch.spec import ArchSpec
from edgetailor.errors import DatasetError

BACKGROUND = "background"


@dataclass
class Segmenter:
    """A trained LR-ASPP: Keras model, spec, head config and labels (``labels[0]`` background)."""

    model: tf.keras.Model
    spec: ArchSpec
    config: lraspp.LRASPPConfig
    labels: tuple[str, ...]
    history: list[dict] = dataclasses.field(default_factory=list)

    @property
    def resolution(self) -> int:
        return self.spec.resolution

    def predict(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Class-index masks uint8 ``[n, R, R]`` for uint8 images ``[n, H, W, 3]``."""
        out = []
        for start in range(0, len(images), batch_size):
            x = resize_uint8(images[start:start + batch_size], self.resolution).astype(np.float32)
            logits = self.model((x - lraspp.NORM_MEAN) / lraspp.NORM_STD, training=False)
            out.append(tf.argmax(logits, -1, output_type=tf.int32).numpy().astype(np.uint8))
        return np.concatenate(out) if out else np.zeros((0, self.resolution, self.resolution), np.uint8)


def resize_masks(masks: np.ndarray, resolution: int) -> np.ndarray:
    """Nearest-neighbour resize of class masks to ``resolution`` px (unchanged if already)."""
    masks = np.asarray(masks)
    if masks.shape[1:3] == (resolution, resolution):
        return masks
    resized = tf.image.resize(masks[..., None], (resolution, resolution), method="nearest")
    return resized.numpy()[..., 0].astype(np.uint8)


def confusion(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """``[num_classes, num_classes]`` pixel counts (rows: truth, columns: prediction)."""
    t = np.asarray(truth, np.int64).ravel()
    p = np.asarray(predicted, np.int64).ravel()
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def mean_iou(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> tuple[float, np.ndarray]:
    """(mIoU over classes present in truth or prediction, per-class IoU with NaN for absent)."""
    cm = confusion(truth, predicted, num_classes).astype(np.float64)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(union > 0, inter / union, np.nan)
    return float(np.nanmean(per_class)), per_class


def training_step(model: tf.keras.Model, optimizer):
    """One compiled step on uint8 images and masks; returns (cross-entropy,)."""

    @tf.function
    def step(images, target):
        images = (tf.cast(images, tf.float32) - lraspp.NORM_MEAN) / lraspp.NORM_STD
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                tf.cast(target, tf.int32), logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))
        return (loss,)

    return step


def train(data, spec: ArchSpec, config: lraspp.LRASPPConfig | None = None, epochs: int = 10,
          batch_size: int = 32, learning_rate: float = 3e-3, seed: int = 0, flip: bool = True,
          bn_momentum: float = 0.9, progress: Callable[[dict], None] | None = None,
          backbone: tf.keras.Model | None = None) -> Segmenter:
    """Train an LR-ASPP on ``spec`` from scratch, or on ``backbone`` (``spec`` built without its top
    from a pretrained start), on ``data`` (Adam, cosine decay, flips)."""
    labels = (getattr(data, "background", BACKGROUND),) + tuple(data.classes)
    config = config or lraspp.LRASPPConfig(num_classes=len(labels))
    if config.num_classes != len(labels):
        raise DatasetError(f"the head has {config.num_classes} classes but the data has "
                         f"{len(labels)} labels with background ({', '.join(labels)})")
    if len(data.images) == 0:
        raise DatasetError("no training images")
    masks = resize_masks(data.masks, spec.resolution)
    if masks.max(initial=0) >= config.num_classes:
        raise DatasetError(f"masks hold class {int(masks.max())} but there are only "
                         f"{config.num_classes} labels ({', '.join(labels)})")
    tf.keras.utils.set_random_seed(seed)
    model = lraspp.build(spec, config, backbone=backbone)
    set_bn_momentum(model, bn_momentum)
    x = resize_uint8(data.images, spec.resolution)
    n = len(x)
    steps = max(1, n // batch_size)
    schedule = tf.keras.optimizers.schedules.CosineDecay(learning_rate, steps * epochs, alpha=0.05)
    optimizer = tf.keras.optimizers.legacy.Adam(schedule)
    step = training_step(model, optimizer)

    def batch(idx):
        images, target = x[idx % n], masks[idx % n]
        flipped = idx >= n
        images[flipped] = images[flipped][:, :, ::-1]
        target[flipped] = target[flipped][:, :, ::-1]
        return images, target

    history = run_epochs(step, batch, n, batch_size, epochs, flip, seed, ("ce_loss",), progress)
    return Segmenter(model, spec, config, labels, history)


def evaluate(segmenter: Segmenter, data) -> dict:
    """``{"miou", "per_class_iou": {label: IoU or None}, "pixel_accuracy"}`` on ``data``."""
    predicted = segmenter.predict(data.images)
    truth = resize_masks(data.masks, segmenter.resolution)
    miou, per_class = mean_iou(truth, predicted, segmenter.config.num_classes)
    return {"miou": miou, "pixel_accuracy": float((truth == predicted).mean()),
            "per_class_iou": {label: None if np.isnan(v) else float(v)
                              for label, v in zip(segmenter.labels, per_class)}}
