"""edgetailor: tailor a mobile vision model to one phone and one latency budget.

The package is in rooms by stage (README "Layout"): ``arch`` (specs, the layer walk, zoo),
``latency`` (profiles), ``profiling``, ``choose``, ``builder``, ``tasks``, ``data``, ``bundle``,
``cli``. Importing this package, ``arch``, ``latency`` or ``choose`` never imports TensorFlow.

Modules that lived at the top level before the rooms (``edgetailor.spec``, ``edgetailor.zoo``,
``edgetailor.layers``, ``edgetailor.weights``, ...) still import: each old name is an alias of
the module that now holds it, resolved on first import, so scripts written against the flat
layout keep working and nothing heavy is imported until asked for.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

__version__ = "0.1.0"

MOVED = {  # old module (under edgetailor.) -> the module that holds it now
    "spec": "arch.spec", "scaling": "arch.scaling", "features": "arch.features",
    "layers": "arch.layers", "zoo": "arch.zoo", "zoo_families": "arch.families",
    "spaces": "arch.spaces", "latency": "latency.cost", "profiles": "latency.profiles",
    "space_latency": "latency.space", "calibration": "profiling.calibration",
    "calibration_data": "profiling.calibration_data", "calibration_recipes": "profiling.recipes",
    "host_profile": "profiling.host", "profile_import": "profiling.ingest",
    "converters.tflite_ops": "profiling.tflite_ops", "converters.timing": "profiling.timing",
    "accuracy": "choose.accuracy", "pick": "choose.pick", "search": "choose.search.engine",
    "search_storage": "choose.search.storage", "search_strategies": "choose.search.strategies",
    "search_report": "choose.search.report", "keras_layers": "builder.keras_layers",
    "weights": "builder.weights", "proxy_train": "tasks.classification.train",
    "ssdlite": "tasks.detection.ssdlite", "anchors": "tasks.detection.anchors",
    "box_coder": "tasks.detection.box_coder", "coco_eval": "tasks.detection.coco_eval",
    "det_train": "tasks.detection.train", "converters.detection_export": "tasks.detection.export",
    "lraspp": "tasks.segmentation.lraspp", "seg_train": "tasks.segmentation.train",
    "converters.segmentation_export": "tasks.segmentation.export", "shapes": "data.shapes",
    "datasets_det": "data.folders", "atomic": "_io", "android_harness.cli": "cli.android",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``edgetailor.<old name>`` as the module that now holds it (the same object)."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith(f"{__name__}.") or fullname.partition(".")[2] not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(f"{__name__}.{MOVED[spec.name.partition('.')[2]]}")
        self._specs[spec.name] = module.__spec__  # the import system overwrites it with the alias's
        return module

    def exec_module(self, module):
        """The module ran when it was first imported; only its own spec is put back."""
        module.__spec__ = self._specs.pop(module.__spec__.name)


sys.meta_path.append(_MovedModuleFinder())


def __getattr__(name: str):
    """``from edgetailor import zoo`` for a moved module (PEP 562)."""
    if name in MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
