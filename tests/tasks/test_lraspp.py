"""LR-ASPP: head definition and cost, a tiny segmenter trained on ``shapes`` masks, TFLite with
ImageSegmenter metadata. Its Core ML ML Program (mask output) is checked on the segmentation
bundle of tests/test_specialize.py: one Core ML conversion of a segmenter in the suite.

Tiny segmenter: mobilenet_v3_small at width 0.5, 128 px, trained from scratch on 512 ``shapes``
images (seed 0) for 10 epochs; held out: 100 images of seed 1, mean IoU 0.46 there in Keras
(12 epochs: 0.51, 8 epochs: 0.39); MIOU_MIN is 0.55x of that 0.46.
"""
import json

import numpy as np
import pytest

from edgetailor.tasks.segmentation import lraspp, train as seg_train
from edgetailor.latency import profiles
from edgetailor.data import shapes
from edgetailor.arch import zoo
from edgetailor.arch.spec import SpecError

pytestmark = pytest.mark.slow  # trains or converts models

MIOU_MIN = 0.25  # mean IoU over background + 6 shapes on held-out images (Keras and TFLite)
RESOLUTION = 128
LABELS = ("background",) + shapes.CLASSES


def test_endpoints_are_stride_8_and_16_blocks():
    spec = zoo.resolve("mobilenet_v3_large", 1.0, 512).spec
    low, high = lraspp.endpoints(spec)
    assert (low.stride, low.channels, low.kind) == (8, 40, "block")
    assert (high.stride, high.channels, high.kind) == (16, 112, "block")


def test_head_cost_matches_keras_and_prices_on_a_profile():
    spec = zoo.resolve("mobilenet_v3_small", 0.75, 224).spec
    config = lraspp.LRASPPConfig(num_classes=21)
    model = lraspp.build(spec, config)
    assert model.output.shape[1:] == (224, 224, 21)
    assert model.count_params() == sum(l.keras_params for l in lraspp.layers(spec, config))
    head = lraspp.head_layers(spec, config)
    assert head[0].ops[0].out_shape == (14, 14, 128)          # 1x1 conv-BN-ReLU branch, 128 ch
    assert head[2].ops[0].act == "sigmoid"                     # gate on the pooled feature
    breakdown = lraspp.predict_latency(spec, config, profiles.load("pixel1"))
    names = {l.name for l in head}
    assert all(l.latency_ms > 0 for l in breakdown.layers if l.name in names)
    assert breakdown.total_ms > sum(l.latency_ms for l in breakdown.layers if l.name in names)


def test_config_needs_background_and_a_class():
    with pytest.raises(SpecError, match="background plus at least one class"):
        lraspp.LRASPPConfig(num_classes=1)


def test_mean_iou():
    truth = np.array([[0, 0, 1, 1], [0, 0, 2, 2]])
    miou, per_class = seg_train.mean_iou(truth, truth, 4)
    assert miou == 1.0 and np.isnan(per_class[3])
    predicted = np.array([[0, 0, 1, 0], [0, 0, 2, 2]])
    miou, per_class = seg_train.mean_iou(truth, predicted, 3)
    np.testing.assert_allclose(per_class, [4 / 5, 1 / 2, 1.0])


@pytest.fixture(scope="module")
def segmenter():
    train = shapes.detection(512, size=RESOLUTION, seed=0)
    spec = zoo.resolve("mobilenet_v3_small", 0.5, RESOLUTION).spec
    return seg_train.train(train, spec, epochs=10, batch_size=32, learning_rate=0.02)


@pytest.fixture(scope="module")
def held_out():
    return shapes.detection(100, size=RESOLUTION, seed=1)


@pytest.fixture(scope="module")
def tflite_path(segmenter, tmp_path_factory):
    from edgetailor.tasks.segmentation import export as segmentation_export

    return segmentation_export.export_tflite(segmenter, tmp_path_factory.mktemp("seg") / "segmenter.tflite")


def test_segmenter_learns_held_out_masks(segmenter, held_out):
    assert segmenter.labels == LABELS
    metrics = seg_train.evaluate(segmenter, held_out)
    print("keras", metrics)
    assert metrics["miou"] >= MIOU_MIN, metrics


def test_tflite_segmenter_matches_keras(tflite_path, segmenter, held_out):
    from edgetailor.tasks.segmentation import export as segmentation_export

    masks = segmentation_export.run_tflite(tflite_path, held_out.images[:20])
    assert (masks == segmenter.predict(held_out.images[:20])).mean() > 0.99
    miou, _ = seg_train.mean_iou(held_out.masks[:20], masks, len(LABELS))
    assert miou >= MIOU_MIN


def test_tflite_has_image_segmenter_metadata(tflite_path):
    import tensorflow as tf
    from tensorflow_lite_support.metadata.python import metadata as md

    interpreter = tf.lite.Interpreter(model_path=str(tflite_path))
    (out,) = interpreter.get_output_details()
    assert list(out["shape"]) == [1, RESOLUTION, RESOLUTION, len(LABELS)]
    displayer = md.MetadataDisplayer.with_model_file(str(tflite_path))
    meta = json.loads(displayer.get_metadata_json())
    assert meta["name"] == "ImageSegmenter"
    sub = meta["subgraph_metadata"][0]
    assert sub["input_tensor_metadata"][0]["process_units"][0]["options"] == {"mean": [127.5], "std": [127.5]}
    output = sub["output_tensor_metadata"][0]
    assert output["name"] == "segmentation_masks"
    assert output["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
    assert tuple(displayer.get_associated_file_buffer("labels.txt").decode().split()) == LABELS


def test_mask_class_beyond_the_labels_is_an_error():
    data = shapes.detection(2, size=64, seed=0)
    spec = zoo.resolve("mobilenet_v3_small", 0.5, 64).spec
    with pytest.raises(ValueError, match="head has 3 classes but the data has 7 labels"):
        seg_train.train(data, spec, lraspp.LRASPPConfig(num_classes=3), epochs=1)
