"""Progressive shrinking: train one supernet so that its sub-networks work without retraining.

Once-for-All's recipe, at proxy scale: train the largest network, then open the choices stage by
stage — kernel sizes, then depths (two phases), then expand ratios (two phases, each starting by
sorting the expanded channels by importance). Every step of an elastic phase runs the sandwich
rule (Universally Slimmable Networks, Yu & Huang 2019; BigNAS): the largest sub-network, the
smallest of the phase's choices and ``random_subnets`` random ones on the same batch, at one
resolution drawn per step, gradients summed into one update; the largest is trained on the labels
and every other one also on the largest's soft predictions (in-place distillation, with
Once-for-All's ``kd_ratio`` loss; Once-for-All itself distils from a separate, frozen network).

Everything runs inside a ``tf.distribute`` strategy (the default one unless given): the batch is
split over its replicas and gradients are summed across them, so a ``MirroredStrategy`` over
several GPUs needs no change here (several workers would also need only the chief to write
checkpoints, which is not done yet). The sub-networks of a step are drawn
from a generator seeded by (seed, phase, epoch, step), so every replica and every resumed run
draws the same ones. A checkpoint is written after every epoch (``checkpoint.save``); calling
``train`` again with the same folder resumes after the last one.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from edgetailor._io import check_output_folder
from edgetailor.arch import spaces
from edgetailor.arch.spaces import Space
from edgetailor.errors import DatasetError, SupernetError
from edgetailor.supernet import checkpoint, data
from edgetailor.supernet.network import Supernet
from edgetailor.supernet.subnet import ElasticSpace, Subnet

# Learning rates relative to the elastic-kernel phase: train_ofa_net.py ``base_lr`` per task and
# phase at mit-han-lab/once-for-all@f03b2673db313b9167e2a1c2b7a5cad540cc1313 — kernel 3e-2,
# depth and expand phase 1 2.5e-3, phase 2 7.5e-3. That code downloads its full network rather
# than training it; the largest network trains here at the kernel phase's rate.
_KERNEL_LR = 3e-2
# Tracing the training step took 42 s here for the tests' two-stage space (TensorFlow builds graphs
# through the pure Python protobuf on Python 3.11); a step then ran in 0.4-1 s against 2.5-3 s
# eagerly, so runs shorter than this many steps stay eager.
GRAPH_MIN_STEPS = 30


@dataclass(frozen=True)
class Phase:
    """One phase: how many of each stage's largest kernels, depths and expands are open (0: all)."""

    name: str
    kernels: int
    depths: int
    expands: int
    lr_scale: float
    sort_groups: int | None = None  # sort expanded channels first (``Supernet.sort_channels``)


PHASES = (
    Phase("largest", 1, 1, 1, 3e-2 / _KERNEL_LR),
    Phase("kernel", 0, 1, 1, 3e-2 / _KERNEL_LR),
    Phase("depth_1", 0, 2, 1, 2.5e-3 / _KERNEL_LR),
    Phase("depth_2", 0, 0, 1, 7.5e-3 / _KERNEL_LR),
    Phase("expand_1", 0, 0, 2, 2.5e-3 / _KERNEL_LR, sort_groups=0),  # expand_ratio_stage 0
    Phase("expand_2", 0, 0, 0, 7.5e-3 / _KERNEL_LR, sort_groups=1),  # keeps expand 4's channels first
)


@dataclass(frozen=True)
class TrainOptions:
    """Settings; the defaults not sized for a CPU come from train_ofa_net.py (f03b2673)."""

    epochs: int = 5                    # per phase
    resolutions: tuple[int, ...] = ()  # px, one drawn per step; () = the space's
    batch_size: int = 64               # global, split over the replicas
    learning_rate: float = 0.4         # SGD per 64 images, scaled linearly with the batch; measured at
    # proxy scale (README: ofa_proxy on shapes); Once-for-All's 120-epoch ImageNet runs use 0.03 (base_lr),
    # which learns nothing in a run of a few hundred steps
    random_subnets: int = 2            # BigNAS's sandwich: 2 random besides largest and smallest
    kd_ratio: float = 1.0              # kd_ratio, kd_type "ce"
    label_smoothing: float = 0.1       # label_smoothing
    weight_decay: float = 3e-5         # weight_decay, not on batch norm or biases (no_decay_keys)
    momentum: float = 0.9              # momentum, Nesterov
    graph: bool | None = None          # trace the step (None: when the run has > GRAPH_MIN_STEPS steps)
    images: int = 2000                 # shapes data: training images (a quarter more held out)
    val_fraction: float = 0.2          # folder data: share of each class held out
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [(self.epochs >= 1, "epochs must be >= 1"), (self.batch_size >= 1, "batch size must be >= 1"),
                  (self.learning_rate > 0, "learning rate must be > 0"),
                  (self.random_subnets >= 0, "random sub-networks must be >= 0"),
                  (self.images >= 2, "images must be >= 2"),
                  (0 < self.val_fraction < 1, "val_fraction must be in (0, 1)"),
                  (all(r % 8 == 0 and 32 <= r <= 224 for r in self.resolutions),
                   f"resolutions must be multiples of 8 in 32..224 px (got {list(self.resolutions)})")]
        for ok, message in checks:
            if not ok:
                raise SupernetError(f"supernet training: {message}")


@dataclass(frozen=True)
class Progress:
    """Reported after every step; ``epoch`` and ``step`` count from 0."""

    phase: str
    phase_index: int
    phases: int
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float


@dataclass(frozen=True)
class TrainResult:
    folder: Path
    state: checkpoint.State
    source: data.Source
    seconds: dict[str, float]  # per phase trained in this call
    net: Supernet              # the trained supernet, as checkpointed


def sandwich(elastic: ElasticSpace, phase: Phase, rng: np.random.Generator, resolution: int,
             random_subnets: int) -> list[Subnet]:
    """The sub-networks of one step: the largest first (the teacher), then the smallest and random ones."""
    largest = elastic.largest(resolution)
    if (phase.kernels, phase.depths, phase.expands) == (1, 1, 1):
        return [largest]
    open_ = {"kernels": phase.kernels, "depths": phase.depths, "expands": phase.expands}
    return [largest, elastic.smallest_of(resolution, **open_)] + [
        elastic.sample(rng, resolution, **open_) for _ in range(random_subnets)]


class _Step:
    """One training step under ``strategy``: per sub-network a gradient pass, then one update."""

    def __init__(self, net: Supernet, strategy, optimizer, options: TrainOptions, graph: bool):
        self.strategy, self.optimizer, self.kd_ratio, self.graph = strategy, optimizer, options.kd_ratio, graph
        variables, classes, smoothing = net.trainable_variables, net.num_classes, options.label_smoothing

        def replica(images, labels, resolution, code, soft, kd_weight, total):
            x = tf.image.resize(images, tf.stack([resolution, resolution]))
            with tf.GradientTape() as tape:
                logits = net(x, training=True, subnet=code)
                ce = tf.keras.losses.categorical_crossentropy(tf.one_hot(labels, classes), logits,
                                                              from_logits=True, label_smoothing=smoothing)
                kd = -tf.reduce_sum(soft * tf.nn.log_softmax(logits), axis=-1)
                loss = tf.nn.compute_average_loss(ce + kd_weight * kd, global_batch_size=options.batch_size)
            grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return loss, tf.stop_gradient(tf.nn.softmax(logits)), [a + g for a, g in zip(total, grads)]

        def zeros(labels):
            return tf.zeros([tf.shape(labels)[0], classes]), [tf.zeros_like(v) for v in variables]

        def apply(total):
            optimizer.apply_gradients(zip(total, variables))

        wrap = tf.function if graph else (lambda function: function)
        self._grads = wrap(lambda *args: strategy.run(replica, args=args))
        self._zeros = wrap(lambda labels: strategy.run(zeros, args=(labels,)))
        self._apply = wrap(lambda total: strategy.run(apply, args=(total,)))

    def __call__(self, images, labels, resolution: int, codes, learning_rate: float) -> float:
        """Mean loss over the sub-networks ``codes`` (the first is the teacher) after one update."""
        soft, total = self._zeros(labels)
        losses = []
        for i, code in enumerate(codes):
            kd_weight = tf.constant(0.0 if i == 0 else self.kd_ratio)
            # traced: the choices as tensors, one graph for all; eager: as ints, exact-size ops
            loss, probabilities, total = self._grads(images, labels, tf.constant(resolution, tf.int32),
                                                     code.tensors() if self.graph else code, soft, kd_weight,
                                                     total)
            soft = probabilities if i == 0 else soft
            losses.append(float(self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)))
        self.optimizer.learning_rate = learning_rate  # a variable: no retrace
        self._apply(total)
        return float(np.mean(losses))


def _optimizer(options: TrainOptions, variables):
    optimizer = tf.keras.optimizers.SGD(options.learning_rate, momentum=options.momentum, nesterov=True,
                                        weight_decay=options.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bn_", "bias"])
    optimizer.build(variables)
    return optimizer


def learning_rate(options: TrainOptions, phase: Phase, step: int, steps: int) -> float:
    """Cosine decay over the phase, from the phase's rate (per 64 images, scaled to the batch);
    Once-for-All's ``calc_learning_rate`` "cosine" (ofa/utils/pytorch_utils.py, f03b2673)."""
    peak = options.learning_rate * options.batch_size / 64 * phase.lr_scale
    return 0.5 * peak * (1 + math.cos(math.pi * step / steps))


def _batches(dataset, source: data.Source):
    """The distributed dataset's batches; an undecodable image is the dataset's fault."""
    iterator = iter(dataset)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except tf.errors.InvalidArgumentError as exc:
            raise DatasetError(f"{source.name}: an image cannot be decoded "
                               f"({exc.message.splitlines()[0]})") from None


def _start(elastic: ElasticSpace, dataset, out: Path, options: TrainOptions, resolutions):
    """The checkpoint state (read or new) and the data, both checked against each other."""
    state = checkpoint.read_state(out) if out.is_dir() else None
    if state is None:
        check_output_folder(out)
    else:
        checkpoint.check_fits(state, elastic, None, out)
        if state.resolutions != tuple(resolutions):
            raise SupernetError(f"checkpoint {out} trains at {list(state.resolutions)} px; resume it with "
                                f"those resolutions (got {list(resolutions)})")
    source = data.open_source(dataset, max(resolutions), options.images, options.val_fraction, options.seed)
    if state is not None:
        checkpoint.check_fits(state, elastic, source.classes, out)
        return state, source
    out.mkdir(exist_ok=True)
    recorded = {"dataset": str(dataset) if str(dataset) == "shapes" else str(Path(dataset).resolve()),
                "resolution": max(resolutions), "images": options.images, "val_fraction": options.val_fraction,
                "seed": options.seed}
    return checkpoint.State(elastic.name, elastic.fingerprint(), source.classes, source.name, resolutions,
                            data=recorded, definition=checkpoint.definition(elastic.space)), source


def train(space: Space | str, dataset: str | Path, out: str | Path, options: TrainOptions = TrainOptions(),
          strategy: tf.distribute.Strategy | None = None,
          progress: Callable[[Progress], None] | None = None) -> TrainResult:
    """Train (or resume) a supernet over ``space`` on ``dataset`` ("shapes" or a classes folder),
    checkpointing into the folder ``out`` after every epoch."""
    elastic = ElasticSpace.of(spaces.get(space) if isinstance(space, str) else space)
    resolutions, out = tuple(options.resolutions or elastic.space.resolutions), Path(out)
    state, source = _start(elastic, dataset, out, options, resolutions)
    strategy = strategy or tf.distribute.get_strategy()
    if options.batch_size % strategy.num_replicas_in_sync:
        raise SupernetError(f"batch size {options.batch_size} does not split over "
                            f"{strategy.num_replicas_in_sync} replicas")
    images = data.TrainImages(source, max(resolutions), options.batch_size, options.seed)
    tf.random.set_seed(options.seed)  # initial weights and dropout (Keras' set_random_seed warns on 3.11)
    with strategy.scope():
        net = Supernet(elastic, len(source.classes))
        optimizer = _optimizer(options, net.trainable_variables)
    if state.weights:
        checkpoint.restore(out, state, net, optimizer)
    graph = options.graph if options.graph is not None else \
        len(PHASES) * options.epochs * images.steps > GRAPH_MIN_STEPS
    step, seconds, steps = _Step(net, strategy, optimizer, options, graph), {}, images.steps
    for index, phase in enumerate(PHASES):
        done = options.epochs if state.phase > index else state.epochs_done if state.phase == index else 0
        if done >= options.epochs:
            continue
        if not done:  # a phase starts as Once-for-All's runs do: fresh momentum, sorted channels
            for momentum in optimizer.momentums:
                momentum.assign(tf.zeros_like(momentum))
            if phase.sort_groups is not None:
                net.sort_channels(phase.sort_groups)
        started = time.perf_counter()
        for epoch in range(done, options.epochs):
            losses, epoch_started = [], time.perf_counter()
            batches = strategy.experimental_distribute_dataset(images.epoch(epoch))
            for i, (x, y) in enumerate(_batches(batches, source)):
                rng = np.random.default_rng([options.seed, index, epoch, i])
                resolution = int(rng.choice(resolutions))
                subnets = sandwich(elastic, phase, rng, resolution, options.random_subnets)
                rate = learning_rate(options, phase, epoch * steps + i, options.epochs * steps)
                losses.append(step(x, y, resolution, [net.encode(s) for s in subnets], rate))
                if not math.isfinite(losses[-1]):
                    raise SupernetError(
                        f"training diverged (loss {losses[-1]}) in phase {phase.name}, epoch {epoch + 1}, "
                        f"step {i + 1}; lower --learning-rate (now {options.learning_rate:g}); the "
                        f"checkpoint keeps the last completed epoch")
                if progress:
                    progress(Progress(phase.name, index, len(PHASES), epoch, options.epochs, i, steps, losses[-1]))
            record = {"phase": phase.name, "epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4),
                      "seconds": round(time.perf_counter() - epoch_started, 2)}
            state = checkpoint.save(out, net, optimizer, replace(
                state, phase=index, phase_name=phase.name, epochs_done=epoch + 1, history=state.history + (record,)))
        seconds[phase.name] = round(time.perf_counter() - started, 2)
    return TrainResult(out, state, source, seconds, net)
