"""The product's main job: the best model for one device and one latency budget, as a bundle.

Orchestration only: the task (``edgetailor.tasks``) reads the dataset and the labels, chooses a
candidate under the budget (pick mode over the published families, or a search for
classification), trains it when a dataset is given (accuracy then "measured") or builds it with
random weights, and writes the bundle. The candidate's latency is priced once, with the head and
class count that ship, and the manifest reports that figure.
"""
from __future__ import annotations

import time
from typing import Callable

from edgetailor import tasks
from edgetailor._io import check_output_folder
from edgetailor.choose.candidate import check_budget
from edgetailor.tasks.base import Request, SearchRequest  # noqa: F401  the request types, importable here

__all__ = ["Request", "SearchRequest", "specialize"]


def specialize(request: Request, progress: Callable[[str], None] | None = None,
               quiet: bool = False) -> dict:
    """Choose, build (and train), bundle; returns a summary of the choice and where it went.

    ``progress`` receives one line per step; ``quiet`` keeps the converters' native log lines off
    stderr."""
    say = progress or (lambda message: None)
    started = time.perf_counter()
    check_budget(request.budget_ms)
    check_output_folder(request.out_dir)
    task = tasks.get(request.task)
    task.check(request)
    data = task.load(request) if request.dataset is not None else None
    labels = task.labels(data, request.labels)
    choice = task.choose(request, len(labels), say)
    if data is not None:
        model, accuracy = task.train(choice, data, labels, request, say)
        weights = f"trained on {request.dataset}"
    else:
        model, accuracy = task.untrained(choice, labels)
        weights = "random"
    manifest = task.bundle(model, labels, choice, accuracy, weights, request, say, quiet)
    return {
        "out": str(request.out_dir), "device": request.profile.name, "budget_ms": request.budget_ms,
        "task": task.name, **choice.summary,
        "chosen": choice.best.to_dict(), "runners_up": [c.to_dict() for c in choice.runners_up],
        "fastest": choice.fastest.to_dict() if choice.fastest else None,
        "pareto": [c.to_dict() for c in choice.pareto], "candidates": choice.candidates,
        "accuracy": manifest["accuracy"], "seconds": round(time.perf_counter() - started, 1),
    }
