"""Folder loaders (COCO, Pascal VOC, image + PNG mask) and their errors, which name file and entry.

The fixtures under tests/fixtures/det were written from ``shapes.detection(3, 64, seed=3,
max_objects=3, classes=("circle", "square", "triangle"))`` with ``write_coco_folder``,
``write_voc_folder`` and ``write_mask_folder``; each bad case edits a copy in tmp_path.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgetailor.data import folders as dd
from edgetailor.data import shapes

FIXTURES = Path(__file__).parents[1] / "fixtures" / "det"
CLASSES = ("circle", "square", "triangle")


@pytest.fixture(scope="module")
def source():
    return shapes.detection(3, 64, seed=3, max_objects=3, classes=CLASSES)


def _copy(tmp_path, name):
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def _edit_json(root, edit):
    path = root / "labels.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("loader, folder", [(dd.load_coco_folder, "coco"), (dd.load_voc_folder, "voc")])
def test_folders_load_what_shapes_wrote(loader, folder, source):
    data = loader(FIXTURES / folder, size=64)
    assert data.classes == CLASSES
    assert data.images.shape == (3, 64, 64, 3) and np.array_equal(data.images, source.images)
    for got, want, got_l, want_l in zip(data.boxes, source.boxes, data.labels, source.labels):
        np.testing.assert_allclose(got, want, atol=1e-2)  # VOC keeps 2 decimals of a pixel
        assert list(got_l) == list(want_l)


def test_loaders_resize_images_and_keep_normalized_boxes(source):
    data = dd.load_coco_folder(FIXTURES / "coco", size=96)
    assert data.images.shape == (3, 96, 96, 3)
    np.testing.assert_allclose(data.boxes[0], source.boxes[0], atol=1e-6)
    first, rest = data.split(2 / 3)
    assert len(first.images) == 2 and len(rest.images) == 1 and rest.files == ("00002.png",)


def test_detection_folder_picks_the_layout(tmp_path):
    assert dd.load_detection_folder(FIXTURES / "coco", size=64).files == ("00000.png", "00001.png", "00002.png")
    assert dd.load_detection_folder(FIXTURES / "voc", size=64).classes == CLASSES
    with pytest.raises(dd.DatasetError, match="not a detection folder"):
        dd.load_detection_folder(tmp_path)


def test_mask_folder_loads(source):
    data = dd.load_mask_folder(FIXTURES / "masks", size=64)
    assert data.classes == CLASSES and data.background == "background"
    assert np.array_equal(data.masks, source.masks)


def test_coco_missing_image_names_file_and_entry(tmp_path):
    root = _copy(tmp_path, "coco")
    (root / "images" / "00001.png").unlink()
    with pytest.raises(dd.DatasetError, match=r"labels\.json: images\[1\] \(id 2, '00001\.png'\).*not found"):
        dd.load_coco_folder(root)


def test_coco_box_outside_the_image(tmp_path):
    root = _copy(tmp_path, "coco")
    _edit_json(root, lambda doc: doc["annotations"][2].update(bbox=[50.0, 10.0, 30.0, 10.0]))
    with pytest.raises(dd.DatasetError, match=r"annotations\[2\] \(id 3\).*outside the 64x64 image"):
        dd.load_coco_folder(root)


def test_coco_empty_box(tmp_path):
    root = _copy(tmp_path, "coco")
    _edit_json(root, lambda doc: doc["annotations"][0].update(bbox=[5.0, 5.0, 0.0, 4.0]))
    with pytest.raises(dd.DatasetError, match=r"annotations\[0\] \(id 1\): empty box"):
        dd.load_coco_folder(root)


def test_coco_empty_label_map(tmp_path):
    root = _copy(tmp_path, "coco")
    _edit_json(root, lambda doc: doc.update(categories=[{"id": 0, "name": "background"}]))
    with pytest.raises(dd.DatasetError, match=r"labels\.json: categories: empty label map"):
        dd.load_coco_folder(root)


def test_coco_unknown_category(tmp_path):
    root = _copy(tmp_path, "coco")
    _edit_json(root, lambda doc: doc["annotations"][1].update(category_id=7))
    with pytest.raises(dd.DatasetError, match=r"annotations\[1\] \(id 2\): category_id 7 is not in"):
        dd.load_coco_folder(root)


def test_coco_unknown_image_id(tmp_path):
    root = _copy(tmp_path, "coco")
    _edit_json(root, lambda doc: doc["annotations"][1].update(image_id=42))
    with pytest.raises(dd.DatasetError, match=r"annotations\[1\] \(id 2\): image_id 42"):
        dd.load_coco_folder(root)


def test_coco_class_count_must_match_the_expected_labels():
    with pytest.raises(dd.DatasetError, match=r"3 classes \(circle, square, triangle\) but 4 labels"):
        dd.load_coco_folder(FIXTURES / "coco", classes=CLASSES + ("star",))
    with pytest.raises(dd.DatasetError, match="differ from the expected labels"):
        dd.load_coco_folder(FIXTURES / "coco", classes=("square", "circle", "triangle"))


def test_coco_declared_size_must_match_the_file(tmp_path):
    root = _copy(tmp_path, "coco")
    _edit_json(root, lambda doc: doc["images"][0].update(width=640))
    with pytest.raises(dd.DatasetError, match=r"images\[0\].*declared 640x64 but the file is 64x64"):
        dd.load_coco_folder(root)


def test_coco_not_json(tmp_path):
    root = _copy(tmp_path, "coco")
    (root / "labels.json").write_text("{oops")
    with pytest.raises(dd.DatasetError, match=r"labels\.json: not valid JSON"):
        dd.load_coco_folder(root)


def test_voc_missing_image(tmp_path):
    root = _copy(tmp_path, "voc")
    (root / "images" / "00002.png").unlink()
    with pytest.raises(dd.DatasetError, match=r"00002\.xml: <filename> '00002\.png'.*not found"):
        dd.load_voc_folder(root)


def test_voc_box_outside_and_unknown_class(tmp_path):
    root = _copy(tmp_path, "voc")
    xml = root / "Annotations" / "00001.xml"
    text = xml.read_text()
    xml.write_text(text.replace("<xmax>", "<xmax>1", 1))
    with pytest.raises(dd.DatasetError, match=r"00001\.xml: object 0 \(circle\): box .* outside the 64x64"):
        dd.load_voc_folder(root)
    xml.write_text(text)
    with pytest.raises(dd.DatasetError, match=r"00001\.xml: object 0 \(circle\): class 'circle' is not in"):
        dd.load_voc_folder(root, classes=("square", "triangle"))
    with pytest.raises(dd.DatasetError, match="empty label map"):
        dd.load_voc_folder(root, classes=())


def test_mask_folder_errors(tmp_path):
    root = _copy(tmp_path, "masks")
    (root / "labels.txt").write_text("background\n")
    with pytest.raises(dd.DatasetError, match=r"labels\.txt: empty label map"):
        dd.load_mask_folder(root)
    (root / "labels.txt").write_text("background\ncircle\nsquare\n")  # the masks use index 3
    with pytest.raises(dd.DatasetError, match=r"masks/0000\d\.png: class index 3 .* has 3 labels"):
        dd.load_mask_folder(root)
    (root / "labels.txt").write_text("background\ncircle\nsquare\ntriangle\n")
    (root / "masks" / "00001.png").unlink()
    with pytest.raises(dd.DatasetError, match=r"images/00001\.png: no mask"):
        dd.load_mask_folder(root)


def test_mask_folder_expected_classes():
    with pytest.raises(dd.DatasetError, match="2 labels were expected"):
        dd.load_mask_folder(FIXTURES / "masks", classes=("circle", "square"))
