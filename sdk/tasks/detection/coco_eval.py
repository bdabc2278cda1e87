"""COCO box mAP through pycocotools (the maintained reference evaluator), from numpy arrays.

Boxes come in as normalized ``(ymin, xmin, ymax, xmax)``; they are turned into COCO pixel
``[x, y, w, h]`` at each image's size, so the small/medium/large areas mean what they mean on
COCO. Classes are 0-based indices; COCO category ids are ``index + 1``.
"""
from __future__ import annotations

import contextlib
import io
from typing import Sequence

import numpy as np

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _xywh(box: np.ndarray, height: int, width: int) -> list[float]:
    y0, x0, y1, x1 = (float(v) for v in box)
    return [x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height]


def to_coco(gt_boxes: Sequence[np.ndarray], gt_labels: Sequence[np.ndarray],
            classes: Sequence[str], image_sizes: Sequence[tuple[int, int]]) -> dict:
    """A COCO ground-truth dict (images, annotations, categories) from per-image arrays."""
    images, annotations = [], []
    for i, ((h, w), boxes, labels) in enumerate(zip(image_sizes, gt_boxes, gt_labels)):
        images.append({"id": i + 1, "height": int(h), "width": int(w), "file_name": f"{i}.png"})
        for box, label in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(labels).reshape(-1)):
            xywh = _xywh(box, h, w)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": int(label) + 1, "bbox": xywh,
                                "area": xywh[2] * xywh[3], "iscrowd": 0})
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(classes)]
    return {"info": {}, "images": images, "annotations": annotations, "categories": categories}


def evaluate(gt_boxes: Sequence[np.ndarray], gt_labels: Sequence[np.ndarray],
             det_boxes: Sequence[np.ndarray], det_scores: Sequence[np.ndarray],
             det_labels: Sequence[np.ndarray], classes: Sequence[str],
             image_sizes: Sequence[tuple[int, int]] | tuple[int, int]) -> dict[str, float]:
    """COCO box metrics (``AP`` = mAP@[.5:.95], ``AP50``, ``AP75``, ...) as a dict of floats.

    ``image_sizes``: one (height, width) in px per image, or one for all.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    n = len(gt_boxes)
    if not (len(gt_labels) == len(det_boxes) == len(det_scores) == len(det_labels) == n):
        raise ValueError("ground truth and detections must list the same images")
    if len(image_sizes) == 2 and np.isscalar(image_sizes[0]):
        image_sizes = [tuple(image_sizes)] * n
    results = []
    for i, (boxes, scores, labels) in enumerate(zip(det_boxes, det_scores, det_labels)):
        h, w = image_sizes[i]
        for box, score, label in zip(np.asarray(boxes).reshape(-1, 4), np.ravel(scores), np.ravel(labels)):
            results.append({"image_id": i + 1, "category_id": int(label) + 1,
                            "bbox": _xywh(box, h, w), "score": float(score)})
    if not results:
        return {name: 0.0 for name in STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = to_coco(gt_boxes, gt_labels, classes, image_sizes)
        gt.createIndex()
        dt = gt.loadRes(results)
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(max(v, 0.0)) for name, v in zip(STAT_NAMES, evaluator.stats)}
