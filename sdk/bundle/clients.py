"""Real clients on a bundle: MediaPipe Tasks and the TFLite Task Library run ``model.tflite`` as an
Android app does, and what they return is compared with the TFLite interpreter's outputs.

Each client lives in its own virtual environment under ``.venv-clients/`` (``tools/client-venvs.sh``
makes them from the pins in ``sdk/bundle/client_runtimes/*.txt``): they pin other numpy and protobuf versions
than edgetailor, and ``import tflite_support`` fails next to TF >= 2.14. Each runs as a subprocess
(``client_runtimes/<client>_client.py``, JSON in and out, ``client_runtimes/protocol.py``); this process
never imports them.

Both clients get the same uint8 images at the model's input size (so neither resizes) and the
manifest's options (detection: max results and score threshold). The reference is the
interpreter in this process on the same pixels, normalised as the *manifest* says (what the model
was trained with), while the clients normalise as the model's metadata says: metadata with
another normalisation, or without labels, shows up as a difference.

- classification: every class's score within ``SCORE_TOLERANCE``, the same top class (unless the
  interpreter's top two are closer than that), each index labelled as the manifest labels it;
- detection: the same detections, matched one to one by class, score (``SCORE_TOLERANCE``) and
  box: the interpreter's normalised corners in pixels as each client converts them (its origin
  and size, within ``BOX_TOLERANCE_PX``: the clients truncate to whole pixels);
- segmentation: the same class at every pixel (the argmax of the model's scores; a pixel whose
  top two scores are closer than ``SCORE_TOLERANCE`` may go either way), the manifest's labels.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from importlib import resources
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgetailor.bundle.inspect import read_manifest
from edgetailor.errors import BundleError

# Both clients run the same flatbuffer with XNNPACK on the same float input: on the test
# classifier their scores differ from the interpreter's by 6e-7 (MediaPipe) and 1e-6 (Task
# Library); its metadata normalising to [0, 1] instead of [-1, 1] moves them by 0.95.
SCORE_TOLERANCE = 1e-3
# The clients return a box's origin and size in whole pixels, truncated.
BOX_TOLERANCE_PX = 1.0
IMAGES = 2
TIMEOUT_S = 300  # a client's start (MediaPipe: ~3 s) plus its runs; a hung client is a finding
VENVS_VARIABLE = "EDGETAILOR_CLIENT_VENVS"  # where the client environments are, if not .venv-clients/
CREATE_COMMAND = "bash tools/client-venvs.sh"


@dataclass(frozen=True)
class Client:
    """One app-side runtime: its environment's folder name (and pin file), name, script, and
    whether it clamps a box's origin at the image's top-left edge (its pixel conversion)."""

    env: str
    title: str
    script: str
    clamps_origin: bool


# Box conversion, observed on the test detector (64 px, a box from y -1.05 to 17.05 px): the Task
# Library returns origin -1, height 18 (whole pixels, truncated); MediaPipe origin 0, height 18.
CLIENTS = (Client("mediapipe", "MediaPipe Tasks", "mediapipe_client.py", clamps_origin=True),
           Client("tflite-support", "TFLite Task Library", "tflite_support_client.py", clamps_origin=False))


@dataclass
class ClientCheck:
    """One client on one bundle: what was compared, and every difference found (none: ``ok``)."""

    client: str
    version: str | None
    task: str
    compared: str
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def scripts_folder() -> Path:
    """The client scripts and their pin files (package data of ``edgetailor.bundle.client_runtimes``)."""
    return Path(str(resources.files("edgetailor.bundle.client_runtimes")))


def venvs_folder() -> Path:
    """$EDGETAILOR_CLIENT_VENVS, else ``.venv-clients`` in the current folder (where
    ``tools/client-venvs.sh`` makes them: the checkout)."""
    return Path(os.environ.get(VENVS_VARIABLE) or ".venv-clients").absolute()


def python_of(client: Client) -> Path:
    return venvs_folder() / client.env / "bin" / "python"


def missing(clients: tuple[Client, ...] = CLIENTS) -> list[Client]:
    """Clients whose environment is absent, unfinished or made from other pins than the current ones."""
    out = []
    for client in clients:
        stamp = venvs_folder() / client.env / ".installed"
        pins = scripts_folder() / f"{client.env}.txt"
        if not (python_of(client).exists() and stamp.is_file() and pins.is_file()
                and stamp.read_bytes() == pins.read_bytes()):
            out.append(client)
    return out


def how_to_create(absent: list[Client]) -> str:
    """One line: which environments are missing and the command that makes them."""
    return (f"no client environment for {', '.join(c.title for c in absent)} in {venvs_folder()}: "
            f"create them with `{CREATE_COMMAND}` in the edgetailor checkout (pinned PyPI packages, about "
            f"1 GB) and run from there, or set {VENVS_VARIABLE}")


def check_bundle(folder: str | Path, clients: tuple[Client, ...] = CLIENTS, images: int = IMAGES) -> list[ClientCheck]:
    """Run ``folder``'s model.tflite in each client and compare with the interpreter (module docstring).

    Reads only ``model.tflite`` and ``manifest.json``. ``BundleError`` when a client environment
    is missing (saying how to make it) or the folder is not a bundle of a known task."""
    from edgetailor.converters.base import Normalization
    from edgetailor.converters.parity import parity_pixels, run_as_app

    absent = missing(clients)
    if absent:
        raise BundleError(how_to_create(absent))
    folder = Path(folder)
    manifest = read_manifest(folder)
    task = manifest.get("task")
    if task not in _COMPARE:
        raise BundleError(f"{folder}: the client check knows classification, detection and "
                          f"segmentation bundles, not {task!r}")
    model_path = folder / "model.tflite"
    if not model_path.is_file():
        raise BundleError(f"{folder} has no model.tflite")
    model = model_path.read_bytes()
    height, width = (int(d) for d in manifest["input"]["shape"][1:3])
    norm = manifest["input"]["normalization"]
    pixels = np.round(parity_pixels((height, width), images)).astype(np.uint8)
    reference = run_as_app(model, pixels, Normalization(tuple(norm["mean"]), tuple(norm["std"])))
    post = manifest.get("postprocess") or {}
    request = {"task": task, "model": str(model_path.resolve()),
               "max_results": post.get("max_detections"), "score_threshold": post.get("score_threshold")}
    checks = []
    with tempfile.TemporaryDirectory(prefix="edgetailor-clients-") as scratch:
        request["images"] = str(Path(scratch) / "images.npy")
        np.save(request["images"], pixels)
        for client in clients:
            answer, failure = _ask(client, request)
            check = ClientCheck(client.title, answer.get("version"), task, "nothing: the client did not answer")
            if failure or "error" in answer:
                check.differences.append(failure or f"refuses the model: {answer['error']}")
            elif len(answer["results"]) != images:
                check.differences.append(f"answered for {len(answer['results'])} of {images} images")
            else:
                _COMPARE[task](check, answer, reference, manifest, model, client)
            checks.append(check)
    return checks


def _ask(client: Client, request: dict) -> tuple[dict, str | None]:
    """The client's JSON answer, or a description of how it failed to give one."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["GLOG_minloglevel"] = "2"  # MediaPipe's C++ info lines
    try:
        done = subprocess.run([str(python_of(client)), str(scripts_folder() / client.script)],
                              input=json.dumps(request), capture_output=True, text=True, env=env,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {}, f"did not answer within {TIMEOUT_S} s"
    last = (done.stderr.strip().splitlines() or ["no message"])[-1]
    if done.returncode != 0:
        return {}, f"crashed (exit {done.returncode}): {last}"
    try:
        return json.loads(done.stdout), None
    except json.JSONDecodeError:
        return {}, f"answered no JSON ({last})"


NO_LABELS = "reads no labels from the model (its metadata packs none)"


def _label_differences(check: ClientCheck, found: dict[int, str], labels: list[str]) -> None:
    """Class index -> the label the client gave it, against the manifest's labels."""
    if found and not any(found.values()):
        check.differences.append(NO_LABELS)
        return
    wrong = [f"class {i} is {name!r} (manifest: {labels[i]!r})" if i < len(labels) else
             f"class {i} is {name!r} (the manifest has {len(labels)} labels)"
             for i, name in sorted(found.items()) if i >= len(labels) or name != labels[i]]
    if wrong:
        check.differences.append("labels differ: " + "; ".join(wrong[:3]) + (" ..." if len(wrong) > 3 else ""))


def _normalisation_hint(model: bytes, manifest: dict) -> str:
    """Where the metadata's normalisation differs from the manifest's, both, for the message."""
    from edgetailor.converters.metadata import normalization_of, read_metadata

    metadata = read_metadata(model)
    options = normalization_of(metadata) if metadata else None
    norm = manifest["input"]["normalization"]
    if options is None:
        return "; the model's metadata has no normalisation"
    mean, std = options.get("mean", []), options.get("std", [])
    if np.allclose(np.broadcast_to(mean, 3), norm["mean"]) and np.allclose(np.broadcast_to(std, 3), norm["std"]):
        return ""
    return (f"; the model's metadata normalises (pixel - {mean}) / {std}, the manifest "
            f"(pixel - {norm['mean']}) / {norm['std']}")


def _compare_classification(check: ClientCheck, answer: dict, reference: list[np.ndarray], manifest: dict,
                            model: bytes, client: Client) -> None:
    expected = reference[0].reshape(len(reference[0]), -1)
    classes = expected.shape[1]
    check.compared = f"{len(expected)} images: {classes} class scores each, the top class, labels"
    found: dict[int, str] = {}
    worst, top_wrong = 0.0, []
    for i, (result, scores) in enumerate(zip(answer["results"], expected)):
        got = {c["index"]: c["score"] for c in result["categories"]}
        found.update((c["index"], c["label"]) for c in result["categories"])
        if sorted(got) != list(range(classes)):
            check.differences.append(f"image {i}: returns {len(got)} class scores for a {classes}-class model")
            continue
        worst = max(worst, max(abs(got[j] - float(scores[j])) for j in range(classes)))
        ours, theirs = int(np.argmax(scores)), max(got, key=got.get)
        runner_up = float(np.sort(scores)[-2]) if classes > 1 else -np.inf
        if theirs != ours and scores[ours] - runner_up >= SCORE_TOLERANCE:
            top_wrong.append(f"image {i}: class {theirs} ({got[theirs]:.3f}), the interpreter's {ours} "
                             f"({scores[ours]:.3f})")
    if worst > SCORE_TOLERANCE:
        check.differences.append(f"scores differ from the interpreter's by up to {worst:.3g} (tolerance "
                                 f"{SCORE_TOLERANCE:g}){_normalisation_hint(model, manifest)}")
    if top_wrong:
        check.differences.append("top class differs: " + "; ".join(top_wrong))
    _label_differences(check, found, manifest["labels"])
    if len(expected) > 1 and np.allclose(expected, expected[0], atol=SCORE_TOLERANCE):
        check.notes.append("the model gives every test image the same scores (random weights?): "
                           "a wrong normalisation cannot show")


def _pixel_boxes(boxes: np.ndarray, size: tuple[int, int], clamp_origin: bool) -> np.ndarray:
    """Normalised (ymin, xmin, ymax, xmax) -> pixel (origin x, origin y, width, height) as a client
    converts them (before it truncates to whole pixels)."""
    height, width = size
    x, y = boxes[:, 1] * width, boxes[:, 0] * height
    if clamp_origin:
        x, y = np.maximum(x, 0), np.maximum(y, 0)
    return np.stack([x, y, (boxes[:, 3] - boxes[:, 1]) * width, (boxes[:, 2] - boxes[:, 0]) * height], axis=1)


def _compare_detection(check: ClientCheck, answer: dict, reference: list[np.ndarray], manifest: dict,
                       model: bytes, client: Client) -> None:
    locations, classes, scores, counts = reference
    labels = manifest["labels"]
    threshold = (manifest.get("postprocess") or {}).get("score_threshold") or 0.0
    size = tuple(int(d) for d in manifest["input"]["shape"][1:3])
    given, compared = [], 0
    for i, result in enumerate(answer["results"]):
        n = int(counts[i])
        keep = scores[i, :n] >= threshold
        ours = list(zip(_pixel_boxes(locations[i, :n][keep], size, client.clamps_origin),
                        classes[i, :n][keep].astype(int), scores[i, :n][keep]))
        # MediaPipe names a detection's class by its label only (index None)
        theirs = [(np.array(d["box"], float), d["index"] if d["index"] is not None else
                   labels.index(d["label"]) if d["label"] in labels else None, d["score"])
                  for d in result["detections"]]
        given += [(d["index"], d["label"]) for d in result["detections"]]
        compared += len(ours)
        unmatched = list(range(len(theirs)))
        missed = []
        for box, cls, score in ours:
            match = next((j for j in unmatched if theirs[j][1] == cls and abs(theirs[j][2] - score) <= SCORE_TOLERANCE
                          and np.abs(theirs[j][0] - box).max() <= BOX_TOLERANCE_PX), None)
            if match is None:
                missed.append(f"class {cls} {score:.3f} at {np.round(box, 1).tolist()}")
            else:
                unmatched.remove(match)
        if missed or unmatched:
            extra = [f"class {theirs[j][1]} {theirs[j][2]:.3f} at {theirs[j][0].tolist()}" for j in unmatched]
            check.differences.append(
                f"image {i}: {len(ours)} detections in the interpreter, {len(theirs)} in the client; "
                f"unmatched (origin x, y, width, height in px): interpreter {missed[:2]}"
                f"{' ...' if len(missed) > 2 else ''}, client {extra[:2]}{' ...' if len(extra) > 2 else ''}")
    check.compared = (f"{len(answer['results'])} images: {compared} detections (class, score, box in "
                      f"pixels) at score threshold {threshold:g}, labels")
    if given and not any(label for _, label in given):
        check.differences.append(NO_LABELS)
    else:
        _label_differences(check, {i: label for i, label in given if i is not None}, labels)
        strangers = sorted({label for i, label in given if i is None and label not in labels})
        if strangers:
            check.differences.append(f"labels differ: {strangers[:3]} are not among the manifest's labels")
    if compared == 0:
        check.notes.append(f"no detection above the score threshold {threshold:g} on the test images: "
                           "only loading and empty results were compared, no box or label")


def _compare_segmentation(check: ClientCheck, answer: dict, reference: list[np.ndarray], manifest: dict,
                          model: bytes, client: Client) -> None:
    scores = reference[0]
    ranked = np.sort(scores, axis=-1)
    ties = (ranked[..., -1] - ranked[..., -2]) < SCORE_TOLERANCE
    expected = scores.argmax(-1)
    pixels = 0
    for i, result in enumerate(answer["results"]):
        mask = np.asarray(result["mask"])
        if mask.shape != expected[i].shape:
            check.differences.append(f"image {i}: a {mask.shape} mask for the model's {expected[i].shape} output")
            continue
        pixels += mask.size
        wrong = int(((mask != expected[i]) & ~ties[i]).sum())
        if wrong:
            check.differences.append(f"image {i}: {wrong} of {mask.size} pixels get another class than "
                                     f"the interpreter's argmax{_normalisation_hint(model, manifest)}")
    check.compared = f"{len(answer['results'])} images: the class of {pixels} pixels, labels"
    labels = answer.get("labels") or []
    if not any(labels):
        check.differences.append(NO_LABELS)
    elif len(labels) != len(manifest["labels"]):
        check.differences.append(f"reads {len(labels)} labels from the model, the manifest has "
                                 f"{len(manifest['labels'])}")
    else:
        _label_differences(check, dict(enumerate(labels)), manifest["labels"])


_COMPARE = {"classification": _compare_classification, "detection": _compare_detection,
            "segmentation": _compare_segmentation}
