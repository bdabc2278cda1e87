"""Detection and segmentation datasets from folders, checked entry by entry.

Layouts (MediaPipe Model Maker's, CONVENTIONS §5):

- COCO folder: ``images/`` + ``labels.json`` (``images`` with ``id``, ``file_name`` and
  optionally ``width``/``height``; ``annotations`` with ``image_id``, ``category_id`` and
  ``bbox`` = ``[x, y, w, h]`` in pixels; ``categories`` with ``id`` and ``name``; category id 0
  is reserved for the background and skipped);
- Pascal VOC folder: ``images/`` (or ``JPEGImages/``) + ``Annotations/*.xml`` (``filename``,
  ``size``, ``object/name``, ``object/bndbox`` in pixels);
- mask folder: ``images/`` + ``masks/<same stem>.png`` (single-channel class indices, 0 =
  background) + ``labels.txt`` (one label a line, the first the background's).

Every problem raises ``DatasetError`` naming the file and the entry: a missing image, a box
outside its image, an empty label map, a class that is not in the labels, a label count that
differs from the one expected, an image name that leaves the images folder (``../x.png``,
``/etc/passwd``: an annotation file is data and must not make training read files elsewhere;
the mask layout takes its names from the folder listing, so it cannot). Symbolic links inside
the folder are followed, as a folder of links into a shared image store is common. Images are
resized to ``size`` px square (boxes are normalized, so they stay valid). TensorFlow (for image
decoding) is imported only when loading.
"""
from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from edgetailor.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
BOX_TOLERANCE_PX = 1.0  # float round-off in exported annotations


@dataclass(frozen=True)
class DetectionData:
    images: np.ndarray              # uint8 [n, size, size, 3]
    boxes: tuple[np.ndarray, ...]   # per image float32 [k, 4] ymin, xmin, ymax, xmax in [0, 1]
    labels: tuple[np.ndarray, ...]  # per image int64 [k], index into ``classes``
    classes: tuple[str, ...]
    files: tuple[str, ...] = ()

    def split(self, fraction: float) -> tuple["DetectionData", "DetectionData"]:
        """The first ``fraction`` of the images and the rest."""
        k = int(round(len(self.images) * fraction))
        part = lambda s: DetectionData(self.images[s], self.boxes[s], self.labels[s], self.classes,
                                       self.files[s] if self.files else ())
        return part(slice(0, k)), part(slice(k, None))


@dataclass(frozen=True)
class SegmentationData:
    images: np.ndarray              # uint8 [n, size, size, 3]
    masks: np.ndarray               # uint8 [n, size, size]: 0 background, k + 1 = classes[k]
    classes: tuple[str, ...]        # object classes (the background label not included)
    background: str = "background"
    files: tuple[str, ...] = ()

    def split(self, fraction: float) -> tuple["SegmentationData", "SegmentationData"]:
        """The first ``fraction`` of the images and the rest."""
        k = int(round(len(self.images) * fraction))
        part = lambda s: SegmentationData(self.images[s], self.masks[s], self.classes, self.background,  # noqa: E731
                                          self.files[s] if self.files else ())
        return part(slice(0, k)), part(slice(k, None))


def _check_classes(found: Sequence[str], expected: Sequence[str] | None, where: str) -> tuple[str, ...]:
    found = tuple(found)
    if not found:
        raise DatasetError(f"{where}: empty label map (no classes)")
    if len(set(found)) != len(found):
        duplicates = sorted({c for c in found if found.count(c) > 1})
        raise DatasetError(f"{where}: duplicate class names {duplicates}")
    if expected is not None:
        expected = tuple(expected)
        if len(expected) != len(found):
            raise DatasetError(f"{where}: {len(found)} classes ({', '.join(found)}) but "
                               f"{len(expected)} labels were expected ({', '.join(expected)})")
        if expected != found:
            raise DatasetError(f"{where}: classes ({', '.join(found)}) differ from the expected "
                               f"labels ({', '.join(expected)})")
    return found


def _inside(folder: Path, name: object, where: str) -> Path:
    """``folder / name`` for an image name read from an annotation; refused when it is not a
    relative path that stays inside ``folder``."""
    if not isinstance(name, str) or not name.strip():
        raise DatasetError(f"{where}: the image file name must be a non-empty string (got {name!r})")
    normal = os.path.normpath(name)
    if os.path.isabs(name) or normal == os.pardir or normal.startswith(os.pardir + os.sep):
        raise DatasetError(f"{where}: image file name {name!r} leaves the dataset's "
                           f"{folder.name}/ folder; names must be relative paths inside it")
    return folder / normal


def _id(value: object, what: str, where: str) -> int | str:
    """An image or category id as read from COCO JSON: an integer (or a string), never a list."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DatasetError(f"{where}: {what} must be an integer (got {value!r})")
    return value


def _decode(path: Path, where: str, channels: int = 3) -> np.ndarray:
    import tensorflow as tf

    if not path.is_file():
        raise DatasetError(f"{where}: image file not found: {path}")
    try:
        image = tf.io.decode_image(path.read_bytes(), channels=channels, expand_animations=False)
    except Exception as exc:  # tf raises InvalidArgumentError with a C++ message
        raise DatasetError(f"{where}: cannot decode {path}: {str(exc).splitlines()[0]}") from None
    return image.numpy()


def _resize(image: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    import tensorflow as tf

    if image.shape[:2] == (size, size):
        return image
    out = tf.image.resize(image, (size, size), method="nearest" if nearest else "bilinear").numpy()
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _check_box(box_px: Sequence[float], width: int, height: int, where: str) -> np.ndarray:
    """Pixel box (xmin, ymin, xmax, ymax) -> normalized (ymin, xmin, ymax, xmax), or an error."""
    x0, y0, x1, y1 = (float(v) for v in box_px)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):  # JSON and float() both read NaN
        raise DatasetError(f"{where}: box coordinates must be finite (got {[x0, y0, x1, y1]})")
    t = BOX_TOLERANCE_PX
    if not (x1 > x0 and y1 > y0):
        raise DatasetError(f"{where}: empty box (xmin {x0:g}, ymin {y0:g}, xmax {x1:g}, ymax {y1:g})")
    if x0 < -t or y0 < -t or x1 > width + t or y1 > height + t:
        raise DatasetError(f"{where}: box (xmin {x0:g}, ymin {y0:g}, xmax {x1:g}, ymax {y1:g}) "
                           f"lies outside the {width}x{height} image")
    box = np.array([y0 / height, x0 / width, y1 / height, x1 / width], np.float32)
    return np.clip(box, 0.0, 1.0)


def load_coco_folder(root: str | Path, size: int = 320, classes: Sequence[str] | None = None,
                     annotations: str = "labels.json") -> DetectionData:
    """A COCO-format folder (``images/`` + ``labels.json``) as ``DetectionData``."""
    root = Path(root)
    path = root / annotations
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise DatasetError(f"{path}: missing list {key!r}")
    categories = {}
    for i, cat in enumerate(doc["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise DatasetError(f"{path}: categories[{i}] needs 'id' and 'name'")
        if cat["id"] != 0:  # 0 = background (Model Maker)
            categories[int(cat["id"])] = str(cat["name"])
    ids = sorted(categories)
    names = _check_classes([categories[k] for k in ids], classes, f"{path}: categories")
    index = {cat_id: k for k, cat_id in enumerate(ids)}
    entries = {}
    for i, entry in enumerate(doc["images"]):
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            raise DatasetError(f"{path}: images[{i}] needs 'id' and 'file_name'")
        image_id = _id(entry["id"], "'id'", f"{path}: images[{i}]")
        if image_id in entries:  # else the later entry silently replaces the earlier one
            raise DatasetError(f"{path}: images[{i}] has id {image_id!r}, as images[{entries[image_id][0]}] "
                               f"does; image ids must be unique")
        entries[image_id] = (i, entry)
    per_image: dict = {image_id: ([], []) for image_id in entries}
    decoded = {}
    for image_id, (i, entry) in entries.items():
        where = f"{path}: images[{i}] (id {image_id}, {entry['file_name']!r})"
        image = _decode(_inside(root / "images", entry["file_name"], where), where)
        h, w = image.shape[:2]
        if ("width" in entry and entry["width"] != w) or ("height" in entry and entry["height"] != h):
            raise DatasetError(f"{where}: declared {entry.get('width')}x{entry.get('height')} "
                               f"but the file is {w}x{h}")
        decoded[image_id] = image
    for i, ann in enumerate(doc["annotations"]):
        where = f"{path}: annotations[{i}] (id {ann.get('id', '?')})" if isinstance(ann, dict) \
            else f"{path}: annotations[{i}]"
        if not isinstance(ann, dict) or not {"image_id", "category_id", "bbox"} <= set(ann):
            raise DatasetError(f"{where}: needs 'image_id', 'category_id' and 'bbox'")
        if _id(ann["image_id"], "'image_id'", where) not in entries:
            raise DatasetError(f"{where}: image_id {ann['image_id']} is not in 'images'")
        if _id(ann["category_id"], "'category_id'", where) not in index:
            raise DatasetError(f"{where}: category_id {ann['category_id']} is not in 'categories' "
                               f"(ids {ids})")
        bbox = ann["bbox"]
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise DatasetError(f"{where}: bbox must be [x, y, width, height] (got {bbox!r})")
        h, w = decoded[ann["image_id"]].shape[:2]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
            raise DatasetError(f"{where}: bbox values must be numbers (got {bbox!r})")
        x, y, bw, bh = bbox
        boxes, labels = per_image[ann["image_id"]]
        boxes.append(_check_box((x, y, x + bw, y + bh), w, h, where))
        labels.append(index[ann["category_id"]])
    order = list(entries)
    return DetectionData(
        np.stack([_resize(decoded[k], size) for k in order]) if order else np.zeros((0, size, size, 3), np.uint8),
        tuple(np.array(per_image[k][0], np.float32).reshape(-1, 4) for k in order),
        tuple(np.array(per_image[k][1], np.int64) for k in order), names,
        tuple(entries[k][1]["file_name"] for k in order))


def _voc_images_dir(root: Path) -> Path:
    return root / "images" if (root / "images").is_dir() else root / "JPEGImages"


def load_voc_folder(root: str | Path, size: int = 320, classes: Sequence[str] | None = None) -> DetectionData:
    """A Pascal VOC folder (``images/`` or ``JPEGImages/`` + ``Annotations/*.xml``).

    ``classes`` is the label map in class-index order; without it the sorted object names."""
    root = Path(root)
    folder = root / "Annotations"
    files = sorted(folder.glob("*.xml"))
    if not files:
        raise DatasetError(f"{folder}: no .xml annotation files")
    parsed = []
    for xml in files:
        try:
            tree = ET.parse(xml).getroot()
        except ET.ParseError as exc:
            raise DatasetError(f"{xml}: not valid XML ({exc})") from None
        filename = tree.findtext("filename")
        if not filename:
            raise DatasetError(f"{xml}: missing <filename>")
        objects = []
        for j, obj in enumerate(tree.findall("object")):
            name = (obj.findtext("name") or "").strip()
            box = obj.find("bndbox")
            where = f"{xml}: object {j} ({name or 'no name'})"
            if not name or box is None:
                raise DatasetError(f"{where}: needs <name> and <bndbox>")
            try:
                coords = [float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
            except (TypeError, ValueError):
                raise DatasetError(f"{where}: <bndbox> needs numeric xmin, ymin, xmax, ymax") from None
            objects.append((where, name, coords))
        parsed.append((xml, filename, tree.find("size"), objects))
    if classes is None:
        names = _check_classes(sorted({o[1] for _, _, _, objs in parsed for o in objs}), None,
                               f"{folder}: objects")
    else:
        names = _check_classes(classes, None, f"{folder}: label map")
    index = {name: k for k, name in enumerate(names)}
    images, boxes, labels, sources = [], [], [], []
    for xml, filename, size_el, objects in parsed:
        where = f"{xml}: <filename> {filename!r}"
        image = _decode(_inside(_voc_images_dir(root), filename, where), where)
        h, w = image.shape[:2]
        if size_el is not None and size_el.findtext("width"):
            declared = (int(float(size_el.findtext("width"))), int(float(size_el.findtext("height") or 0)))
            if declared != (w, h):
                raise DatasetError(f"{xml}: <size> says {declared[0]}x{declared[1]} but "
                                   f"{filename!r} is {w}x{h}")
        image_boxes, image_labels = [], []
        for where, name, coords in objects:
            if name not in index:
                raise DatasetError(f"{where}: class {name!r} is not in the label map ({', '.join(names)})")
            image_boxes.append(_check_box(coords, w, h, where))
            image_labels.append(index[name])
        images.append(_resize(image, size))
        boxes.append(np.array(image_boxes, np.float32).reshape(-1, 4))
        labels.append(np.array(image_labels, np.int64))
        sources.append(filename)
    return DetectionData(np.stack(images), tuple(boxes), tuple(labels), names, tuple(sources))


def load_mask_folder(root: str | Path, size: int = 320, classes: Sequence[str] | None = None) -> SegmentationData:
    """A mask folder (``images/``, ``masks/<stem>.png``, ``labels.txt``) as ``SegmentationData``.

    ``classes``: the expected object labels (background excluded), checked against labels.txt."""
    root = Path(root)
    labels_path = root / "labels.txt"
    if not labels_path.is_file():
        raise DatasetError(f"{labels_path}: label file not found")
    labels = [line.strip() for line in labels_path.read_text().splitlines() if line.strip()]
    if len(labels) < 2:
        raise DatasetError(f"{labels_path}: empty label map (needs the background line and at "
                           f"least one class; got {labels})")
    objects = _check_classes(labels[1:], classes, f"{labels_path}")
    image_files = sorted(p for p in (root / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not image_files:
        raise DatasetError(f"{root / 'images'}: no images")
    images, masks = [], []
    for image_path in image_files:
        mask_path = root / "masks" / f"{image_path.stem}.png"
        image = _decode(image_path, f"{image_path}")
        if not mask_path.is_file():
            raise DatasetError(f"{image_path}: no mask {mask_path}")
        mask = _decode(mask_path, f"{mask_path}", channels=0)
        if mask.shape[2] != 1:
            raise DatasetError(f"{mask_path}: a mask must be a single-channel PNG of class indices "
                               f"(got {mask.shape[2]} channels)")
        if mask.shape[:2] != image.shape[:2]:
            raise DatasetError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but "
                               f"{image_path.name} is {image.shape[1]}x{image.shape[0]}")
        top = int(mask.max())
        if top >= len(labels):
            raise DatasetError(f"{mask_path}: class index {top} ({int((mask == top).sum())} px) but "
                               f"{labels_path.name} has {len(labels)} labels (0..{len(labels) - 1})")
        images.append(_resize(image, size))
        masks.append(_resize(mask, size, nearest=True)[..., 0])
    return SegmentationData(np.stack(images), np.stack(masks), objects, labels[0],
                            tuple(p.name for p in image_files))


def load_detection_folder(root: str | Path, size: int = 320,
                          classes: Sequence[str] | None = None) -> DetectionData:
    """A COCO folder (has ``labels.json``) or a Pascal VOC folder (has ``Annotations/``)."""
    root = Path(root)
    if (root / "labels.json").is_file():
        return load_coco_folder(root, size, classes)
    if (root / "Annotations").is_dir():
        return load_voc_folder(root, size, classes)
    raise DatasetError(f"{root}: not a detection folder (expected labels.json and images/ "
                       f"(COCO) or Annotations/ and images/ (Pascal VOC))")


def _png(array: np.ndarray) -> bytes:
    # our own zlib writer: tf.io.encode_png would import TensorFlow (~10 s here) for `edgetailor shapes`
    from edgetailor.data.shapes import encode_png

    array = np.asarray(array, np.uint8)
    return encode_png(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array)


def write_coco_folder(root: str | Path, data) -> Path:
    """Write detection data (e.g. ``shapes.detection``) as a COCO folder; returns ``root``."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i, (image, boxes, labels) in enumerate(zip(data.images, data.boxes, data.labels)):
        h, w = image.shape[:2]
        name = f"{i:05d}.png"
        (root / "images" / name).write_bytes(_png(image))
        images.append({"id": i + 1, "file_name": name, "width": int(w), "height": int(h)})
        for box, label in zip(boxes, labels):
            y0, x0, y1, x1 = (float(v) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": int(label) + 1, "iscrowd": 0,
                                "bbox": [x0 * w, y0 * h, (x1 - x0) * w, (y1 - y0) * h],
                                "area": (x1 - x0) * w * (y1 - y0) * h})
    categories = [{"id": 0, "name": "background"}] + [
        {"id": k + 1, "name": name} for k, name in enumerate(data.classes)]
    (root / "labels.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}, indent=1))
    return root


def write_voc_folder(root: str | Path, data) -> Path:
    """Write detection data as a Pascal VOC folder (``images/`` + ``Annotations/``)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for i, (image, boxes, labels) in enumerate(zip(data.images, data.boxes, data.labels)):
        h, w = image.shape[:2]
        name = f"{i:05d}.png"
        (root / "images" / name).write_bytes(_png(image))
        objects = "".join(
            f"<object><name>{data.classes[int(label)]}</name><bndbox>"
            f"<xmin>{box[1] * w:.2f}</xmin><ymin>{box[0] * h:.2f}</ymin>"
            f"<xmax>{box[3] * w:.2f}</xmax><ymax>{box[2] * h:.2f}</ymax></bndbox></object>"
            for box, label in zip(boxes, labels))
        (root / "Annotations" / f"{i:05d}.xml").write_text(
            f"<annotation><filename>{name}</filename><size><width>{w}</width><height>{h}</height>"
            f"<depth>3</depth></size>{objects}</annotation>")
    return root


def write_mask_folder(root: str | Path, data, background: str = "background") -> Path:
    """Write images + class masks (e.g. ``shapes.detection``) as a mask folder."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i, (image, mask) in enumerate(zip(data.images, data.masks)):
        (root / "images" / f"{i:05d}.png").write_bytes(_png(image))
        (root / "masks" / f"{i:05d}.png").write_bytes(_png(mask))
    (root / "labels.txt").write_text("\n".join((background,) + tuple(data.classes)) + "\n")
    return root
