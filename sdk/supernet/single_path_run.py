"""The search loop Single-Path NAS and PruNet share: data, ``tf.distribute`` steps, per-epoch checkpoint
and progress, resume, and the found network extracted, recalibrated, scored and written.

A strategy hands in a ``Searcher`` (its trainable state as a ``tf.Module``, its forward pass that
also returns the expected latency, its loss's latency term and its current decision); everything
else is here. Each epoch ends with ``checkpoint.save`` (the network, the strategy's variables and the
optimizer, then ``state.json``); the same request run again continues after the last saved epoch,
and once ``result.json`` is written it returns that result without training
(``searches`` contract, ``edgetailor.supernet.searches``).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import tensorflow as tf

from edgetailor._io import check_output_folder
from edgetailor.arch import spaces
from edgetailor.errors import SearchError, SupernetError
from edgetailor.supernet import checkpoint, data, searches
from edgetailor.supernet.evaluate import CALIBRATION_BATCH, CALIBRATION_IMAGES, top1
from edgetailor.supernet.network import Supernet
from edgetailor.supernet.single_path_ops import Decision, Tables, compact, extract, tables
from edgetailor.supernet.subnet import ElasticSpace
from edgetailor.supernet.train import GRAPH_MIN_STEPS, _batches
from edgetailor.tasks.classification.train import recalibrate_batch_norm

LABEL_SMOOTHING = 0.1  # search_main.py ``label_smoothing`` (dstamoulis/single-path-nas@21c1f3e9)


class Searcher(Protocol):
    module: tf.Module            # everything the strategy trains or keeps (checkpointed with the optimizer)
    net: Supernet

    def variables(self) -> list: ...
    def optimizer(self): ...
    def begin_epoch(self, epoch: int, epochs: int) -> None: ...
    def forward(self, images, training: bool): ...          # (logits, expected latency [ms] tensor)
    def latency_loss(self, expected_ms): ...
    def decision(self) -> Decision: ...
    def end_epoch(self, epoch: int, epochs: int) -> dict: ...  # the strategy's own figures for the report
    def forward_macs(self) -> int: ...                       # MACs one image costs in a search step now
    def step_key(self) -> tuple: ...                         # what the traced step depends on (retraced when it changes)


def settings(request: searches.Request, defaults: dict) -> dict:
    """``defaults`` overridden by ``request.settings``; an unknown name or a wrong type is an error."""
    unknown = sorted(set(request.settings) - set(defaults))
    if unknown:
        raise SearchError(f"{request.strategy} search has no setting {unknown[0]!r}; settings: "
                          f"{', '.join(sorted(defaults))}")
    out = dict(defaults)
    for name, value in request.settings.items():
        kind = type(defaults[name])
        if kind is bool and not isinstance(value, bool) or kind is float and not isinstance(value, (int, float)):
            raise SearchError(f"{request.strategy} search: setting {name!r} must be a {kind.__name__} (got {value!r})")
        out[name] = kind(value)
    return out


def _start(request: searches.Request, elastic: ElasticSpace, out: Path):
    state = checkpoint.read_state(out) if out.is_dir() else None
    if state is None:
        check_output_folder(out)
    else:
        checkpoint.check_fits(state, elastic, None, out)
        if state.phase_name != request.strategy or state.resolutions != (request.resolution,):
            raise SearchError(f"{out} holds a {state.phase_name or 'supernet'} run at {list(state.resolutions)} px; "
                              f"pick another --out for a {request.strategy} search at {request.resolution} px")
    source = data.open_source(request.dataset, request.resolution, request.images, 0.2, request.seed)
    if state is not None:
        checkpoint.check_fits(state, elastic, source.classes, out)
        return state, source
    out.mkdir(parents=True, exist_ok=True)
    recorded = {"dataset": str(request.dataset) if str(request.dataset) == "shapes" else
                str(Path(request.dataset).resolve()), "resolution": request.resolution, "images": request.images,
                "val_fraction": 0.2, "seed": request.seed}
    return checkpoint.State(elastic.name, elastic.fingerprint(), source.classes, source.name, (request.resolution,),
                            phase=0, phase_name=request.strategy, data=recorded,
                            definition=checkpoint.definition(elastic.space)), source


def _step(searcher: Searcher, strategy, optimizer, batch_size: int, graph: bool) -> Callable:
    variables, classes = searcher.variables(), searcher.net.num_classes

    def replica(images, labels):
        with tf.GradientTape() as tape:
            logits, expected = searcher.forward(images, training=True)
            ce = tf.keras.losses.categorical_crossentropy(tf.one_hot(labels, classes), logits, from_logits=True,
                                                          label_smoothing=LABEL_SMOOTHING)
            loss = tf.nn.compute_average_loss(ce, global_batch_size=batch_size) + \
                searcher.latency_loss(expected) / strategy.num_replicas_in_sync
        grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        optimizer.apply_gradients(zip(grads, variables))
        return loss, expected / strategy.num_replicas_in_sync

    run = lambda images, labels: strategy.run(replica, args=(images, labels))  # noqa: E731
    return tf.function(run) if graph else run


def search(request: searches.Request, build: Callable[[Supernet, Tables, dict], Searcher], defaults: dict,
           describe: Callable[[dict], tuple[str, ...]]) -> searches.Result:
    """Run (or resume, or return the finished) ``request`` with the searcher ``build`` makes."""
    out = Path(request.out)
    finished = searches.read_result(out) if out.is_dir() else None
    if finished is not None:
        if finished.strategy != request.strategy:
            raise SearchError(f"{out} holds a finished {finished.strategy} search; pick another --out")
        return finished
    options = settings(request, defaults)
    elastic = ElasticSpace.of(spaces.get(request.space))
    state, source = _start(request, elastic, out)
    strategy = tf.distribute.get_strategy()
    if request.batch_size % strategy.num_replicas_in_sync:
        raise SearchError(f"batch size {request.batch_size} does not split over "
                          f"{strategy.num_replicas_in_sync} replicas")
    images = data.TrainImages(source, request.resolution, request.batch_size, request.seed)
    table = tables(elastic, request.profile, request.resolution, len(source.classes))
    tf.random.set_seed(request.seed)
    with strategy.scope():
        net = Supernet(elastic, len(source.classes))
        searcher = build(net, table, {**options, "budget_ms": request.budget_ms})
        optimizer = searcher.optimizer()
        optimizer.build(searcher.variables())
    if state.weights:
        checkpoint.restore(out, state, searcher.module, optimizer)
    graph, traced = request.epochs * images.steps > GRAPH_MIN_STEPS, {}
    for epoch in range(state.epochs_done, request.epochs):
        started, losses, expected = time.perf_counter(), [], []
        searcher.begin_epoch(epoch, request.epochs)
        key = searcher.step_key()
        if key not in traced:  # the strategy's structure changed (warm-up over, blocks pruned): a new step
            traced[key] = _step(searcher, strategy, optimizer, request.batch_size, graph)
        step, macs = traced[key], searcher.forward_macs()
        batches = strategy.experimental_distribute_dataset(images.epoch(epoch))
        for x, y in _batches(batches, source):
            loss, ms = step(x, y)
            losses.append(float(strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)))
            expected.append(float(strategy.reduce(tf.distribute.ReduceOp.SUM, ms, axis=None)))
            if not math.isfinite(losses[-1]):
                raise SupernetError(f"{request.strategy} search diverged (loss {losses[-1]}) in epoch {epoch + 1}; "
                                    "lower its learning_rate setting; the checkpoint keeps the last completed epoch")
        extra = searcher.end_epoch(epoch, request.epochs)
        decision = searcher.decision()
        subnet, _ = compact(elastic, decision, request.resolution)
        report = searches.EpochReport(
            request.strategy, epoch + 1, request.epochs, round(float(np.mean(losses)), 4),
            round(float(np.mean(expected)), 4), round(decision.latency_ms(table), 4),
            elastic.spec(subnet).encode(), round(time.perf_counter() - started, 2),
            {"mmacs_per_image": round(macs / 1e6, 3), "steps": len(losses), **extra})
        state = checkpoint.save(out, searcher.module, optimizer,
                                replace(state, epochs_done=epoch + 1, history=state.history + (asdict(report),)))
        if request.progress:
            request.progress(report)
    return _finish(request, searcher, table, source, state, describe(options))


def _finish(request, searcher: Searcher, table: Tables, source: data.Source, state: checkpoint.State,
            notes: tuple[str, ...]) -> searches.Result:
    """Extract the decided network, recalibrate its batch norm, score it, write weights and result."""
    started, out = time.perf_counter(), Path(request.out)
    decision = searcher.decision()
    spec, model = extract(searcher.net, decision, request.resolution)
    calibration, _ = data.arrays(source, "train", request.resolution, limit=CALIBRATION_IMAGES)
    batch = min(CALIBRATION_BATCH, len(calibration))
    recalibrate_batch_norm(model, calibration, batches=-(-len(calibration) // batch), batch_size=batch)
    score, scored = top1(model, source, request.resolution)
    searches.save_weights(model, out / searches.WEIGHTS)
    subnet, _ = compact(searcher.net.elastic, decision, request.resolution)
    predicted = request.profile.predict(spec, len(source.classes)).total_ms
    seconds = sum(entry["seconds"] for entry in state.history) + time.perf_counter() - started
    result = searches.Result(
        request.strategy, request.space, request.profile.name, str(request.profile.version), request.budget_ms,
        spec, tuple(searcher.net.elastic.to_choice(subnet, resolution_index=0)), predicted,
        tuple(source.classes), dict(state.data), state.history, out / searches.WEIGHTS, round(seconds, 2),
        notes + (f"inherited weights, batch norm recalibrated on {len(calibration)} training images: held-out "
                 f"top-1 {score:.2f} % on {scored} images (not fine-tuned)",))
    searches.write_result(out, result)
    return result
