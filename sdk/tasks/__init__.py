"""Tasks: classification, detection (SSDLite) and segmentation (LR-ASPP): heads, training, export.

Each task answers the specializer's steps (``tasks.base.Task``); heads describe themselves as
layer lists without TensorFlow, and training and export import it when called.
"""
from __future__ import annotations

from edgetailor.errors import SpecError
from edgetailor.tasks.base import Task
from edgetailor.tasks.classification.task import Classification
from edgetailor.tasks.dense import DenseTask
from edgetailor.tasks.detection.task import Detection
from edgetailor.tasks.segmentation.task import Segmentation

TASKS: dict[str, Task] = {task.name: task for task in (Classification(), Detection(), Segmentation())}
DENSE: dict[str, DenseTask] = {name: task for name, task in TASKS.items() if isinstance(task, DenseTask)}


def get(name: str) -> Task:
    if name not in TASKS:
        raise SpecError(f"unknown task {name!r}; expected {', '.join(TASKS)}")
    return TASKS[name]
