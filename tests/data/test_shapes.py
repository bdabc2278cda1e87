"""The built-in shapes dataset: deterministic, well-formed, with boxes and masks."""
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from edgetailor.data import shapes


def test_same_seed_same_arrays_and_prefix_stable():
    a = shapes.classification(12, 32, seed=3)
    b = shapes.classification(12, 32, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    prefix = shapes.classification(5, 32, seed=3)
    np.testing.assert_array_equal(prefix.images, a.images[:5])
    other = shapes.classification(12, 32, seed=4)
    assert not np.array_equal(other.images, a.images)


def test_classification_arrays():
    data = shapes.classification(60, 48, seed=0)
    assert data.images.shape == (60, 48, 48, 3) and data.images.dtype == np.uint8
    assert data.labels.dtype == np.int64 and set(data.labels) <= set(range(len(data.classes)))
    assert len(data.classes) >= 4 and len(set(data.labels)) >= 4
    assert data.images.std() > 20  # cluttered, not flat


@pytest.mark.parametrize("size", [32, 224])
def test_sizes_in_range(size):
    assert shapes.classification(2, size).images.shape[1:3] == (size, size)


@pytest.mark.parametrize("bad", [dict(size=16), dict(size=225), dict(n=-1), dict(classes=("circle",)),
                                 dict(classes=("circle", "hexagon"))])
def test_bad_arguments(bad):
    args = dict(n=2, size=32) | bad
    with pytest.raises(ValueError):
        shapes.classification(**args)


def test_each_shape_draws_a_distinct_mask():
    masks = {kind: shapes.shape_mask(kind, 64, 32, 32, 20, 0.0) for kind in shapes.CLASSES}
    for kind, mask in masks.items():
        assert 100 < mask.sum() < 64 * 64, kind
    kinds = list(masks)
    for i, a in enumerate(kinds):
        for b in kinds[i + 1:]:
            assert (masks[a] != masks[b]).sum() > 50, (a, b)
    with pytest.raises(ValueError, match="unknown shape"):
        shapes.shape_mask("hexagon", 32, 16, 16, 8, 0.0)


def test_detection_boxes_labels_and_masks_agree():
    data = shapes.detection(10, 96, seed=1, max_objects=4)
    again = shapes.detection(10, 96, seed=1, max_objects=4)
    np.testing.assert_array_equal(data.masks, again.masks)
    assert data.images.shape == (10, 96, 96, 3) and data.masks.shape == (10, 96, 96)
    assert any(len(b) > 1 for b in data.boxes)
    for boxes, labels, mask in zip(data.boxes, data.labels, data.masks):
        assert 1 <= len(boxes) == len(labels) <= 4
        assert boxes.dtype == np.float32 and ((0 <= boxes) & (boxes <= 1)).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert (mask == 0).mean() > 0.3  # background is 0
        assert set(np.unique(mask)) - {0} <= {int(l) + 1 for l in labels}
        for (y0, x0, y1, x1), label in zip((boxes * 96).round().astype(int), labels):
            assert (mask[y0:y1, x0:x1] == label + 1).any()


def _decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, width, height = 8, b"", 0, 0
    while position < len(data):
        (length,), tag = struct.unpack(">I", data[position:position + 4]), data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        assert struct.unpack(">I", data[position + 8 + length:position + 12 + length])[0] == zlib.crc32(tag + body)
        if tag == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif tag == b"IDAT":
            idat += body
        position += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * 3)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(height, width, 3)


def test_png_round_trip_and_folder_layout(tmp_path):
    data = shapes.classification(9, 32, seed=2)
    np.testing.assert_array_equal(_decode_png(shapes.encode_png(data.images[0])), data.images[0])
    root = shapes.write_folder(tmp_path / "ds", 9, 32, seed=2)
    files = sorted(root.glob("*/*.png"))
    assert len(files) == 9
    assert sorted(p.name for p in root.iterdir()) == sorted(shapes.CLASSES)
    first = next(f for f in files if f.name == "00000.png")
    assert first.parent.name == data.classes[data.labels[0]]
    np.testing.assert_array_equal(_decode_png(first.read_bytes()), data.images[0])


def test_search_modules_import_without_tensorflow():
    code = ("import sys, edgetailor.data.shapes, edgetailor.choose.search.engine, edgetailor.choose.search.strategies, "
            "edgetailor.choose.search.report, edgetailor.choose.search.storage, edgetailor.tasks.classification.train, edgetailor.cli.search; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
