"""Fine-tuning a pretrained classifier on a user's photos, as MediaPipe Model Maker does.

Phase 1 trains a new head (dropout 0.2 + a dense classifier) on the frozen backbone; phase 2
unfreezes the backbone at a tenth of the rate (batch norm stays frozen, its statistics
recalibrated on the user's images first, since the resolution and the images are new). Both
phases: SGD with momentum 0.9 at Model Maker's rate 0.005 per 32 images, label smoothing 0.1,
random crop and flip (mediapipe model_maker/python/vision/image_classifier/hyperparameters.py @
0f4379cd647553a32160156725c04c2d0a5241a6: learning_rate 0.005, batch_size 32, dropout_rate 0.2,
label_smoothing 0.1, do_data_augmentation; image_classifier.py @
0428550d75d82b08bccba7c17b53c94c28c708ae: the head on a backbone that trains only with
do_fine_tuning), and early stopping (patience 2) on half of the held-out split, restoring the
best epoch. The other half is never seen while training: the reported top-1 is measured on it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from edgetailor.arch.spec import ArchSpec
from edgetailor.builder.pretrained import build_pretrained
from edgetailor.tasks.classification.train import CROP_MARGIN, Dataset, Recipe, load_dataset, recalibrate_batch_norm



@dataclass(frozen=True)
class FineTuneOptions:
    head_epochs: int = 5
    full_epochs: int = 5
    learning_rate: float = 0.005     # per 32 images (Model Maker)
    full_rate_factor: float = 0.1    # phase 2 rate / phase 1 rate
    batch_size: int = 32
    label_smoothing: float = 0.1
    patience: int = 2                # epochs without a better validation top-1
    seed: int = 0


def _normalise(images):
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def _batches(images: np.ndarray, labels: np.ndarray, classes: int, options: FineTuneOptions) -> tf.data.Dataset:
    """Augmented training batches: stored a little larger, random crop and flip per epoch."""
    size = images.shape[1]
    stored = tf.image.resize(images, [round(size * CROP_MARGIN)] * 2, antialias=True)
    data = tf.data.Dataset.from_tensor_slices((stored, tf.one_hot(labels, classes)))
    data = data.shuffle(len(images), seed=options.seed, reshuffle_each_iteration=True)

    def augment(image, label):
        image = tf.image.random_crop(image, (size, size, 3))
        return _normalise(tf.image.random_flip_left_right(image)), label

    return data.map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(options.batch_size)


class _BestEpoch(tf.keras.callbacks.Callback):
    """Early stopping on validation top-1 that always ends on the best epoch's weights (Keras'
    EarlyStopping restores them only when it stops early)."""

    def __init__(self, patience: int):
        super().__init__()
        self.patience, self.best, self.weights, self.waited = patience, -1.0, None, 0

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("val_accuracy", 0.0)
        if accuracy > self.best:
            self.best, self.weights, self.waited = accuracy, self.model.get_weights(), 0
            return
        self.waited += 1
        if self.waited >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)


class _EpochLine(tf.keras.callbacks.Callback):
    def __init__(self, phase: str, epochs: int, progress):
        super().__init__()
        self.phase, self.epochs, self.progress = phase, epochs, progress

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.progress(f"{self.phase} epoch {epoch + 1}/{self.epochs}: loss {logs.get('loss', math.nan):.3f}, "
                      f"validation top-1 {100 * logs.get('val_accuracy', math.nan):.1f} %")


def split_held_out(data: Dataset) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(validation for early stopping, test for the reported figure): alternate held-out images."""
    if len(data.x_val) < 2:
        return (data.x_val, data.y_val), (data.x_val, data.y_val)
    return (data.x_val[0::2], data.y_val[0::2]), (data.x_val[1::2], data.y_val[1::2])


def fine_tune(model: tf.keras.Model, data: Dataset, options: FineTuneOptions, progress=None) -> dict:
    """Train ``model`` (softmax classifier named ``classifier`` on a pretrained backbone) in two
    phases on ``data``; returns what each phase did and the test top-1 (%)."""
    say = progress or (lambda message: None)
    classes = len(data.classes)
    (x_stop, y_stop), (x_test, y_test) = split_held_out(data)
    validation = (_normalise(x_stop), tf.one_hot(y_stop, classes))
    norms = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    recalibrate_batch_norm(model, data.x_train, batches=8, batch_size=64)
    phases = []
    for phase, epochs, rate in (("head", options.head_epochs, options.learning_rate),
                                ("fine-tune", options.full_epochs, options.learning_rate * options.full_rate_factor)):
        if epochs < 1:
            continue
        for layer in model.layers:
            layer.trainable = phase != "head" or layer.name == "classifier"
        for layer in norms:
            layer.trainable = False  # inference-mode batch norm while fine-tuning (Keras' transfer guide)
        steps = epochs * -(-len(data.x_train) // options.batch_size)
        schedule = tf.keras.optimizers.schedules.CosineDecay(rate * options.batch_size / 32, steps)
        model.compile(optimizer=tf.keras.optimizers.SGD(schedule, momentum=0.9),
                      loss=tf.keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing),
                      metrics=["accuracy"], run_eagerly=steps <= 30)
        stop = _BestEpoch(options.patience)
        say(f"{phase}: {epochs} epoch(s) at rate {rate:g}" + (" (backbone frozen)" if phase == "head" else ""))
        history = model.fit(_batches(data.x_train, data.y_train, classes, options), epochs=epochs,
                            validation_data=validation, callbacks=[stop, _EpochLine(phase, epochs, say)],
                            verbose=0)
        accuracies = history.history["val_accuracy"]
        phases.append({"phase": phase, "epochs_run": len(accuracies), "epochs": epochs, "learning_rate": rate,
                       "best_validation_top1": round(100 * max(accuracies), 2),
                       "stopped_early": len(accuracies) < epochs})
    for layer in model.layers:
        layer.trainable = True
    predictions = model.predict(_normalise(x_test), batch_size=128, verbose=0)
    top1 = round(100 * float(np.mean(np.argmax(predictions, axis=-1) == y_test)), 2)
    return {"phases": phases, "test_top1": top1, "test_images": int(len(y_test)),
            "validation_images": int(len(y_stop))}


def train_pretrained(spec: ArchSpec, family: str, weights_from: str, dataset, epochs: int,
                     name: str = "specialized", progress=None, seed: int = 0):
    """``spec`` from a pretrained start, fine-tuned on a classes folder for ``epochs`` per phase;
    (model, test top-1 %, what was done, the fine-tuning report)."""
    recipe = Recipe(dataset=str(dataset), resolution=spec.resolution, train_images=10**9, val_images=10**9,
                    seed=seed)
    data = load_dataset(recipe)
    tf.keras.utils.set_random_seed(seed)
    with warnings.catch_warnings():  # Keras 2.15 seeds with randint(1, 1e9) once seeded globally
        warnings.filterwarnings("ignore", "non-integer arguments to randrange", DeprecationWarning)
        return _train_pretrained(spec, family, weights_from, data, epochs, name, progress, seed)


def _train_pretrained(spec, family, weights_from, data, epochs, name, progress, seed):
    model, start = build_pretrained(spec, family, weights_from, num_classes=len(data.classes), dropout=0.2,
                                    name=name)
    (progress or (lambda message: None))(f"starting from {start.describe()}")
    report = fine_tune(model, data, FineTuneOptions(head_epochs=epochs, full_epochs=epochs, seed=seed), progress)
    report["start"] = start.describe()
    phases = ", then ".join(f"{p['phase']} {p['epochs_run']}/{p['epochs']} epochs" for p in report["phases"])
    description = (f"{start.describe()}; fine-tuned here on {data.name} ({phases}, Model Maker's recipe); "
                   f"measured on {report['test_images']} held-out images, the other "
                   f"{report['validation_images']} chose the epoch")
    return model, report["test_top1"], description, report
