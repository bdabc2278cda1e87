"""The detection-backbone search's evaluator: a parent trained once, weight-mapped onto each candidate.

No ImageNet pre-training: the parent (the space's largest network with the head,
``tasks.detection.search_space.parent_choices``) is trained once on the user's COCO folder at the
proxy scale (``Recipe``: resolution, width), stored in ``OUT/parent/`` as plain npz + JSON and
reused by a rerun. Each candidate, at the same proxy scale, inherits the parent's weights by
``inherit`` (first channels, first blocks of each stage, centre of larger kernels), is fine-tuned
for a few epochs on the training split and scored by COCO mAP@[.5:.95] (pycocotools,
``tasks.detection.coco_eval``) on the held-out split (the folder's last 20 %, as the detection
task splits). TensorFlow is imported only when training or scoring.

Several workers sharing a study (``--storage``) each train their own parent in their own OUT, from
the same seed; TensorFlow on a CPU is close to, not exactly, deterministic, so their parents may
differ slightly.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgetailor import _io
from edgetailor.arch import scaling, spaces
from edgetailor.arch.spec import ArchSpec
from edgetailor.errors import DatasetError, SearchError
from edgetailor.tasks.detection.search_space import METRIC, head_config, parent_choices

PARENT_FORMAT = "edgetailor.detection_parent/1"
# Adam from scratch for the parent, as the detection task trains (tasks.detection.task.Detection's
# 0.01, measured there); the fine-tuning rate of an inherited candidate is a fifth of it, untuned
# here (Once-for-All fine-tunes extracted sub-networks at a lower rate than it trains).
PARENT_LEARNING_RATE = 0.01
FINETUNE_LEARNING_RATE = 0.002
BATCH_SIZE = 32  # tasks.detection.train.train's default


@dataclass(frozen=True)
class Recipe:
    """How candidates are scored: data, head, proxy scale [px, width multiplier], epochs, seed."""

    dataset: str
    space: str
    head: str = "ssdlite"
    resolution: int = 128
    width: float = 0.5
    parent_epochs: int = 10
    epochs: int = 3
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def parent_settings(self) -> dict:
        """What the parent depends on (all but the candidates' fine-tuning epochs)."""
        return {k: v for k, v in self.to_dict().items() if k != "epochs"}

    def describe(self) -> str:
        return f"{self.resolution} px, width x{self.width:g}, {self.head} head"


def load_coco(folder: str | Path, resolution: int):
    """The COCO folder at ``resolution`` px, split 80 / 20 (training, held-out) in folder order."""
    from edgetailor.data import folders
    from edgetailor.tasks.detection.task import Detection

    folder = Path(folder)
    if not (folder / "labels.json").is_file():
        raise DatasetError(f"{folder} is not a COCO folder (images/ + labels.json)")
    data = folders.load_coco_folder(folder, size=resolution)
    if len(data.images) < 2:
        raise DatasetError(f"{folder}: {len(data.images)} image(s); the search needs at least 2 "
                           "(the last 20 % are held out to score candidates)")
    return Detection().split(data)


class ParentMapped:
    """Evaluator for ``engine.Search``: ``spec -> (mAP %, "measured", how)``; ``prepare`` first."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.train_data, self.held_out = load_coco(recipe.dataset, recipe.resolution)
        self.classes = tuple(self.train_data.classes)
        self.num_classes = len(self.classes)
        self.config = head_config(recipe.head, self.num_classes)
        self.parent: dict[str, list[np.ndarray]] | None = None
        self.parent_info: dict = {}

    def proxy(self, spec: ArchSpec) -> ArchSpec:
        """``spec`` as trained here: the recipe's width multiplier and resolution."""
        return scaling.scale(spec, width=self.recipe.width, resolution=self.recipe.resolution)

    def parent_spec(self) -> ArchSpec:
        space = spaces.get(self.recipe.space)
        return self.proxy(space.decode(parent_choices(space)))

    # -- the parent ----------------------------------------------------------------------------
    def prepare(self, folder: Path, progress: Callable[[str], None] = lambda line: None) -> dict:
        """Load the parent from ``folder`` (OUT/parent), or train it and write it there; its record."""
        folder = Path(folder)
        if (folder / "parent.json").is_file():
            self.parent, self.parent_info = read_parent(folder, self.recipe)
            progress(f"parent reused from {folder} (held-out mAP {self.parent_info['held_out_map']:.2f}%)")
            return self.parent_info
        from edgetailor.supernet.inherit import weights_by_layer
        from edgetailor.tasks.detection import train

        spec, r = self.parent_spec(), self.recipe
        progress(f"training the parent ({spec.encode()}) on {len(self.train_data.images)} images for "
                 f"{r.parent_epochs} epoch(s) at {r.resolution} px")
        started = time.perf_counter()
        detector = train.train(self.train_data, spec, self.config, epochs=r.parent_epochs,
                               learning_rate=PARENT_LEARNING_RATE, seed=r.seed, batch_size=BATCH_SIZE,
                               progress=lambda e: progress(train.epoch_line(e, r.parent_epochs, "parent epoch")))
        score = 100 * train.evaluate(detector, self.held_out)["AP"]
        self.parent = weights_by_layer(detector.model)
        self.parent_info = {"format": PARENT_FORMAT, "recipe": r.parent_settings(), "spec": spec.encode(),
                            "held_out_map": round(score, 2), "held_out_images": len(self.held_out.images),
                            "seconds": round(time.perf_counter() - started, 1), "history": detector.history}
        write_parent(folder, self.parent, self.parent_info)
        progress(f"parent trained in {self.parent_info['seconds']:.0f} s: held-out mAP {score:.2f}%; "
                 f"stored in {folder}")
        return self.parent_info

    # -- one candidate -------------------------------------------------------------------------
    def build_inherited(self, spec: ArchSpec):
        """(Keras detector of ``spec`` at proxy scale with the parent's weights mapped on, Inherited)."""
        import tensorflow as tf

        from edgetailor.supernet.inherit import inherit
        from edgetailor.tasks.detection import heads

        if self.parent is None:
            raise RuntimeError("prepare() must load or train the parent first")
        tf.keras.backend.clear_session()
        tf.keras.utils.set_random_seed(self.recipe.seed)  # the layers that inherit nothing start alike
        proxy = self.proxy(spec)
        model = heads.module_for(self.config).build(proxy, self.config)
        return model, inherit(model, self.parent)

    def __call__(self, spec: ArchSpec) -> tuple[float, str, str]:
        from edgetailor.tasks.detection import train

        r = self.recipe
        model, mapped = self.build_inherited(spec)
        detector = train.train(self.train_data, self.proxy(spec), self.config, epochs=r.epochs,
                               learning_rate=FINETUNE_LEARNING_RATE, seed=r.seed, batch_size=BATCH_SIZE,
                               model=model)
        score = 100 * train.evaluate(detector, self.held_out)["AP"]
        how = (f"{METRIC} on {len(self.held_out.images)} held-out images of {r.dataset}: parent's weights "
               f"mapped ({mapped.describe()}), fine-tuned {r.epochs} epoch(s) on {len(self.train_data.images)} "
               f"images at {r.describe()}")
        return round(score, 2), "measured", how


def write_parent(folder: Path, weights: dict[str, list[np.ndarray]], info: dict) -> None:
    """``folder``/weights.npz (``layer/index`` -> array) and parent.json, written as one folder."""
    arrays = {f"{name}/{i}": array for name, parts in weights.items() for i, array in enumerate(parts)}

    def write(staged: Path) -> None:
        staged.mkdir()
        np.savez(staged / "weights.npz", **arrays)
        (staged / "parent.json").write_text(json.dumps(info, indent=1) + "\n")

    _io.write_atomically(folder, write)


def read_parent(folder: Path, recipe: Recipe) -> tuple[dict[str, list[np.ndarray]], dict]:
    """The stored parent's weights and record; one line if it was trained with another recipe."""
    try:
        info = json.loads((folder / "parent.json").read_text())
        with np.load(folder / "weights.npz", allow_pickle=False) as stored:
            flat = {key: stored[key] for key in stored.files}
    except (OSError, ValueError) as exc:
        raise SearchError(f"{folder}: the stored parent cannot be read ({exc}); remove the folder to "
                          "train it again") from None
    if info.get("format") != PARENT_FORMAT or info.get("recipe") != recipe.parent_settings():
        raise SearchError(f"{folder}: the parent there was trained with other settings "
                          f"({info.get('recipe')}); use another --out or the same options")
    weights: dict[str, list[np.ndarray]] = {}
    for key in sorted(flat, key=lambda k: (k.rpartition("/")[0], int(k.rpartition("/")[2]))):
        weights.setdefault(key.rpartition("/")[0], []).append(flat[key])
    return weights, info
