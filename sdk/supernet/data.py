"""Images for a supernet: a classes folder (split as ``specialize --dataset`` splits it) or ``shapes``.

Training reads a ``tf.data`` pipeline: images decoded once at a storage size a little larger than
the largest training resolution (cached in memory), then per epoch a seeded shuffle, a random
crop and a random horizontal flip — stateless ops seeded by (seed, epoch, image), so an epoch run
again after a resume sees the same images. Pixels are scaled to [-1, 1] as the classification
task's training does. Evaluation and recalibration read plain uint8 arrays at a given resolution.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from edgetailor.data import shapes
from edgetailor.errors import DatasetError
from edgetailor.tasks.classification.train import CROP_MARGIN, split_folder



@dataclass(frozen=True)
class Source:
    """A dataset's two splits: file paths (folder) or uint8 images (shapes), and labels."""

    name: str
    classes: tuple[str, ...]
    train: tuple[str, ...] | np.ndarray
    train_labels: np.ndarray
    val: tuple[str, ...] | np.ndarray
    val_labels: np.ndarray


def storage_size(resolution: int) -> int:
    """Pixels an image is stored at so that a ``resolution`` crop of it still varies."""
    return int(round(resolution * CROP_MARGIN))


def open_source(dataset: str | Path, resolution: int, images: int = 2000, val_fraction: float = 0.2,
                seed: int = 0) -> Source:
    """``dataset`` ("shapes" or a classes folder); ``images`` sizes the shapes data (train split;
    a quarter as many held out) and ``resolution`` [px] is the largest one trained."""
    if str(dataset) == "shapes":
        n_val = max(1, images // 4)
        size = min(shapes.MAX_SIZE, storage_size(resolution))
        data = shapes.classification(images + n_val, size, seed)
        return Source(f"shapes ({len(data.classes)} classes, {images} train / {n_val} val images)",
                      data.classes, data.images[:images], data.labels[:images], data.images[images:],
                      data.labels[images:])
    train, val, classes = split_folder(dataset, val_fraction, seed)
    if not val:
        raise DatasetError(f"dataset folder {dataset} has too few images for a validation split "
                           "(each class needs at least 2)")
    return Source(f"{dataset} ({len(classes)} classes, {len(train)} train / {len(val)} val images)", classes,
                  tuple(str(p) for p, _ in train), np.array([y for _, y in train], np.int64),
                  tuple(str(p) for p, _ in val), np.array([y for _, y in val], np.int64))


def _decoded(items, size: int) -> tf.data.Dataset:
    """uint8 images at ``size`` x ``size`` from paths or an array."""
    if isinstance(items, np.ndarray):
        return tf.data.Dataset.from_tensor_slices(items).map(lambda x: _resize(x, size))

    def decode(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return _resize(image, size)
    return tf.data.Dataset.from_tensor_slices(list(items)).map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def _resize(image, size: int):
    resized = tf.image.resize(image, (size, size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def normalise(images):
    """uint8 -> float32 in [-1, 1] (``edgetailor.tasks.classification.train``'s convention)."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


class TrainImages:
    """The training split as ``tf.data`` batches of ``crop`` x ``crop`` augmented images."""

    def __init__(self, source: Source, crop: int, batch_size: int, seed: int = 0):
        self.crop, self.batch_size, self.seed = crop, batch_size, seed
        self.count = len(source.train_labels)
        if self.count < batch_size:
            raise DatasetError(f"{source.name}: {self.count} training images are fewer than one batch "
                               f"of {batch_size}; lower the batch size")
        images = _decoded(source.train, storage_size(crop)).cache()
        self._base = tf.data.Dataset.zip((images, tf.data.Dataset.from_tensor_slices(source.train_labels)))

    @property
    def steps(self) -> int:
        """Batches per epoch (the last, partial batch is dropped: replicas need equal shares)."""
        return self.count // self.batch_size

    def epoch(self, epoch: int) -> tf.data.Dataset:
        crop, seed = self.crop, self.seed

        def augment(index, pair):
            image, label = pair
            key = tf.stack([tf.cast(seed * 100003 + epoch, tf.int64), index])
            image = tf.image.stateless_random_crop(image, (crop, crop, 3), key)
            image = tf.image.stateless_random_flip_left_right(image, key + 1)
            return normalise(image), label

        return (self._base.shuffle(self.count, seed=seed * 100003 + epoch, reshuffle_each_iteration=False)
                .enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE)
                .batch(self.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))


def arrays(source: Source, split: str, resolution: int, limit: int | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images of ``split`` ("train" or "val") at ``resolution`` [px], the first ``limit``."""
    items, labels = (source.train, source.train_labels) if split == "train" else (source.val, source.val_labels)
    items, labels = items[:limit], labels[:limit]
    try:
        images = np.stack(list(_decoded(items, resolution).as_numpy_iterator()))
    except tf.errors.InvalidArgumentError as exc:
        raise DatasetError(f"{source.name}: an image cannot be decoded ({exc.message.splitlines()[0]})") from None
    return images, labels
