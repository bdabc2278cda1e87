"""A supernet checkpoint folder: TensorFlow weights plus ``state.json``, the one file that commits them.

Each save writes ``weights-<n>.*`` (``tf.train.Checkpoint``: the network and the optimizer
with its momentum), then replaces ``state.json`` atomically (``edgetailor._io``) to point at them, then
removes older weights. A save cut short leaves ``state.json`` pointing at the previous, complete
weights, so a resume loses at most the epoch in progress. ``state.json`` also names the space
(with a fingerprint of its definition), the classes and the phase and epoch done, so weights are
never loaded into a network of another space or for other classes.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import tensorflow as tf

from edgetailor._io import write_json
from edgetailor.arch import spaces
from edgetailor.errors import SupernetError
from edgetailor.supernet import data
from edgetailor.supernet.network import Supernet
from edgetailor.supernet.subnet import ElasticSpace

STATE = "state.json"
FORMAT = "edgetailor-supernet/1"


@dataclass(frozen=True)
class State:
    """What a checkpoint folder holds; ``phase``/``epochs_done``: progressive shrinking's progress."""

    space: str
    fingerprint: str
    classes: tuple[str, ...]
    dataset: str
    resolutions: tuple[int, ...]
    phase: int = -1                # index of the phase last trained (-1: none yet)
    phase_name: str = ""
    epochs_done: int = 0           # epochs of that phase done
    weights: str = ""              # checkpoint prefix inside the folder
    history: tuple[dict, ...] = field(default_factory=tuple)  # one entry per epoch trained
    data: dict = field(default_factory=dict)  # how to open the dataset again: ``data.open_source`` kwargs
    definition: dict = field(default_factory=dict)  # the space's data (``space_of``), so any space reloads
    source: str = ""               # where the weights came from when not trained here (``supernet.ofa``)
    input_affine: tuple = ()       # (scale, offset) per channel from the [-1, 1] input (``Supernet``)

    def to_json(self) -> dict:
        return {"format": FORMAT, **asdict(self)}


def read_state(folder: Path) -> State | None:
    """The folder's state, None when it holds none; a damaged one is an error."""
    path = Path(folder) / STATE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if data.pop("format") != FORMAT:
            raise ValueError("unknown format")
        state = State(**data)
        return replace(state, classes=tuple(state.classes), resolutions=tuple(state.resolutions),
                       history=tuple(state.history), input_affine=tuple(tuple(v) for v in state.input_affine))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SupernetError(f"{path} is not a supernet checkpoint state ({exc}); remove the folder "
                            "or pick another --out") from None


def check_fits(state: State, elastic: ElasticSpace | None, classes: tuple[str, ...] | None, folder: Path) -> None:
    """Refuse weights trained for another space (or another definition of it) or other classes."""
    if elastic is not None and (state.space, state.fingerprint) != (elastic.name, elastic.fingerprint()):
        raise SupernetError(f"checkpoint {folder} holds a supernet of space {state.space!r} "
                            f"(fingerprint {state.fingerprint}), not of {elastic.name!r} "
                            f"(fingerprint {elastic.fingerprint()})")
    if classes is not None and tuple(classes) != state.classes:
        raise SupernetError(f"checkpoint {folder} was trained on classes {list(state.classes)}, "
                            f"the dataset has {list(classes)}")


def save(folder: Path, net: Supernet, optimizer, state: State) -> State:
    """Write the weights, then commit them in ``state.json``; returns the state written."""
    folder = Path(folder)
    previous = read_state(folder)
    number = int(previous.weights.rpartition("-")[2]) + 1 if previous and previous.weights else 1
    prefix = f"weights-{number}"
    objects = {"net": net, **({"optimizer": optimizer} if optimizer is not None else {})}  # None: imported
    tf.train.Checkpoint(**objects).write(str(folder / prefix))
    state = replace(state, weights=prefix)
    write_json(folder / STATE, state.to_json())
    for old in folder.glob("weights-*"):
        if not old.name.startswith(prefix + "."):  # older weights, or a write cut short
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    return state


def restore(folder: Path, state: State, net: Supernet, optimizer=None) -> None:
    """Load ``state``'s weights into ``net`` (and into ``optimizer``, built, when resuming training)."""
    objects = {"net": net, **({"optimizer": optimizer} if optimizer is not None else {})}
    try:
        status = tf.train.Checkpoint(**objects).read(str(Path(folder) / state.weights))
        status.assert_existing_objects_matched().expect_partial()
    except (tf.errors.OpError, ValueError, AssertionError, IndexError) as exc:  # IndexError: truncated data
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SupernetError(f"checkpoint {folder} is damaged or half written ({first}); remove it "
                            "and train again") from None


def open_data(state: State, folder: Path, dataset: str | Path | None = None) -> data.Source:
    """The dataset the supernet was trained on, split as it was (``dataset`` overrides its location;
    its classes must be the checkpoint's)."""
    if not state.data and dataset is None:
        raise SupernetError(f"checkpoint {folder} does not record its dataset; pass --dataset")
    # an imported checkpoint records none: the dataset given, split as training splits by default
    options = {"resolution": max(state.resolutions), **state.data,
               **({"dataset": str(dataset)} if dataset is not None else {})}
    if options["dataset"] != "shapes" and not Path(options["dataset"]).is_dir():
        raise SupernetError(f"the dataset folder {options['dataset']} the supernet in {folder} was trained on "
                            "is gone; pass --dataset with the folder's new place")
    source = data.open_source(**options)
    check_fits(state, None, source.classes, folder)
    return source


def definition(space: spaces.Space) -> dict:
    """A space as JSON data (lists, not tuples: as ``state.json`` reads back); ``space_of`` inverts it."""
    return json.loads(json.dumps(dataclasses.asdict(space)))


def space_of(state: State) -> spaces.Space:
    """The space the checkpoint was trained on: its recorded definition, else the registered one."""
    if not state.definition:
        return spaces.get(state.space)
    recorded = dict(state.definition)
    stages = tuple(spaces.StageDef(**{k: tuple(v) if isinstance(v, list) else v for k, v in stage.items()})
                   for stage in recorded.pop("stages"))
    return spaces.Space(**{**recorded, "stages": stages, "resolutions": tuple(recorded["resolutions"])})


def load(folder: str | Path, space=None) -> tuple[Supernet, State]:
    """The trained supernet in ``folder`` (its space from the state unless ``space`` is given)."""
    folder = Path(folder)
    state = read_state(folder)
    if state is None or not state.weights:
        raise SupernetError(f"{folder} holds no supernet checkpoint ({STATE} missing)")
    elastic = ElasticSpace.of(space if space is not None else space_of(state))
    check_fits(state, elastic, None, folder)
    net = Supernet(elastic, len(state.classes), input_affine=state.input_affine or None)
    restore(folder, state, net)
    return net, state
