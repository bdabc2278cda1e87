"""A tiny SSDLite trained on ``shapes`` finds held-out shapes in Keras, in the TFLite interpreter
(graph ending in TFLite_Detection_PostProcess, ObjectDetector metadata) and exports a Core ML
NMS pipeline that is checked statically; both return the same detections for one
``PostprocessConfig``.

Tiny detector: mobilenet_v3_small at width 0.5, 160 px, trained from scratch on 640 ``shapes``
images (seed 0) for 10 epochs; held out: 100 images of seed 1, where it reaches COCO AP50 0.35 and
AP 0.20 in Keras and AP50 0.278 in TFLite (11 epochs: TFLite 0.223; 8 epochs: 0.186, too close to
AP50_MIN).
"""
import json

import numpy as np
import pytest

from edgetailor.tasks.detection import coco_eval, train as det_train
from edgetailor.tasks.detection.postprocess import PostprocessConfig
from edgetailor.data import shapes
from edgetailor.arch import zoo

pytestmark = pytest.mark.slow  # trains or converts models

AP50_MIN = 0.15        # COCO mAP@0.5 on held-out shapes (Keras and TFLite)
AP_MIN = 0.05          # COCO mAP@[.5:.95] on held-out shapes (Keras)
RESOLUTION = 160
EPOCHS = 10
# every box in the running (score floor 0), as COCO AP wants; class-agnostic, as TFLite's fast NMS
EVALUATION = PostprocessConfig(max_detections=20, score_threshold=0.0, iou_threshold=0.6)
CLASS_AWARE = PostprocessConfig(max_detections=12, score_threshold=0.02, iou_threshold=0.45, class_aware=True)


@pytest.fixture(scope="module")
def detector():
    train = shapes.detection(640, size=RESOLUTION, seed=0)
    spec = zoo.resolve("mobilenet_v3_small", 0.5, RESOLUTION).spec
    return det_train.train(train, spec, epochs=EPOCHS, batch_size=32, learning_rate=0.02)


@pytest.fixture(scope="module")
def held_out():
    return shapes.detection(100, size=RESOLUTION, seed=1)


@pytest.fixture(scope="module")
def exported(detector, tmp_path_factory):
    """``exported(kind, postprocess)``: the detector's .tflite or .mlpackage path with those
    settings, converted once per module."""
    from edgetailor.tasks.detection import export as detection_export

    writers = {"tflite": detection_export.export_tflite, "mlpackage": detection_export.export_coreml}
    cache = {}

    def get(kind: str, postprocess: PostprocessConfig):
        if (kind, postprocess) not in cache:
            folder = tmp_path_factory.mktemp("det")
            cache[kind, postprocess] = writers[kind](detector, folder / f"detector.{kind}", postprocess)
        return cache[kind, postprocess]

    return get


@pytest.fixture(scope="module")
def tflite_path(exported):
    return exported("tflite", EVALUATION)


@pytest.fixture(scope="module")
def coreml_spec(exported):
    """The class-agnostic .mlpackage's spec, read once as an MLModel opens it (each parse of it
    takes seconds with the pure-Python protobuf)."""
    import coremltools as ct

    return ct.models.MLModel(str(exported("mlpackage", EVALUATION)), skip_model_load=True).get_spec()


def test_training_converges(detector):
    history = detector.history
    assert len(history) == EPOCHS
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
    assert inp["name"] == "image"  # as the classifier's and segmenter's
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


def test_coreml_pipeline_ends_in_nms_with_vision_outputs(detector, coreml_spec):
    spec = coreml_spec
    assert spec.WhichOneof("Type") == "pipeline"
    decoder, trim, nms_model = spec.pipeline.models
    assert [m.WhichOneof("Type") for m in spec.pipeline.models] == ["mlProgram", "neuralNetwork",
                                                                    "nonMaximumSuppression"]
    assert [i.name for i in spec.description.input] == ["image", "iouThreshold", "confidenceThreshold"]
    assert spec.description.input[0].type.WhichOneof("Type") == "imageType"
    assert [o.name for o in spec.description.output] == ["confidence", "coordinates"]
    nms = nms_model.nonMaximumSuppression
    assert (nms.confidenceInputFeatureName, nms.coordinatesInputFeatureName) == ("raw_confidence", "raw_coordinates")
    assert nms.iouThresholdInputFeatureName == "iouThreshold"
    assert nms.confidenceThresholdInputFeatureName == "confidenceThreshold"
    assert not nms.pickTop.perClass  # EVALUATION is class-agnostic
    assert tuple(nms.stringClassLabels.vector) == shapes.CLASSES  # the real labels only
    anchors = len(detector.anchors)
    shapes_of = lambda model: [list(o.type.multiArrayType.shape) for o in model.description.output]  # noqa: E731
    # the decoder pads the classes to 80 columns (see coreml_pipeline); the trim stage drops them
    assert shapes_of(decoder) == [[anchors, 80], [anchors, 4]]
    assert shapes_of(trim) == [[anchors, len(shapes.CLASSES)], [anchors, 4]]
    for output, width in zip(spec.description.output, (len(shapes.CLASSES), 4)):
        ranges = output.type.multiArrayType.shapeRange.sizeRanges
        assert [(r.lowerBound, r.upperBound) for r in ranges] == [(0, EVALUATION.max_detections), (width, width)]
    assert json.loads(spec.description.metadata.userDefined["labels"]) == list(shapes.CLASSES)


def test_coreml_thresholds_are_optional_inputs_defaulting_to_the_bundle(coreml_spec):
    """Xcode's generated prediction(...) leaves optional inputs out; the NMS model then applies
    its own thresholds. Inside the pipeline the NMS model's inputs stay required, as Core ML's
    validator wants of that model type (Turi Create marks them the same way)."""
    spec = coreml_spec
    image, iou, confidence = spec.description.input
    assert not image.type.isOptional
    assert iou.type.isOptional and confidence.type.isOptional
    assert iou.type.WhichOneof("Type") == confidence.type.WhichOneof("Type") == "doubleType"
    nms_model = spec.pipeline.models[-1]
    assert not any(f.type.isOptional for f in nms_model.description.input)
    nms = nms_model.nonMaximumSuppression
    assert (nms.iouThreshold, nms.confidenceThreshold) == (EVALUATION.iou_threshold, EVALUATION.score_threshold)
    assert "default 0.6" in iou.shortDescription and "default 0" in confidence.shortDescription


@pytest.mark.parametrize("postprocess", [EVALUATION, CLASS_AWARE], ids=["class-agnostic", "class-aware"])
def test_tflite_applies_the_requested_postprocessing(exported, postprocess):
    from edgetailor.tasks.detection import export as detection_export

    tflite = exported("tflite", postprocess).read_bytes()
    assert detection_export.postprocess_of_tflite(tflite) == postprocess.as_float32()


def test_coreml_applies_the_requested_postprocessing(coreml_spec):
    """One Core ML conversion of this detector (a minute here); the class-aware settings are read
    back from the CLI bundle's NMS model in tests/cli/test_detection_options.py."""
    from edgetailor.tasks.detection import export as detection_export

    assert detection_export.postprocess_of_coreml(coreml_spec) == EVALUATION


@pytest.mark.parametrize("postprocess", [EVALUATION, CLASS_AWARE], ids=["class-agnostic", "class-aware"])
def test_tflite_and_the_coreml_pipeline_return_the_same_detections(detector, held_out, exported, coreml_spec,
                                                                     postprocess):
    """The held-out images through the TFLite model in the interpreter, and through a numpy
    reference of the Core ML pipeline: the decoder's math (same anchors, box coder 10/10/5/5,
    sigmoid, pad), the trim stage's slice and the NonMaximumSuppression model, each as the saved
    .mlpackage's spec says (pad width, slice end, thresholds, per-class flag, box cap and labels
    are read back from it). Core ML prediction needs macOS, so the pipeline itself does not run
    here: the reference NMS follows NonMaximumSuppression.proto (boxes ranked by their best class,
    greedy suppression above the IoU threshold, per class: only boxes with the same argmax label,
    at most the outputs' row bound). The decoder and the trim stage do not depend on the
    post-processing, so both cases read them from the one class-agnostic package; the class-aware
    case applies CLASS_AWARE's NMS settings (the NMS model a class-aware package holds: its
    read-back is in tests/cli/test_detection_options.py)."""
    from edgetailor.converters.coreml import nms_settings
    from edgetailor.tasks.detection import export as detection_export

    images = held_out.images[:40]
    spec = coreml_spec
    settings = nms_settings(spec)
    if postprocess != EVALUATION:
        settings.update(iou_threshold=postprocess.iou_threshold, confidence_threshold=postprocess.score_threshold,
                        per_class=postprocess.class_aware, max_boxes=postprocess.max_detections)
    expected = coreml_reference(detector, images, spec, settings)
    actual = detection_export.run_tflite(exported("tflite", postprocess), images)
    for (boxes, classes, scores), (ref_boxes, ref_classes, ref_scores) in zip(actual, expected):
        assert len(boxes) == len(ref_boxes) <= postprocess.max_detections
        np.testing.assert_array_equal(classes, ref_classes)
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(boxes, ref_boxes, atol=1e-4)
    counts = [len(r[0]) for r in actual]
    assert sum(counts) >= len(images)  # not a comparison of empty lists
    if postprocess == EVALUATION:
        assert max(counts) == postprocess.max_detections  # the cap, reached, is the same on both


def coreml_reference(detector, images, spec, settings: dict) -> list[tuple]:
    """Per image (boxes ymin, xmin, ymax, xmax; classes; scores) as the Core ML pipeline ``spec``
    would return them with an NMS model of ``settings`` (``converters.coreml.nms_settings``),
    computed in numpy from the Keras model's raw outputs."""
    from edgetailor.tasks.detection import box_coder

    decoder, trim, _ = spec.pipeline.models
    padded = decoder.description.output[0].type.multiArrayType.shape[1]
    (kept_columns,) = {layer.sliceStatic.endIds[1] for layer in trim.neuralNetwork.layers
                       if layer.WhichOneof("layer") == "sliceStatic"}
    assert settings["labels"] == list(detector.classes)
    codes, logits = detector.model(det_train.preprocess(images, detector.resolution), training=False)
    out = []
    for image_codes, image_logits in zip(codes.numpy(), logits.numpy()):
        confidence = 1 / (1 + np.exp(-image_logits[:, 1:]))
        confidence = np.pad(confidence, ((0, 0), (0, padded - confidence.shape[1])))[:, :kept_columns]
        corners = box_coder.decode(image_codes, detector.anchors)  # the decoder's x/y/w/h, as corners
        kept = reference_nms(confidence, corners, settings)
        out.append((corners[kept], confidence[kept].argmax(1), confidence[kept].max(1)))
    return out


def reference_nms(confidence: np.ndarray, corners: np.ndarray, settings: dict) -> np.ndarray:
    """Indices Core ML's NonMaximumSuppression keeps, best first (NonMaximumSuppression.proto)."""
    from edgetailor.tasks.detection import box_coder

    labels, best = confidence.argmax(1), confidence.max(1)
    kept: list[int] = []
    for i in np.argsort(-best, kind="stable"):
        if best[i] < settings["confidence_threshold"] or len(kept) == settings["max_boxes"]:
            break
        rivals = [k for k in kept if not settings["per_class"] or labels[k] == labels[i]]
        if rivals and box_coder.iou(corners[i], corners[rivals]).max() > settings["iou_threshold"]:
            continue
        kept.append(int(i))
    return np.array(kept, dtype=np.int64)


def test_coreml_decoder_math_matches_the_box_coder(detector):
    import tensorflow as tf

    from edgetailor.tasks.detection import box_coder, coreml_pipeline

    rng = np.random.default_rng(0)
    anchors = detector.anchors
    codes = rng.normal(0, 1, (1, len(anchors), 4)).astype(np.float32)
    logits = rng.normal(0, 2, (1, len(anchors), 7)).astype(np.float32)
    confidence, xywh = coreml_pipeline.decode(tf.constant(codes), tf.constant(logits), anchors, 80)
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
