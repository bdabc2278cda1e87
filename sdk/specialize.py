"""The product's main job: the best model for one device and one latency budget, as a bundle.

Pick mode chooses among the published families at any width and resolution (``edgetailor.pick``);
the chosen spec is built, trained on the user's dataset when one is given (accuracy then
"measured"), and packaged for Android and iOS (``edgetailor.bundle``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgetailor import pick, profiles, tasks, zoo
from edgetailor.bundle import Accuracy, check_output_folder, package, read_labels
from edgetailor.spec import SpecError

DEFAULT_CLASSES = 1000
# Adam with cosine decay, from scratch. Detection: held-out AP on 800 shapes images x 10 epochs
# at 160 px, SSDLite-MobileNetV3-Small 0.5 / 1.0: 0.179 / 0.170 at 0.005, 0.208 / 0.158 at 0.01,
# 0.198 / 0.083 at 0.02 (wider backbones want lower rates). Segmentation: the rate its tests and
# benchmark validate.
DENSE_LEARNING_RATE = {"detection": 0.01, "segmentation": 0.02}


@dataclass(frozen=True)
class Training:
    """What ``--dataset`` training did: validation top-1 on the held-out split."""

    accuracy: float
    classes: tuple[str, ...]
    description: str


def train_classifier(spec, dataset: Path, epochs: int, seed: int = 0):
    """Train ``spec`` at its own resolution on a folder dataset; (model, Training)."""
    import tensorflow as tf

    from edgetailor import builder
    from edgetailor.proxy_train import Recipe, recalibrate_batch_norm, load_dataset

    recipe = Recipe(dataset=str(dataset), resolution=spec.resolution, epochs=epochs,
                    train_images=10**9, val_images=10**9, seed=seed)
    data = load_dataset(recipe)
    tf.keras.utils.set_random_seed(seed)
    model = builder.build(spec, num_classes=len(data.classes), dropout=0.2, name="specialized")
    model.compile(optimizer=tf.keras.optimizers.Adam(recipe.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    normalise = lambda images: images.astype("float32") / 127.5 - 1.0  # noqa: E731  [-1, 1], as bundled
    model.fit(normalise(data.x_train), data.y_train, batch_size=recipe.batch_size, epochs=epochs,
              shuffle=True, verbose=0)
    recalibrate_batch_norm(model, data.x_train, batches=8, batch_size=64)
    _, top1 = model.evaluate(normalise(data.x_val), data.y_val, batch_size=128, verbose=0)
    description = f"trained here on {data.name}, {recipe.describe()}"
    return model, Training(round(100 * float(top1), 2), data.classes, description)


def searched(profile: profiles.DeviceProfile, budget_ms: float, space: str, trials: int,
             strategy: str, dataset: Path | None, storage: str, seed: int = 0):
    """Search ``space`` under a hard budget (proxy training on ``dataset``, else the estimated
    accuracy); the study is stored in ``storage`` so an interrupted run resumes."""
    from edgetailor.accuracy import generic_estimator
    from edgetailor.search import SearchConfig, run_search

    if dataset is not None:
        from edgetailor.proxy_train import ProxyTrainer, Recipe

        evaluator = ProxyTrainer(Recipe(dataset=str(dataset), seed=seed))
    else:
        evaluator = generic_estimator()
    device = profile.path if Path(profile.path).is_file() else profile.name
    config = SearchConfig(space=space, device=device, budget_ms=budget_ms, objective="hard",
                          strategy=strategy, trials=trials, seed=seed, storage=storage,
                          study=f"specialize-{space}-{budget_ms:g}ms")
    result = run_search(config, evaluator)
    if result.best is None:
        raise SpecError(f"the search found nothing under {budget_ms:g} ms: {result.best_note}")
    return result


def specialize(device: str | profiles.DeviceProfile, budget_ms: float, out_dir: Path, *,
               task: str = "classification", dataset: Path | None = None,
               epochs: int = 3, labels_path: Path | None = None, families=pick.FAMILIES,
               search_space: str | None = None, trials: int = 20, strategy: str = "nsga2",
               resolution: int | None = None, quiet: bool = False,
               progress: Callable[[str], None] | None = None) -> dict:
    """Pick (or search), build (and train), package; returns a summary of the choice.

    ``task`` detection or segmentation picks a backbone for the SSDLite or LR-ASPP head at
    ``resolution`` (default: the task's); classification picks width and resolution."""
    say = progress or (lambda message: None)
    started = time.perf_counter()
    check_output_folder(out_dir)
    profile = device if isinstance(device, profiles.DeviceProfile) else profiles.load(device)
    labels = read_labels(labels_path) if labels_path else None
    if task != "classification":
        if search_space is not None:
            raise SpecError("--search re-searches classification backbones only; detection and "
                            "segmentation pick a published backbone for their head")
        return _specialize_dense(tasks.get(task), profile, budget_ms, out_dir, dataset, epochs,
                                 labels, resolution, families, say, started, quiet)
    if resolution is not None:
        raise SpecError("--resolution applies to detection and segmentation; classification "
                        "picks the resolution itself")
    if dataset is not None:
        from edgetailor.proxy_train import folder_classes

        classes = tuple(folder_classes(dataset))
        if labels is not None and list(labels) != list(classes):
            raise SpecError(f"--labels {labels_path} does not match the dataset's classes {list(classes)}")
    if search_space is not None:
        return _specialize_searched(profile, budget_ms, out_dir, dataset, epochs, labels,
                                    search_space, trials, strategy, say, started, quiet)
    result = pick.pick(profile, budget_ms, families=families)
    best = result.best
    say(f"picked {best.label}: {best.latency_ms:.1f} ms predicted, top-1 {best.top1} "
        f"({best.accuracy_kind}) from {result.candidates} candidates")
    spec = best.spec()
    arch = zoo.Resolved(spec, f"{best.family}_{round(best.width * 100):03d}_{best.resolution}",
                        None, zoo.FAMILIES[best.family])
    unmeasured = Accuracy(best.top1, best.accuracy_kind, _imagenet_source(best),
                          note="the architecture's ImageNet top-1 with trained weights; this "
                               "bundle's weights are random")
    manifest = _bundle(spec, arch, profile, budget_ms, out_dir, dataset, epochs, labels,
                       unmeasured, say, quiet)
    return {
        "out": str(out_dir), "device": profile.name, "budget_ms": budget_ms,
        "chosen": _candidate_dict(best), "runners_up": [_candidate_dict(c) for c in result.runners_up],
        "fastest": _candidate_dict(result.fastest),
        "pareto": [_candidate_dict(c) for c in result.pareto],
        "candidates": result.candidates, "accuracy": manifest.get("accuracy"),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _specialize_searched(profile, budget_ms, out_dir, dataset, epochs, labels, space, trials,
                         strategy, say, started, quiet) -> dict:
    from edgetailor.spec import decode

    storage = f"sqlite:///{Path(out_dir).resolve()}.study.db"
    say(f"searching the {space} space: {trials} trials, {strategy}, study in {storage}")
    result = searched(profile, budget_ms, space, trials, strategy, dataset, storage)
    best = result.best
    spec = decode(best.spec)
    arch = zoo.Resolved(spec, f"searched_{space}_{best.trial}", None, None)
    unmeasured = Accuracy(best.accuracy, best.accuracy_kind, best.accuracy_source,
                          note="this bundle's weights are random")
    manifest = _bundle(spec, arch, profile, budget_ms, out_dir, dataset, epochs, labels,
                       unmeasured, say, quiet)
    return {"out": str(out_dir), "device": profile.name, "budget_ms": budget_ms,
            "mode": "search", "search": result.to_dict(),
            "chosen": {"spec": best.spec, "latency_ms": round(best.latency_ms, 2),
                       "search_accuracy": best.accuracy, "accuracy_kind": best.accuracy_kind},
            "accuracy": manifest.get("accuracy"),
            "seconds": round(time.perf_counter() - started, 1)}


def _specialize_dense(task: tasks.Task, profile, budget_ms, out_dir, dataset, epochs, labels,
                      resolution, families, say, started, quiet) -> dict:
    from edgetailor.task_bundle import package_dense

    resolution = resolution or task.default_resolution
    data = _load_dense(task, dataset, resolution) if dataset is not None else None
    if data is not None:
        found = _dense_labels(task, data)
        if labels is not None and list(labels) != found:
            raise SpecError(f"--labels does not match the dataset's classes {found}")
        labels = found
    labels = list(labels or task.placeholder_labels)
    config = task.config(labels)  # checks the label count for the head
    result = tasks.pick_task(task, profile, budget_ms, len(labels), resolution, families)
    best = result.best
    say(f"picked {best.label} with {task.head_name}: {best.latency_ms:.1f} ms "
        f"predicted, backbone top-1 {best.backbone_top1} ({best.accuracy_kind}) from "
        f"{result.candidates} candidates")
    name = f"{task.head_name}_{best.family}_{round(best.width * 100):03d}_{resolution}"
    if data is not None:
        trained, accuracy = _train_dense(task, best.spec, config, data, epochs, dataset, say)
        weights = f"trained on {dataset}"
    else:
        trained = _untrained_dense(task, best, config, labels)
        accuracy = _unmeasured_dense(task, best, len(labels))
        weights = "random"
    manifest = package_dense(task.name, trained, out_dir, profile=profile, name=name, weights=weights,
                             budget_ms=budget_ms, accuracy=accuracy, predicted_ms=best.latency_ms,
                             references=list(result.references), progress=say, quiet=quiet)
    return {"out": str(out_dir), "device": profile.name, "budget_ms": budget_ms, "task": task.name,
            "ranking": tasks.RANKING_METRIC, "chosen": best.to_dict(),
            "runners_up": [c.to_dict() for c in result.runners_up],
            "fastest": result.fastest.to_dict(), "pareto": [c.to_dict() for c in result.pareto],
            "candidates": result.candidates, "published_references": list(result.references),
            "accuracy": manifest["accuracy"], "seconds": round(time.perf_counter() - started, 1)}


def _load_dense(task: tasks.Task, dataset: Path, resolution: int):
    from edgetailor import datasets_det

    load = datasets_det.load_detection_folder if task.name == "detection" else datasets_det.load_mask_folder
    data = load(dataset, size=resolution)
    if len(data.images) < 2:
        raise SpecError(f"{dataset}: {len(data.images)} image(s); training needs at least 2 "
                        "(one is held out for validation)")
    return data


def _dense_labels(task: tasks.Task, data) -> list[str]:
    return list(data.classes) if task.name == "detection" else [data.background, *data.classes]


def _train_dense(task: tasks.Task, spec, config, data, epochs: int, dataset: Path, say):
    """Train on 80 % of ``data`` and measure on the rest; (trained model, measured Accuracy)."""
    n = len(data.images)
    train, held_out = data.split(min(0.8, (n - 1) / n))  # at least one image held out
    say(f"training {task.name} on {len(train.images)} images of {dataset} for {epochs} epoch(s); "
        f"{len(held_out.images)} held out")
    rate = DENSE_LEARNING_RATE[task.name]

    def epoch_done(record: dict) -> None:
        say(f"epoch {record['epoch']}/{epochs}: loss {record['loss']:.3f} ({record['seconds']:.0f} s)")

    if task.name == "detection":
        from edgetailor import det_train

        trained = det_train.train(train, spec, config, epochs=epochs, learning_rate=rate, progress=epoch_done)
        value = det_train.evaluate(trained, held_out)["AP"]
    else:
        from edgetailor import seg_train

        trained = seg_train.train(train, spec, config, epochs=epochs, learning_rate=rate, progress=epoch_done)
        value = seg_train.evaluate(trained, held_out)["miou"]
    description = (f"trained here on {dataset}: {len(train.images)} images, {epochs} epoch(s) at "
                   f"{spec.resolution} px; measured on {len(held_out.images)} held-out images")
    return trained, Accuracy(round(100 * float(value), 2), "measured", description, metric=task.metric)


def _untrained_dense(task: tasks.Task, best: tasks.TaskCandidate, config, labels):
    if task.name == "detection":
        from edgetailor import det_train, ssdlite

        return det_train.Detector(ssdlite.build(best.spec, config), best.spec, config, tuple(labels))
    from edgetailor import lraspp, seg_train

    return seg_train.Segmenter(lraspp.build(best.spec, config), best.spec, config, tuple(labels))


def _unmeasured_dense(task: tasks.Task, best: tasks.TaskCandidate, num_labels: int) -> Accuracy:
    """The published detector's COCO mAP where the pick is one (with COCO's 90 classes), else
    the ranking figure."""
    coco = task.name == "detection" and num_labels == 90
    reference = tasks.published_reference(best.spec) if coco else None
    if reference is not None:
        return Accuracy(reference.coco_map, "published", reference.source, metric="COCO mAP (%)",
                        note="the architecture's published figure with its reference COCO weights; "
                             "this bundle's weights are random")
    return Accuracy(best.backbone_top1, best.accuracy_kind, best.accuracy_source,
                    metric=tasks.RANKING_METRIC,
                    note=f"no published {task.name} accuracy for this backbone and head: the "
                         "backbone's ImageNet top-1 is what the candidates were ranked by; this "
                         "bundle's weights are random")


def _bundle(spec, arch, profile, budget_ms, out_dir, dataset, epochs, labels,
            unmeasured: Accuracy, say, quiet: bool) -> dict:
    """Train on ``dataset`` (accuracy measured) or build with random weights (``unmeasured``
    accuracy and placeholder labels), then package; returns the manifest."""
    if dataset is not None:
        say(f"training {arch.name} on {dataset} for {epochs} epoch(s)")
        model, training = train_classifier(spec, dataset, epochs)
        labels = list(training.classes)
        accuracy = Accuracy(training.accuracy, "measured", training.description,
                            metric="validation top-1 (%) on the dataset's held-out split")
        weights = f"trained on {dataset}"
    else:
        from edgetailor import builder

        labels = labels or [f"class_{i:04d}" for i in range(DEFAULT_CLASSES)]
        model = builder.build(spec, num_classes=len(labels), name=arch.name)
        accuracy, weights = unmeasured, "random"
    return package(model, out_dir, labels=labels, device=profile, arch=arch, weights=weights,
                   budget_ms=budget_ms, accuracy=accuracy, progress=say, quiet=quiet)


def _imagenet_source(candidate: pick.Candidate) -> str:
    if candidate.accuracy_kind == "published":
        from edgetailor.accuracy import published_index

        return published_index()[(candidate.family, candidate.width, candidate.resolution)].source
    from edgetailor.accuracy import model

    return (f"estimated: {candidate.family} offset + shared log-MACs curve fitted on published "
            f"top-1 (leave-one-out error {model().loo_pp:.2f} pp)")


def _candidate_dict(c: pick.Candidate) -> dict:
    return {"family": c.family, "width": c.width, "resolution": c.resolution,
            "latency_ms": round(c.latency_ms, 2), "exact_latency": c.exact, "top1": c.top1,
            "accuracy_kind": c.accuracy_kind, "macs_m": round(c.macs / 1e6, 1)}
