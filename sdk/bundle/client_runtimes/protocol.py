"""What the client scripts beside this file share: one JSON request on stdin, one JSON answer
on stdout (edgetailor.bundle.clients writes the one and reads the other).

Request: ``{"task": "classification" | "detection" | "segmentation", "model": PATH,
"images": PATH of a uint8 .npy [n, H, W, 3] (RGB), "max_results": int | null,
"score_threshold": float | null}``.

Answer: ``{"client": NAME, "version": VERSION, "results": [one per image], "labels": [...]}``
or ``{"client": ..., "version": ..., "error": MESSAGE}`` when the client refuses the model (a
finding, not a crash). Per image: classification ``{"categories": [{"index", "score",
"label"}]}``; detection ``{"detections": [{"box": [origin_x, origin_y, width, height] in
pixels, "index", "score", "label"}]}``; segmentation ``{"mask": [[class index per pixel]]}``.

Only numpy and the standard library here: each client venv pins its own numpy.
"""
import json
import sys
from typing import Callable

import numpy as np

# What the clients raise for a model they refuse: MediaPipe maps its C status codes onto these
# (mediapipe/tasks/python/core/mediapipe_c_utils.py: a float input without normalisation metadata
# is FileNotFoundError), the Task Library's pybind11 layer raises ValueError or RuntimeError.
CLIENT_ERRORS = (RuntimeError, ValueError, OSError, IndexError)


def detection(found) -> dict:
    """One detection as both clients return it (same field names): box origin and size in pixels,
    and its best category."""
    box, best = found.bounding_box, found.categories[0]
    return {"box": [box.origin_x, box.origin_y, box.width, box.height],
            "index": best.index, "score": best.score, "label": best.category_name or ""}


def serve(client: str, version: str, run: Callable[[dict, np.ndarray], dict]) -> None:
    """Read the request, answer with ``run(request, images)`` (a dict with ``results``)."""
    request = json.load(sys.stdin)
    images = np.load(request["images"])
    try:
        answer = run(request, images)
    except CLIENT_ERRORS as exc:
        answer = {"error": " ".join(str(exc).split())}
    json.dump({"client": client, "version": version, **answer}, sys.stdout)
