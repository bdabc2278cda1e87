"""``shapes``: a deterministic synthetic image dataset, built in (numpy only).

Each image shows drawn shapes (``CLASSES``) on a cluttered background: a colour gradient, soft
blobs, random lines (some drawn over the shapes), pixel noise and colour jitter. Three views:

* ``classification(n, size, seed)``: one shape per image, label = its class index;
* ``detection(n, size, seed)``: 1..``max_objects`` shapes per image with boxes (normalised
  ``ymin, xmin, ymax, xmax``) and class indices, plus a class-index mask per image
  (0 = background, ``class + 1`` where a shape is visible) for segmentation;
* ``write_folder(root, n, size, seed)``: the classification view as PNG files, one sub-folder
  per class (the layout ``--dataset DIR`` reads).

Image ``i`` depends only on ``(seed, view, i, size)``: the same seed gives identical arrays, and
the first ``k`` images of a larger set are the ``k``-image set.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgetailor.errors import DatasetError

CLASSES = ("circle", "ring", "square", "triangle", "cross", "star")
MIN_SIZE, MAX_SIZE = 32, 224
MAX_TILT = np.pi / 12  # radians
_VIEWS = {"classification": 1, "detection": 2}


@dataclass(frozen=True)
class Classification:
    images: np.ndarray        # uint8 [n, size, size, 3]
    labels: np.ndarray        # int64 [n], index into ``classes``
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Detection:
    images: np.ndarray        # uint8 [n, size, size, 3]
    boxes: tuple[np.ndarray, ...]   # per image float32 [k, 4]: ymin, xmin, ymax, xmax in [0, 1]
    labels: tuple[np.ndarray, ...]  # per image int64 [k], index into ``classes``
    masks: np.ndarray         # uint8 [n, size, size]: 0 background, class index + 1
    classes: tuple[str, ...]


def _check(n: int, size: int, classes: tuple[str, ...]) -> None:
    if n < 0:
        raise DatasetError(f"number of images must be >= 0 (got {n})")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise DatasetError(f"image size must be {MIN_SIZE}..{MAX_SIZE} px (got {size})")
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or len(classes) < 2:
        raise DatasetError(f"classes must be at least two of {', '.join(CLASSES)} (got {list(classes)})")


def _rng(seed: int, view: str, index: int, size: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _VIEWS[view], index, size]))


def shape_mask(kind: str, size: int, cy: float, cx: float, radius: float, angle: float) -> np.ndarray:
    """Boolean [size, size] mask of one shape centred at (cy, cx) px, ``radius`` px, rotated."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dy, dx = yy - cy, xx - cx
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    r2 = u * u + v * v
    if kind == "circle":
        return r2 <= radius ** 2
    if kind == "ring":
        return (r2 <= radius ** 2) & (r2 >= (0.55 * radius) ** 2)
    if kind == "square":
        return (np.abs(u) <= 0.78 * radius) & (np.abs(v) <= 0.78 * radius)
    if kind == "cross":
        arm, half = 0.3 * radius, radius
        return ((np.abs(u) <= arm) & (np.abs(v) <= half)) | ((np.abs(v) <= arm) & (np.abs(u) <= half))
    if kind in ("triangle", "star"):
        def triangle(offset: float) -> np.ndarray:
            inside = np.ones_like(u, dtype=bool)
            for k in range(3):  # three half-planes, edge midpoints at inradius r/2
                phi = offset + np.pi / 2 + k * 2 * np.pi / 3
                inside &= u * np.cos(phi) + v * np.sin(phi) <= radius / 2
            return inside
        return triangle(0.0) | triangle(np.pi) if kind == "star" else triangle(0.0)
    raise ValueError(f"unknown shape {kind!r}; shapes: {', '.join(CLASSES)}")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    theta = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (np.cos(theta) * (xx - 0.5) + np.sin(theta) * (yy - 0.5)), 0, 1)[..., None]
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    image = c0 + (c1 - c0) * t
    for _ in range(rng.integers(2, 6)):  # soft blobs
        by, bx = rng.uniform(0, 1, 2)
        sigma = rng.uniform(0.05, 0.2)
        weight = rng.uniform(0.3, 0.6) * np.exp(-((yy - by) ** 2 + (xx - bx) ** 2) / (2 * sigma ** 2))
        image += (rng.uniform(0, 255, 3) - image) * weight[..., None]
    _lines(rng, image, rng.integers(2, 6))
    return image


def _lines(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    """Draw ``count`` random line segments in place (1-2 px wide, random colours, 40% opaque)."""
    size = image.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    for _ in range(count):
        (y0, x0), (y1, x1) = rng.uniform(0, size, (2, 2))
        dy, dx = y1 - y0, x1 - x0
        length2 = max(dy * dy + dx * dx, 1e-6)
        t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / length2, 0, 1)
        distance = np.hypot(yy - (y0 + t * dy), xx - (x0 + t * dx))
        on = distance <= rng.uniform(0.5, 1.0) * max(1.0, size / 64)
        image[on] = 0.6 * image[on] + 0.4 * rng.uniform(0, 255, 3)


_LUMA = np.array([0.299, 0.587, 0.114])


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A random colour whose luma differs by >= 90 from the mean colour ``under`` the shape
    (bounded tries; then the complement). Colour alone never tells the class."""
    for _ in range(50):
        colour = rng.uniform(0, 255, 3)
        if abs((colour - under) @ _LUMA) >= 90:
            return colour
    return 255.0 - under


def _finish(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    image = image * rng.uniform(0.8, 1.2, 3) + rng.uniform(-20, 20)  # colour jitter
    image += rng.normal(0, rng.uniform(4, 14), image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _draw(rng: np.random.Generator, image: np.ndarray, kind: str, cy: float, cx: float,
          radius: float) -> np.ndarray:
    # upright +-MAX_TILT: any rotation makes a from-scratch proxy run need far more data
    mask = shape_mask(kind, image.shape[0], cy, cx, radius, rng.uniform(-MAX_TILT, MAX_TILT))
    if not mask.any():  # a tiny shape between pixel centres: keep at least its centre pixel
        mask[min(int(cy), image.shape[0] - 1), min(int(cx), image.shape[1] - 1)] = True
    image[mask] = _contrasting_colour(rng, image[mask].mean(axis=0))
    return mask


def classification(n: int, size: int = 64, seed: int = 0, classes: tuple[str, ...] = CLASSES,
                   on_image: Callable[[], None] | None = None) -> Classification:
    """``n`` images with one shape each; labels balanced in expectation (uniform draws).
    ``on_image`` is called after each image (a progress bar)."""
    classes = tuple(classes)
    _check(n, size, classes)
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.empty(n, np.int64)
    for i in range(n):
        rng = _rng(seed, "classification", i, size)
        label = int(rng.integers(len(classes)))
        image = _background(rng, size)
        radius = rng.uniform(0.24, 0.4) * size
        cy, cx = rng.uniform(radius, size - radius, 2)
        _draw(rng, image, classes[label], cy, cx, radius)
        _lines(rng, image, rng.integers(0, 3))  # clutter over the shape too
        images[i], labels[i] = _finish(rng, image), label
        if on_image:
            on_image()
    return Classification(images, labels, classes)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detection(n: int, size: int = 128, seed: int = 0, max_objects: int = 4,
              classes: tuple[str, ...] = CLASSES, on_image: Callable[[], None] | None = None) -> Detection:
    """``n`` images with 1..``max_objects`` shapes, their tight boxes, classes and a class mask.

    Objects overlap little (box IoU <= 0.2, bounded placement tries); a later object occludes an
    earlier one in the mask. Boxes are normalised ``ymin, xmin, ymax, xmax`` of each shape's
    own pixels. ``on_image`` is called after each image (a progress bar).
    """
    classes = tuple(classes)
    _check(n, size, classes)
    if max_objects < 1:
        raise DatasetError(f"max_objects must be >= 1 (got {max_objects})")
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    all_boxes, all_labels = [], []
    for i in range(n):
        rng = _rng(seed, "detection", i, size)
        image = _background(rng, size)
        boxes, labels = [], []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            label = int(rng.integers(len(classes)))
            for _attempt in range(20):
                radius = rng.uniform(0.08, 0.2) * size
                cy, cx = rng.uniform(radius, size - radius, 2)
                box = np.array([cy - radius, cx - radius, cy + radius, cx + radius]) / size
                if all(_iou(box, other) <= 0.2 for other in boxes):
                    break
            else:
                continue
            mask = _draw(rng, image, classes[label], cy, cx, radius)
            rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
            boxes.append(np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], np.float32) / size)
            labels.append(label)
            masks[i][mask] = label + 1
        _lines(rng, image, rng.integers(0, 3))
        images[i] = _finish(rng, image)
        all_boxes.append(np.array(boxes, np.float32).reshape(-1, 4))
        all_labels.append(np.array(labels, np.int64))
        if on_image:
            on_image()
    return Detection(images, tuple(all_boxes), tuple(all_labels), masks, classes)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 [H, W, 3] RGB or [H, W] grayscale image (zlib only; no imaging library)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    height, width = image.shape[:2]
    colour_type = 0 if image.ndim == 2 else 2  # PNG IHDR: 0 grayscale, 2 RGB
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) \
        + chunk(b"IEND", b"")


def write_folder(root: str | Path, n: int, size: int = 64, seed: int = 0,
                 classes: tuple[str, ...] = CLASSES, on_image: Callable[[], None] | None = None) -> Path:
    """Write the classification view as ``root/<class>/<index>.png`` (one sub-folder per class)."""
    root = Path(root)
    data = classification(n, size, seed, classes, on_image)
    for name in data.classes:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(data.images, data.labels)):
        (root / data.classes[label] / f"{i:05d}.png").write_bytes(encode_png(image))
    return root
