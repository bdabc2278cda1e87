"""Box coding and target assignment for SSD, in numpy (TF OD API semantics).

- Boxes are ``(ymin, xmin, ymax, xmax)`` normalized to [0, 1]; anchors ``(yc, xc, h, w)``.
- ``faster_rcnn_box_coder`` with scales (10, 10, 5, 5): ``ty = 10 (yc - ya) / ha``,
  ``th = 5 log(h / ha)`` (same for x, w); the TFLite ``TFLite_Detection_PostProcess`` op
  decodes with the same scales.
- Argmax matcher at IoU 0.5 (matched = unmatched threshold, so no ignored band) with
  ``force_match_for_each_row``: every ground-truth box also claims its best anchor.
"""
from __future__ import annotations

import numpy as np

SCALES = (10.0, 10.0, 5.0, 5.0)
_EPS = 1e-8


def corners(anchors: np.ndarray) -> np.ndarray:
    """``(yc, xc, h, w)`` rows -> ``(ymin, xmin, ymax, xmax)``."""
    yc, xc, h, w = np.moveaxis(np.asarray(anchors, dtype=np.float32), -1, 0)
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)


def centers(boxes: np.ndarray) -> np.ndarray:
    """``(ymin, xmin, ymax, xmax)`` rows -> ``(yc, xc, h, w)``."""
    y0, x0, y1, x1 = np.moveaxis(np.asarray(boxes, dtype=np.float32), -1, 0)
    return np.stack([(y0 + y1) / 2, (x0 + x1) / 2, y1 - y0, x1 - x0], axis=-1)


def encode(boxes: np.ndarray, anchors: np.ndarray, scales=SCALES) -> np.ndarray:
    """Regression targets ``(ty, tx, th, tw)`` of ``boxes`` against row-aligned ``anchors``."""
    yc, xc, h, w = np.moveaxis(centers(boxes), -1, 0)
    ya, xa, ha, wa = np.moveaxis(np.asarray(anchors, dtype=np.float32), -1, 0)
    ha, wa = ha + _EPS, wa + _EPS
    h, w = np.maximum(h, _EPS), np.maximum(w, _EPS)
    sy, sx, sh, sw = scales
    return np.stack([sy * (yc - ya) / ha, sx * (xc - xa) / wa,
                     sh * np.log(h / ha), sw * np.log(w / wa)], axis=-1).astype(np.float32)


def decode(codes: np.ndarray, anchors: np.ndarray, scales=SCALES) -> np.ndarray:
    """Inverse of ``encode``: ``(ymin, xmin, ymax, xmax)`` boxes."""
    ty, tx, th, tw = np.moveaxis(np.asarray(codes, dtype=np.float32), -1, 0)
    ya, xa, ha, wa = np.moveaxis(np.asarray(anchors, dtype=np.float32), -1, 0)
    sy, sx, sh, sw = scales
    yc, xc = ty / sy * ha + ya, tx / sx * wa + xa
    h, w = np.exp(th / sh) * ha, np.exp(tw / sw) * wa
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``[len(a), len(b)]`` of corner boxes."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    y0 = np.maximum(a[:, None, 0], b[None, :, 0])
    x0 = np.maximum(a[:, None, 1], b[None, :, 1])
    y1 = np.minimum(a[:, None, 2], b[None, :, 2])
    x1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(y1 - y0, 0, None) * np.clip(x1 - x0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, _EPS)


def assign(boxes: np.ndarray, classes: np.ndarray, anchors: np.ndarray,
           iou_threshold: float = 0.5, scales=SCALES) -> tuple[np.ndarray, np.ndarray]:
    """Targets for one image: class per anchor ``[A]`` int32 (0 = background, k + 1 = class k)
    and box codes ``[A, 4]`` (zero where unmatched).

    ``boxes`` ``[G, 4]`` corners, ``classes`` ``[G]`` 0-based class indices.
    """
    num_anchors = len(anchors)
    cls_target = np.zeros(num_anchors, np.int32)
    box_target = np.zeros((num_anchors, 4), np.float32)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return cls_target, box_target
    overlaps = iou(boxes, corners(anchors))  # [G, A]
    match = overlaps.argmax(axis=0)
    matched = overlaps.max(axis=0) >= iou_threshold
    # force_match_for_each_row: each box takes its best anchor even below the threshold
    best = overlaps.argmax(axis=1)
    match[best] = np.arange(len(boxes))
    matched[best] = True
    cls_target[matched] = np.asarray(classes, dtype=np.int32)[match[matched]] + 1
    box_target[matched] = encode(boxes[match[matched]], anchors[matched], scales)
    return cls_target, box_target
