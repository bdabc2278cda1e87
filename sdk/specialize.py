"""The product's main job: the best model for one device and one latency budget, as a bundle.

Orchestration only: the task (``edgetailor.tasks``) reads the dataset and the labels, chooses a
candidate under the budget (pick mode over the published families, or a search for
classification), trains it when a dataset is given (accuracy then "measured") or builds it with
random weights, and writes the bundle. The candidate's latency is priced once, with the head and
class count that ship, and the manifest reports that figure. From a trained supernet
(``Request.supernet``) the candidates are its sub-networks and the weights inherited;
``specialize_targets`` makes one bundle per phone from one supernet, with an index and selectors.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from edgetailor import tasks
from edgetailor._io import check_output_folder, write_atomically
from edgetailor.choose.candidate import check_budget
from edgetailor.supernet import searches
from edgetailor.tasks.base import QuantizeRequest, Request, SearchRequest, Task  # noqa: F401  the request types, importable here

__all__ = ["QuantizeRequest", "Request", "SearchRequest", "specialize", "specialize_targets"]


def specialize(request: Request, progress: Callable[[str], None] | None = None,
               quiet: bool = False) -> dict:
    """Choose, build (and train), bundle; returns a summary of the choice and where it went.

    ``progress`` receives one line per step; ``quiet`` keeps the converters' native log lines off
    stderr."""
    if request.search is not None and request.search.strategy in searches.STRATEGIES:
        from edgetailor.supernet.dnas_specialize import FromSearch  # FBNet, ProxylessNAS, LightNAS, ...

        task = FromSearch(request.supernet, request.finetune)
    elif request.supernet is not None:
        from edgetailor.supernet.specialize import FromSupernet

        task = FromSupernet(request.supernet, request.finetune)
    else:
        task = tasks.get(request.task)
    return _specialize(task, request, progress, quiet)


def _specialize(task: Task, request: Request, progress: Callable[[str], None] | None, quiet: bool) -> dict:
    say = progress or (lambda message: None)
    started = time.perf_counter()
    check_budget(request.budget_ms)
    check_output_folder(request.out_dir)
    task.check(request)
    data = task.load(request)
    labels = task.labels(data, request.labels)
    choice = task.choose(request, len(labels), say)
    if data is not None:
        model, accuracy = task.train(choice, data, labels, request, say)
        weights = task.weights(request)
    else:
        model, accuracy = task.untrained(choice, labels)
        weights = "random"
    extra = {}
    if request.quantize is not None:  # Request refuses it without a dataset: the model is trained here
        extra["quantized"] = task.quantize(model, data, request, say)
    manifest = task.bundle(model, labels, choice, accuracy, weights, request, say, quiet, **extra)
    return {
        "out": str(request.out_dir), "device": request.profile.name, "budget_ms": request.budget_ms,
        "task": task.name, **choice.summary,
        "chosen": choice.best.to_dict(), "runners_up": [c.to_dict() for c in choice.runners_up],
        "fastest": choice.fastest.to_dict() if choice.fastest else None,
        "pareto": [c.to_dict() for c in choice.pareto], "candidates": choice.candidates,
        "accuracy": manifest["accuracy"], "predicted_ms": manifest["latency"]["predicted_ms"],
        "quantization": manifest.get("quantization"),
        "seconds": round(time.perf_counter() - started, 1),
    }


def specialize_targets(supernet: Path, targets: list, out_dir: Path, finetune: int = 0,
                       dataset: Path | None = None, progress: Callable[[str], None] | None = None,
                       quiet: bool = False) -> dict:
    """One bundle per ``bundle.targets.Target`` from one supernet, an ``index.json`` and the apps'
    selectors, in the folder ``out_dir`` — written whole or not at all.

    Every target's budget is checked before anything is exported, so a budget no sub-network meets
    fails in seconds, naming the fastest sub-network."""
    from edgetailor.bundle import targets as multi
    from edgetailor.latency import profiles
    from edgetailor.supernet.specialize import FromSupernet

    say = progress or (lambda message: None)
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    task = FromSupernet(supernet, finetune)
    loaded = {target: profiles.load(target.device) for target in targets}
    for target, profile in loaded.items():
        task.check_target(profile, target.budget_ms)
    summaries = []

    def write(folder: Path) -> None:
        folder.mkdir()
        variants = []
        for number, (target, profile) in enumerate(loaded.items(), 1):
            say(f"target {number}/{len(targets)}: {target.variant}")
            request = Request(profile=profile, budget_ms=target.budget_ms, out_dir=folder / target.variant,
                              supernet=Path(supernet), finetune=finetune, dataset=dataset)
            summary = _specialize(task, request, progress, quiet)
            summary["out"] = str(out_dir / target.variant)
            summaries.append(summary)
            variants.append(multi.Variant(target, summary["predicted_ms"], summary["accuracy"],
                                          summary["supernet"]["subnet"]))
        multi.write_index(folder, variants, {"supernet": str(supernet), "space": task.state.space,
                                             "classes": list(task.state.classes)})
        multi.write_selectors(folder, multi.read_index(folder))

    write_atomically(out_dir, write)
    index = multi.read_index(out_dir)
    return {"out": str(out_dir), "index": str(out_dir / multi.INDEX), "variants": summaries,
            "platforms": index["platforms"]}
