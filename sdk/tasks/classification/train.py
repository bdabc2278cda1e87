"""Proxy training: a candidate's "measured" accuracy from a short, recorded training recipe.

MnasNet trained each sampled model for 5 epochs on a held-out ImageNet subset; here a candidate
is trained for a few epochs at a reduced resolution (and optionally a reduced width) on a subset
of ``shapes`` or of a folder dataset, and scored by validation top-1 in percent. The recipe is
recorded with every result, because accuracies from different recipes do not compare.

A folder dataset has one sub-folder per class (``DIR/<class>/*.png|jpg|...``); its train and
validation split is a seeded permutation per class, so it is the same on every run.
TensorFlow is imported only when a dataset folder is decoded or a model is trained.
"""
from __future__ import annotations

import dataclasses
import gc
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetailor.arch import scaling
from edgetailor.data import shapes
from edgetailor.arch.spec import ArchSpec
from edgetailor.errors import DatasetError, SearchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
CROP_MARGIN = 1.14  # stored size / crop size for random-crop augmentation: "resize 256, crop 224"
EAGER_MAX_STEPS = 30  # below this many training steps, eager execution beats graph tracing


@dataclass(frozen=True)
class Recipe:
    """How a candidate is proxy-trained; recorded next to every measured accuracy."""

    dataset: str = "shapes"       # "shapes" or a folder path
    resolution: int = 64          # px, replaces the candidate's resolution while training
    epochs: int = 2
    train_images: int = 1000      # at most this many (shapes: exactly this many)
    val_images: int = 400
    width: float = 1.0            # width multiplier applied to the candidate while training
    batch_size: int = 32
    learning_rate: float = 0.002  # Adam
    val_fraction: float = 0.2     # folder datasets: share of each class held out
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [(16 <= self.resolution <= 1024, "resolution must be 16..1024 px"),
                  (self.epochs >= 1, "epochs must be >= 1"),
                  (self.train_images >= 1 and self.val_images >= 1, "image counts must be >= 1"),
                  (self.width > 0, "width must be > 0"), (self.batch_size >= 1, "batch size must be >= 1"),
                  (0 < self.val_fraction < 1, "val_fraction must be in (0, 1)")]
        for ok, message in checks:
            if not ok:
                raise SearchError(f"proxy recipe: {message}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return (f"{self.epochs} epoch{'s' * (self.epochs > 1)} at {self.resolution} px, width x{self.width:g}, "
                f"Adam lr {self.learning_rate:g}, batch {self.batch_size}, seed {self.seed}")


@dataclass(frozen=True)
class Dataset:
    """Arrays ready for training: uint8 images at the recipe's resolution, int labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    classes: tuple[str, ...]
    name: str


def folder_classes(root: str | Path) -> dict[str, list[Path]]:
    """Class name -> sorted image files, for a folder with one sub-folder per class."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    found = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in sub.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            found[sub.name] = files
    if not found:
        raise DatasetError(f"no images in dataset folder {root} (expected one sub-folder per class "
                           f"holding {'/'.join(s.lstrip('.') for s in IMAGE_SUFFIXES)} files)")
    if len(found) == 1:
        (name,) = found
        raise DatasetError(f"dataset folder {root} has a single class ({name!r}); "
                           "classification needs at least two class sub-folders")
    return found


def split_folder(root: str | Path, val_fraction: float = 0.2, seed: int = 0
                 ) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]], tuple[str, ...]]:
    """Deterministic per-class train/validation split: (train, val, class names)."""
    found = folder_classes(root)
    train, val = [], []
    for label, (name, files) in enumerate(found.items()):
        order = np.random.default_rng(np.random.SeedSequence([seed, label])).permutation(len(files))
        n_val = max(1, int(round(val_fraction * len(files)))) if len(files) >= 2 else 0
        val += [(files[i], label) for i in order[:n_val]]
        train += [(files[i], label) for i in order[n_val:]]
    # interleave classes so that a capped subset keeps every class
    mix = lambda items: [items[i] for i in np.random.default_rng(seed).permutation(len(items))]  # noqa: E731
    return mix(train), mix(val), tuple(found)


def _decode(files: list[tuple[Path, int]], resolution: int) -> tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf

    images = np.empty((len(files), resolution, resolution, 3), np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            image = tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False)
        except tf.errors.InvalidArgumentError:
            raise DatasetError(f"cannot decode image {path}") from None
        resized = tf.image.resize(image, (resolution, resolution), antialias=True)
        images[i] = np.clip(np.rint(resized.numpy()), 0, 255).astype(np.uint8)
    return images, np.array([label for _, label in files], np.int64)


def load_dataset(recipe: Recipe) -> Dataset:
    """The recipe's training and validation arrays (shapes generated, or a folder decoded)."""
    if recipe.dataset == "shapes":
        # validation images follow the training images in the same deterministic stream
        data = shapes.classification(recipe.train_images + recipe.val_images, recipe.resolution, recipe.seed)
        n = recipe.train_images
        return Dataset(data.images[:n], data.labels[:n], data.images[n:], data.labels[n:], data.classes,
                       f"shapes ({len(data.classes)} classes, {n} train / {recipe.val_images} val images)")
    train, val, classes = split_folder(recipe.dataset, recipe.val_fraction, recipe.seed)
    if not val:
        raise DatasetError(f"dataset folder {recipe.dataset} has too few images for a validation split "
                           "(each class needs at least 2)")
    train, val = train[:recipe.train_images], val[:recipe.val_images]
    x_train, y_train = _decode(train, recipe.resolution)
    x_val, y_val = _decode(val, recipe.resolution)
    return Dataset(x_train, y_train, x_val, y_val, classes,
                   f"{recipe.dataset} ({len(classes)} classes, {len(train)} train / {len(val)} val images)")


def proxy_spec(spec: ArchSpec, recipe: Recipe) -> ArchSpec:
    """The spec as trained: the recipe's resolution and width multiplier."""
    return scaling.scale(spec, width=recipe.width, resolution=recipe.resolution)


def _normalise(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


def recalibrate_batch_norm(model, images: np.ndarray, batches: int, batch_size: int) -> None:
    """Set BatchNorm moving statistics to their mean over a few training batches.

    A short proxy run leaves the moving averages (momentum 0.99) near their initial values, so
    evaluation would score an untrained network; this is the post-training BN recalibration
    used by one-shot NAS (Once-for-All, Single-Path One-Shot).
    """
    import tensorflow as tf

    norms = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    if not norms:
        return
    saved = [layer.momentum for layer in norms]
    for k in range(min(batches, -(-len(images) // batch_size))):
        for layer in norms:  # cumulative mean of the per-batch statistics
            layer.momentum = k / (k + 1)
        model(_normalise(images[k * batch_size:(k + 1) * batch_size]), training=True)
    for layer, momentum in zip(norms, saved):
        layer.momentum = momentum


def train(spec: ArchSpec, recipe: Recipe, data: Dataset) -> dict:
    """Train ``spec`` with ``recipe`` on ``data``; validation top-1 (%) and what was done."""
    with warnings.catch_warnings():  # Keras 2.15 seeds with randint(1, 1e9) once seeded globally
        warnings.filterwarnings("ignore", "non-integer arguments to randrange", DeprecationWarning)
        return _train(spec, recipe, data)


def _train(spec: ArchSpec, recipe: Recipe, data: Dataset) -> dict:
    import tensorflow as tf

    from edgetailor.builder import network as builder

    started = time.perf_counter()
    trained = proxy_spec(spec, recipe)
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(recipe.seed)
    model = builder.build(trained, num_classes=len(data.classes), include_top=True,
                          classifier_activation=None, name="proxy")
    steps = recipe.epochs * -(-len(data.x_train) // recipe.batch_size)
    # Tracing a training graph costs seconds per candidate (TensorFlow builds it through the pure
    # Python protobuf that protobuf 3.20 has on Python 3.11); a short run is cheaper eagerly.
    eager = steps <= EAGER_MAX_STEPS
    model.compile(optimizer=tf.keras.optimizers.Adam(recipe.learning_rate),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], run_eagerly=eager)
    history = model.fit(_normalise(data.x_train), data.y_train, batch_size=recipe.batch_size,
                        epochs=recipe.epochs, shuffle=True, verbose=0)
    recalibrate_batch_norm(model, data.x_train, batches=8, batch_size=max(recipe.batch_size, 64))
    _, accuracy = model.evaluate(_normalise(data.x_val), data.y_val, batch_size=128, verbose=0)
    result = {"accuracy": round(100.0 * float(accuracy), 2),
              "train_loss": round(float(history.history["loss"][-1]), 4),
              "params": int(model.count_params()), "steps": steps, "eager": eager,
              "seconds": round(time.perf_counter() - started, 2)}
    del model
    tf.keras.backend.clear_session()
    gc.collect()
    return result


class ProxyTrainer:
    """An evaluator ``spec -> (top-1 %, "measured", source)`` that proxy-trains each candidate.

    The dataset is checked when the trainer is made (clear errors before any search starts) and
    loaded on first use, once. ``num_classes`` is the dataset's, so a search prices the head the
    deployed model will have.
    """

    kind = "measured"

    def __init__(self, recipe: Recipe = Recipe()):
        self.recipe = recipe
        if recipe.dataset == "shapes":
            self.classes = shapes.CLASSES
        else:
            self.classes = tuple(folder_classes(recipe.dataset))
            split_folder(recipe.dataset, recipe.val_fraction, recipe.seed)
        self._data: Dataset | None = None
        self.last: dict | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = load_dataset(self.recipe)
        return self._data

    def describe(self) -> str:
        return f"measured: proxy training on {self.data.name}, {self.recipe.describe()}"

    def __call__(self, spec: ArchSpec) -> tuple[float, str, str]:
        self.last = train(spec, self.recipe, self.data)
        return self.last["accuracy"], self.kind, self.describe()


def train_classifier(spec: ArchSpec, dataset: Path, epochs: int, seed: int = 0, name: str = "specialized"):
    """Train ``spec`` at its own resolution on a classes folder; (model, validation top-1 %, what was done)."""
    import tensorflow as tf

    from edgetailor import builder

    recipe = Recipe(dataset=str(dataset), resolution=spec.resolution, epochs=epochs,
                    train_images=10**9, val_images=10**9, seed=seed)
    data = load_dataset(recipe)
    tf.keras.utils.set_random_seed(seed)
    model = builder.build(spec, num_classes=len(data.classes), dropout=0.2, name=name)
    steps = epochs * -(-len(data.x_train) // recipe.batch_size)
    model.compile(optimizer=tf.keras.optimizers.Adam(recipe.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  run_eagerly=steps <= EAGER_MAX_STEPS)  # a short run: tracing costs more (see _train)
    model.fit(_normalise(data.x_train), data.y_train, batch_size=recipe.batch_size, epochs=epochs,
              shuffle=True, verbose=0)
    recalibrate_batch_norm(model, data.x_train, batches=8, batch_size=64)
    _, top1 = model.evaluate(_normalise(data.x_val), data.y_val, batch_size=128, verbose=0)
    return model, round(100 * float(top1), 2), f"trained here on {data.name}, {recipe.describe()}"
