"""A tiny SSDLite trained on ``shapes`` finds held-out shapes in Keras, in the TFLite interpreter
(graph ending in TFLite_Detection_PostProcess, ObjectDetector metadata) and exports a Core ML
NMS pipeline that is checked statically.

Tiny detector: mobilenet_v3_small at width 0.5, 160 px, trained from scratch on 640 ``shapes``
images (seed 0) for 15 epochs (about 1-1.5 minutes on two shared cores); held out: 100 images of
seed 1. It reaches COCO AP50 ~0.3 and AP ~0.17 there; the thresholds below are half of that.
"""
import json

import numpy as np
import pytest

from edgetailor.tasks.detection import coco_eval, train as det_train
from edgetailor.data import shapes
from edgetailor.arch import zoo

pytestmark = pytest.mark.slow  # trains or converts models

AP50_MIN = 0.15        # COCO mAP@0.5 on held-out shapes (Keras and TFLite)
AP_MIN = 0.05          # COCO mAP@[.5:.95] on held-out shapes (Keras)
RESOLUTION = 160


@pytest.fixture(scope="module")
def detector():
    train = shapes.detection(640, size=RESOLUTION, seed=0)
    spec = zoo.resolve("mobilenet_v3_small", 0.5, RESOLUTION).spec
    return det_train.train(train, spec, epochs=15, batch_size=32, learning_rate=0.02)


@pytest.fixture(scope="module")
def held_out():
    return shapes.detection(100, size=RESOLUTION, seed=1)


@pytest.fixture(scope="module")
def tflite_path(detector, tmp_path_factory):
    from edgetailor.tasks.detection import export as detection_export

    return detection_export.export_tflite(detector, tmp_path_factory.mktemp("det") / "detector.tflite",
                                          max_detections=20)


def test_training_converges(detector):
    history = detector.history
    assert len(history) == 15
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_keras_detector_finds_held_out_shapes(detector, held_out):
    metrics = det_train.evaluate(detector, held_out)
    assert metrics["AP50"] >= AP50_MIN, metrics
    assert metrics["AP"] >= AP_MIN, metrics


def test_tflite_graph_ends_in_the_postprocess_op_with_task_library_outputs(tflite_path, detector):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    assert ops.count("TFLite_Detection_PostProcess") == 1
    (inp,) = interpreter.get_input_details()
    assert list(inp["shape"]) == [1, RESOLUTION, RESOLUTION, 3] and inp["dtype"] == np.float32
    outs = interpreter.get_output_details()
    assert [list(o["shape"]) for o in outs] == [[1, 20, 4], [1, 20], [1, 20], [1]]
    assert [o["name"] for o in outs] == ["location", "category", "score", "number of detections"]
    post = [op for op in interpreter._get_ops_details() if op["op_name"] == "TFLite_Detection_PostProcess"][0]
    assert list(post["outputs"]) == [o["index"] for o in outs]


def test_tflite_metadata_is_object_detector_with_labels(tflite_path, detector):
    from tensorflow_lite_support.metadata.python import metadata as md

    displayer = md.MetadataDisplayer.with_model_file(str(tflite_path))
    meta = json.loads(displayer.get_metadata_json())
    assert meta["name"] == "ObjectDetector"
    sub = meta["subgraph_metadata"][0]
    norm = sub["input_tensor_metadata"][0]["process_units"][0]["options"]
    assert norm == {"mean": [127.5], "std": [127.5]}
    outputs = sub["output_tensor_metadata"]
    assert [o["name"] for o in outputs] == ["location", "category", "score", "number of detections"]
    assert outputs[0]["content"]["content_properties"] == {"index": [1, 0, 3, 2], "type": "BOUNDARIES"}
    assert outputs[1]["associated_files"][0]["type"] == "TENSOR_VALUE_LABELS"
    labels = displayer.get_associated_file_buffer("labels.txt").decode().split()
    assert tuple(labels) == detector.classes == shapes.CLASSES


def test_tflite_detector_finds_held_out_shapes(tflite_path, detector, held_out):
    from edgetailor.tasks.detection import export as detection_export

    results = detection_export.run_tflite(tflite_path, held_out.images)
    for boxes, classes, scores in results:
        assert ((classes >= 0) & (classes < len(shapes.CLASSES))).all()
        assert (np.diff(scores) <= 1e-6).all()  # sorted by score
    metrics = coco_eval.evaluate(held_out.boxes, held_out.labels, [r[0] for r in results],
                                 [r[2] for r in results], [r[1] for r in results],
                                 detector.classes, (RESOLUTION, RESOLUTION))
    assert metrics["AP50"] >= AP50_MIN, metrics
    # the interpreter decodes with the same anchors and box coder as Keras
    keras_top = detector.predict(held_out.images[:1], max_detections=1)[0]
    np.testing.assert_allclose(results[0][0][0], np.clip(keras_top.boxes[0], 0, 1), atol=0.02)


def test_coreml_pipeline_ends_in_nms_with_vision_outputs(detector, tmp_path):
    import coremltools as ct

    from edgetailor.tasks.detection import export as detection_export

    path = detection_export.export_coreml(detector, tmp_path / "detector.mlpackage")
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    assert spec.WhichOneof("Type") == "pipeline"
    decoder, nms_model = spec.pipeline.models
    assert decoder.WhichOneof("Type") == "mlProgram"
    assert nms_model.WhichOneof("Type") == "nonMaximumSuppression"
    assert [i.name for i in spec.description.input] == ["image", "iouThreshold", "confidenceThreshold"]
    assert spec.description.input[0].type.WhichOneof("Type") == "imageType"
    assert [o.name for o in spec.description.output] == ["confidence", "coordinates"]
    nms = nms_model.nonMaximumSuppression
    assert (nms.confidenceInputFeatureName, nms.coordinatesInputFeatureName) == ("raw_confidence", "raw_coordinates")
    assert nms.iouThresholdInputFeatureName == "iouThreshold"
    assert nms.confidenceThresholdInputFeatureName == "confidenceThreshold"
    assert nms.pickTop.perClass
    labels = list(nms.stringClassLabels.vector)
    assert tuple(labels[:6]) == shapes.CLASSES and len(labels) % 80 == 0  # ML Program NMS padding
    conf, coords = decoder.description.output
    assert list(conf.type.multiArrayType.shape) == [len(detector.anchors), len(labels)]
    assert list(coords.type.multiArrayType.shape) == [len(detector.anchors), 4]
    ranges = spec.description.output[1].type.multiArrayType.shapeRange.sizeRanges
    assert [(r.lowerBound, r.upperBound) for r in ranges] == [(0, -1), (4, 4)]
    assert spec.description.metadata.userDefined["classes"] == ",".join(shapes.CLASSES)


def test_coreml_decoder_math_matches_the_box_coder(detector):
    import tensorflow as tf

    from edgetailor.tasks.detection import box_coder
    from edgetailor.tasks.detection import export as detection_export

    rng = np.random.default_rng(0)
    anchors = detector.anchors
    codes = rng.normal(0, 1, (1, len(anchors), 4)).astype(np.float32)
    logits = rng.normal(0, 2, (1, len(anchors), 7)).astype(np.float32)
    confidence, xywh = detection_export._decode(tf.constant(codes), tf.constant(logits), anchors, 80)
    corners = box_coder.decode(codes[0], anchors)
    expected = np.stack([(corners[:, 1] + corners[:, 3]) / 2, (corners[:, 0] + corners[:, 2]) / 2,
                         corners[:, 3] - corners[:, 1], corners[:, 2] - corners[:, 0]], axis=1)
    np.testing.assert_allclose(xywh.numpy(), expected, rtol=1e-4, atol=1e-5)
    assert confidence.shape == (len(anchors), 80)
    np.testing.assert_allclose(confidence.numpy()[:, :6], 1 / (1 + np.exp(-logits[0, :, 1:])), rtol=1e-5)
    assert (confidence.numpy()[:, 6:] == 0).all()


def test_hard_negative_mining_keeps_three_negatives_per_positive():
    import tensorflow as tf

    cls = np.zeros((1, 20), np.int32)
    cls[0, 3] = 2
    logits = np.zeros((1, 20, 3), np.float32)
    logits[0, :, 1] = np.linspace(-3, 3, 20)  # the hardest negatives score highest
    onehot = tf.one_hot(cls, 3)[..., 1:]
    kept = det_train.hard_negative_loss(onehot, tf.constant(logits[..., 1:]), tf.constant(cls > 0)).numpy()
    assert (kept[0] > 0).sum() == 1 + 3 + 1  # the positive, 3 per positive, and one spare
    assert kept[0, -1] > 0 and kept[0, 0] == 0


def test_class_count_mismatch_is_an_error():
    from edgetailor.tasks.detection import ssdlite

    data = shapes.detection(2, size=64, seed=0)
    spec = zoo.resolve("mobilenet_v3_small", 0.5, 64).spec
    with pytest.raises(ValueError, match="head has 3 classes but the data has 6 labels"):
        det_train.train(data, spec, ssdlite.SSDLiteConfig(num_classes=3), epochs=1)
