"""Train and evaluate SSDLite detectors (TensorFlow).

Data is anything with ``images`` (uint8 ``[n, H, W, 3]``), ``boxes`` (per image ``[k, 4]``
normalized ymin, xmin, ymax, xmax), ``labels`` (per image 0-based class indices) and
``classes``: ``edgetailor.data.shapes.detection(...)`` and the folder loaders of
``edgetailor.data.folders`` both qualify. Targets are assigned once in numpy (argmax matcher,
IoU 0.5); the loss is sigmoid focal (alpha 0.75, gamma 2) or hard-negative-mined sigmoid
cross-entropy (3 negatives per positive), plus smooth-L1 on matched box codes, both divided by
the number of matched anchors. A head with its own ``assign`` and ``losses`` trains by those
(YOLOX-lite: centre-prior assignment, BCE on objectness and classes, L1 on the box offsets).
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from edgetailor.tasks.detection import box_coder, coco_eval, heads, ssdlite
from edgetailor.arch.spec import ArchSpec
from edgetailor.errors import DatasetError, SpecError


@dataclass
class Detections:
    """One image's detections: normalized corner boxes, scores in [0, 1], 0-based classes."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray


@dataclass
class Detector:
    """A trained detector (any head of ``heads``): the Keras model, what it was built from, and its
    class names."""

    model: tf.keras.Model
    spec: ArchSpec
    config: ssdlite.SSDLiteConfig  # or efficientdet.EfficientDetConfig, yolox.YOLOXConfig
    classes: tuple[str, ...]
    history: list[dict] = dataclasses.field(default_factory=list)

    @property
    def anchors(self) -> np.ndarray:
        return heads.module_for(self.config).anchors(self.spec, self.config)

    @property
    def resolution(self) -> int:
        return self.spec.resolution

    def predict(self, images: np.ndarray, score_threshold: float = 0.01, iou_threshold: float = 0.6,
                max_detections: int = 100, batch_size: int = 32) -> list[Detections]:
        """Detections for uint8 images ``[n, H, W, 3]`` (resized to the model's input)."""
        out = []
        anchors = self.anchors
        for start in range(0, len(images), batch_size):
            x = preprocess(images[start:start + batch_size], self.resolution)
            codes, logits = self.model(x, training=False)
            boxes = box_coder.decode(codes.numpy(), anchors)
            scores = heads.scores(self.config, logits)[..., 1:]
            nms = tf.image.combined_non_max_suppression(
                tf.constant(boxes[:, :, None, :]), scores, max_detections, max_detections,
                iou_threshold, score_threshold, clip_boxes=True)
            for b, s, c, n in zip(*(t.numpy() for t in nms)):
                out.append(Detections(b[:n], s[:n], c[:n].astype(np.int64)))
        return out


def preprocess(images: np.ndarray, resolution: int) -> tf.Tensor:
    """uint8 images -> float ``[-1, 1]`` at ``resolution`` px (the SSD normalisation)."""
    x = tf.convert_to_tensor(np.asarray(images), tf.float32)
    if x.shape[1:3] != (resolution, resolution):
        x = tf.image.resize(x, (resolution, resolution))
    return (x - ssdlite.NORM_MEAN) / ssdlite.NORM_STD


def resize_uint8(images: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 images at ``resolution`` x ``resolution`` (bilinear; unchanged if already there)."""
    images = np.asarray(images)
    if images.shape[1:3] == (resolution, resolution):
        return images
    resized = tf.image.resize(tf.convert_to_tensor(images, tf.float32), (resolution, resolution))
    return np.clip(np.rint(resized.numpy()), 0, 255).astype(np.uint8)


def targets(data, anchors: np.ndarray, flip: bool = False, iou_threshold: float = 0.5, assign=None):
    """Class ``[n, A]`` and box-code ``[n, A, 4]`` targets (horizontally flipped if ``flip``) by
    ``assign(boxes, labels, anchors)`` (default: the SSD matcher at ``iou_threshold``)."""
    assign = assign or (lambda b, l, a: box_coder.assign(b, l, a, iou_threshold))
    cls = np.zeros((len(data.boxes), len(anchors)), np.int32)
    box = np.zeros((len(data.boxes), len(anchors), 4), np.float32)
    for i, (boxes, labels) in enumerate(zip(data.boxes, data.labels)):
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if flip:
            boxes = np.stack([boxes[:, 0], 1 - boxes[:, 3], boxes[:, 2], 1 - boxes[:, 1]], axis=1)
        cls[i], box[i] = assign(boxes, labels, anchors)
    return cls, box


def focal_loss(onehot: tf.Tensor, logits: tf.Tensor, alpha: float = 0.75, gamma: float = 2.0) -> tf.Tensor:
    """Sigmoid focal loss per element (Lin et al.), summed by the caller."""
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=onehot, logits=logits)
    p = tf.sigmoid(logits)
    p_t = onehot * p + (1 - onehot) * (1 - p)
    alpha_t = onehot * alpha + (1 - onehot) * (1 - alpha)
    return alpha_t * tf.pow(1 - p_t, gamma) * ce


def hard_negative_loss(onehot: tf.Tensor, logits: tf.Tensor, positive: tf.Tensor,
                       ratio: int = 3) -> tf.Tensor:
    """Sigmoid cross-entropy per anchor, keeping positives and the ``ratio`` x hardest negatives."""
    ce = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=onehot, logits=logits), -1)
    negative_ce = tf.where(positive, tf.zeros_like(ce), ce)
    k = tf.minimum(ratio * tf.reduce_sum(tf.cast(positive, tf.int32), 1) + 1, tf.shape(ce)[1])
    ranked = tf.sort(negative_ce, axis=1, direction="DESCENDING")
    kth = tf.gather(ranked, k - 1, batch_dims=1)[:, None]
    keep = tf.logical_or(positive, negative_ce >= kth)
    return tf.where(keep, ce, tf.zeros_like(ce))


def losses(cls_target, box_target, codes, logits, num_classes: int, loss: str = "focal"):
    """(classification, box) losses of a batch, each divided by the matched-anchor count."""
    positive = cls_target > 0
    num_pos = tf.maximum(tf.reduce_sum(tf.cast(positive, tf.float32)), 1.0)
    # encode_background_as_zeros: background is "no class fires"; column 0 gets no loss and
    # is skipped by TFLite_Detection_PostProcess (label offset 1) and dropped for Core ML.
    onehot = tf.one_hot(cls_target, num_classes + 1)[..., 1:]
    logits = logits[..., 1:]
    if loss == "focal":
        cls_loss = tf.reduce_sum(focal_loss(onehot, logits)) / num_pos
    else:
        cls_loss = tf.reduce_sum(hard_negative_loss(onehot, logits, positive)) / num_pos
    box_l = tf.keras.losses.huber(box_target[..., None], codes[..., None], delta=1.0)  # [B, A, 4]
    box_loss = tf.reduce_sum(tf.where(positive[..., None], box_l, tf.zeros_like(box_l))) / num_pos
    return cls_loss, box_loss


# Up to this many optimizer steps a run goes eagerly: tracing the training step costs more than it
# saves (one step of a tiny detector, load 7 on 2 cores: 46 s traced, 7.8 s eager). The detection
# search's short fine-tunings go through here too.
EAGER_STEPS = 6
STEP_REPORT_S = 20.0  # within a long epoch, how often ``run_epochs`` says how far it has come


def training_step(model: tf.keras.Model, optimizer, num_classes: int, loss: str = "focal", head_losses=None):
    """One compiled step on uint8 images and matched targets; returns (class loss, box loss).
    ``head_losses(cls_target, box_target, codes, logits, num_classes)``: a head's own losses
    (YOLOX's), replacing ``losses`` and ``loss``."""

    @tf.function
    def step(images, cls_target, box_target):
        images = (tf.cast(images, tf.float32) - ssdlite.NORM_MEAN) / ssdlite.NORM_STD
        with tf.GradientTape() as tape:
            codes, logits = model(images, training=True)
            if head_losses is not None:
                cls_loss, box_loss = head_losses(cls_target, box_target, codes, logits, num_classes)
            else:
                cls_loss, box_loss = losses(cls_target, box_target, codes, logits, num_classes, loss)
            total = cls_loss + box_loss
        optimizer.apply_gradients(zip(tape.gradient(total, model.trainable_variables),
                                      model.trainable_variables))
        return cls_loss, box_loss

    return step


def train(data, spec: ArchSpec, config: ssdlite.SSDLiteConfig | None = None, epochs: int = 10,
          batch_size: int = 32, learning_rate: float = 3e-3, loss: str = "focal", seed: int = 0,
          flip: bool = True, bn_momentum: float = 0.9, progress: Callable[[dict], None] | None = None,
          backbone: tf.keras.Model | None = None, model: tf.keras.Model | None = None) -> Detector:
    """Train a detector (an SSDLite unless ``config`` names another head) on ``spec`` from scratch, or on ``backbone`` (``spec`` built without its top
    from a pretrained start), or fine-tune ``model`` (the detector already built, e.g. with
    inherited weights), on ``data``.

    Adam with a cosine-decayed ``learning_rate``; horizontal flips when ``flip``. ``progress``
    gets ``{"epoch", "loss", "cls_loss", "box_loss", "seconds"}`` after each epoch.
    """
    if loss not in ("focal", "hard_negative"):
        raise SpecError(f"loss must be 'focal' or 'hard_negative' (got {loss!r})")
    classes = tuple(data.classes)
    config = config or ssdlite.SSDLiteConfig(num_classes=len(classes))
    if config.num_classes != len(classes):
        raise DatasetError(f"the head has {config.num_classes} classes but the data has "
                         f"{len(classes)} labels ({', '.join(classes)})")
    if len(data.images) == 0:
        raise DatasetError("no training images")
    tf.keras.utils.set_random_seed(seed)
    head = heads.module_for(config)
    model = model if model is not None else head.build(spec, config, backbone=backbone)
    set_bn_momentum(model, bn_momentum)
    anchors = head.anchors(spec, config)
    x = resize_uint8(data.images, spec.resolution)
    # a head with its own assignment and losses (YOLOX) trains by them; ``loss`` is the SSD heads'
    assign, head_losses = heads.own_training(config)
    cls_t, box_t = targets(data, anchors, assign=assign)
    if flip:
        cls_f, box_f = targets(data, anchors, flip=True, assign=assign)
        cls_t, box_t = np.concatenate([cls_t, cls_f]), np.concatenate([box_t, box_f])
    n = len(data.images)
    steps = max(1, n // batch_size)
    schedule = tf.keras.optimizers.schedules.CosineDecay(learning_rate, steps * epochs, alpha=0.05)
    # The legacy Adam applies one fused op per variable: tracing the train step takes half the
    # time of the new optimizer's, and tracing dominates a short CPU run.
    optimizer = tf.keras.optimizers.legacy.Adam(schedule)
    step = training_step(model, optimizer, config.num_classes, loss, head_losses)

    def batch(idx):
        images = x[idx % n]
        flipped = idx >= n
        images[flipped] = images[flipped][:, :, ::-1]
        return images, cls_t[idx], box_t[idx]

    history = run_epochs(step, batch, n, batch_size, epochs, flip, seed, ("cls_loss", "box_loss"),
                         progress)
    return Detector(model, spec, config, classes, history)


@contextlib.contextmanager
def fast_trace():
    """Skip Grappler while training: on a small CPU it costs more than it saves (about 10 s of
    a 60 s run); the previous optimizer options come back afterwards."""
    before = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": before.get("disable_meta_optimizer", False)})


def set_bn_momentum(model: tf.keras.Model, momentum: float) -> None:
    """Short schedules need BatchNorm's moving statistics to catch up within them."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = momentum


def epoch_line(record: dict, epochs: int, what: str = "epoch") -> str:
    """One progress line for a ``run_epochs`` record: an epoch's mean loss, or how far a long
    epoch has come."""
    if "step" in record:
        return f"{what} {record['epoch']}/{epochs}: step {record['step']}/{record['steps']} ({record['seconds']:.0f} s)"
    return f"{what} {record['epoch']}/{epochs}: loss {record['loss']:.3f} ({record['seconds']:.0f} s)"


def run_epochs(step, batch, n: int, batch_size: int, epochs: int, flip: bool, seed: int,
               names: tuple[str, ...], progress=None) -> list[dict]:
    """The shared loop: shuffled batches (each image once per epoch, flipped at random when
    ``flip``: indices >= n mean "flipped"), per-epoch mean losses, ``progress`` callbacks: each
    epoch's record, and within an epoch, every ``STEP_REPORT_S`` seconds, ``{"epoch", "step",
    "steps", "seconds"}`` (a detection epoch at 320 px takes minutes here; ``epoch_line`` prints both).
    ``step`` is a ``tf.function``; it runs eagerly when the run is at most ``EAGER_STEPS`` steps."""
    rng = np.random.default_rng(seed)
    steps = max(1, n // batch_size)
    if steps * epochs <= EAGER_STEPS:
        step = step.python_function
    history = []
    with fast_trace():
        for epoch in range(epochs):
            start = time.perf_counter()
            order = rng.permutation(n)
            if flip:
                order = order + n * rng.integers(0, 2, n)
            sums = np.zeros(len(names))
            reported = start
            for s in range(steps):
                idx = np.sort(order[s * batch_size:(s + 1) * batch_size])
                sums += [float(v) for v in step(*batch(idx))]
                now = time.perf_counter()
                if progress and s + 1 < steps and now - reported >= STEP_REPORT_S:
                    reported = now
                    progress({"epoch": epoch + 1, "step": s + 1, "steps": steps, "seconds": now - start})
            record = {"epoch": epoch + 1, "loss": float(sums.sum() / steps),
                      **{k: float(v / steps) for k, v in zip(names, sums)},
                      "seconds": time.perf_counter() - start}
            history.append(record)
            if progress:
                progress(record)
    return history


def evaluate(detector: Detector, data, score_threshold: float = 0.01) -> dict[str, float]:
    """COCO box metrics of ``detector`` on ``data`` (pycocotools; ``AP`` is mAP@[.5:.95])."""
    detections = detector.predict(data.images, score_threshold=score_threshold)
    sizes = [image.shape[:2] for image in data.images]
    return coco_eval.evaluate(data.boxes, data.labels, [d.boxes for d in detections],
                              [d.scores for d in detections], [d.classes for d in detections],
                              detector.classes, sizes)
