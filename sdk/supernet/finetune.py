"""Fine-tuning an extracted sub-network on the supernet's training split, under a ``tf.distribute`` strategy.

The same augmented ``tf.data`` batches as supernet training (random crop and flip), SGD with
Nesterov momentum and label smoothing as there, the rate decayed by cosine to zero; the model's
softmax output is trained on one-hot labels. Batch norm keeps learning its statistics.
"""
from __future__ import annotations


import tensorflow as tf

from edgetailor.supernet import data
from edgetailor.supernet.train import TrainOptions

BATCH = 64


def finetune(model: tf.keras.Model, source: data.Source, resolution: int, epochs: int, learning_rate: float,
             progress=None, strategy: tf.distribute.Strategy | None = None) -> list[float]:
    """Train ``model`` (softmax out) for ``epochs`` at ``resolution`` [px]; returns the loss per epoch."""
    options = TrainOptions()
    strategy = strategy or tf.distribute.get_strategy()
    batch = min(BATCH, len(source.train_labels))
    images = data.TrainImages(source, resolution, batch, options.seed)
    steps = epochs * images.steps
    peak = learning_rate * batch / 64
    schedule = tf.keras.optimizers.schedules.CosineDecay(peak, max(1, steps))
    with strategy.scope():
        optimizer = tf.keras.optimizers.SGD(schedule, momentum=options.momentum, nesterov=True,
                                            weight_decay=options.weight_decay)
        optimizer.exclude_from_weight_decay(var_names=["bn_", "bias"])
        loss = tf.keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing)
        model.compile(optimizer=optimizer, loss=loss, run_eagerly=steps <= 30)
    classes = model.output_shape[-1]
    losses = []
    for epoch in range(epochs):
        batches = images.epoch(epoch).map(lambda x, y: (x, tf.one_hot(y, classes)))
        history = model.fit(batches, epochs=1, verbose=0)
        losses.append(float(history.history["loss"][-1]))
        if progress:
            progress(f"fine-tune epoch {epoch + 1}/{epochs}: loss {losses[-1]:.3f}")
    return losses
