"""Export SSDLite detectors: TFLite for the Task Library / MediaPipe, Core ML for Vision.

TFLite (CONVENTIONS §2): the serving function runs the Keras model, applies the sigmoid, and
calls a ``tf.function(experimental_implements='name: "TFLite_Detection_PostProcess" ...')`` stub
on (box encodings, class scores, anchors); the converter legalizes it into the custom op, whose
four outputs (locations ``[1, N, 4]``, classes ``[1, N]``, scores ``[1, N]``, num_detections
``[1]``) are the model's outputs in that order; the input tensor is ``image``, as in the
classifier and segmenter. ObjectDetector metadata (input normalization 127.5/127.5, labels on the
classes tensor) comes from tflite-support's metadata writer.

Core ML (CONVENTIONS §3): a pipeline ending in NonMaximumSuppression (``coreml_pipeline``), so
Vision returns ``VNRecognizedObjectObservation``s labelled with the detector's own labels.

Both apply one ``PostprocessConfig`` (``postprocess``): the same boxes on Android and iOS.
Every file is written to a temporary name and renamed: nothing is left half written.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from edgetailor import _io as atomic
from edgetailor.errors import ConversionError
from edgetailor.tasks.detection import box_coder, coco_eval, coreml_pipeline, heads, ssdlite
from edgetailor.tasks.detection.postprocess import PostprocessConfig, float32

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
INPUT_NAME = "image"
# the four outputs in order, named as the Task Library reads them (tensors and metadata): what each holds
OUTPUTS = {
    "location": "boxes (ymin, xmin, ymax, xmax) normalized to 0-1, best score first; rows past "
                "'number of detections' hold no detection (their values are undefined)",
    "category": "class of each box: 0-based index into labels.txt (background removed)",
    "score": "confidence (0-1) of each box's class",
    "number of detections": "how many rows of location, category and score hold detections",
}
OUTPUT_NAMES = tuple(OUTPUTS)


def _postprocess_stub(num_classes: int, postprocess: PostprocessConfig):
    sy, sx, sh, sw = box_coder.SCALES
    attrs = {
        "max_detections": f"i: {postprocess.max_detections}",
        "max_classes_per_detection": "i: 1",
        # regular NMS: per class, at most max_detections each before the merge keeps the best
        "detections_per_class": f"i: {postprocess.max_detections}",
        "use_regular_nms": f"b: {str(postprocess.class_aware).lower()}",
        # repr keeps every digit ("%f" made 1e-8 a threshold of 0)
        "nms_score_threshold": f"f: {float(postprocess.score_threshold)!r}",
        "nms_iou_threshold": f"f: {float(postprocess.iou_threshold)!r}",
        "y_scale": f"f: {sy!r}", "x_scale": f"f: {sx!r}", "h_scale": f"f: {sh!r}", "w_scale": f"f: {sw!r}",
        "num_classes": f"i: {num_classes}",
    }
    implements = " ".join([f'name: "{POSTPROCESS_OP}"'] +
                          [f'attr {{ key: "{key}" value {{ {value} }} }}' for key, value in attrs.items()])

    @tf.function(experimental_implements=implements)
    def postprocess_op(box_encodings, class_scores, anchors):
        # A stub: the converter replaces the whole function by the custom op.
        boxes = tf.constant(0.0, tf.float32, name="boxes")
        scores = tf.constant(0.0, tf.float32, name="scores")
        classes = tf.constant(0.0, tf.float32, name="classes")
        num = tf.constant(0.0, tf.float32, name="num_detections")
        return boxes, classes, scores, num

    return postprocess_op


def best_class_only(scores: tf.Tensor) -> tf.Tensor:
    """Sigmoid scores ``[1, A, 1 + C]`` (background first) with every class but each anchor's
    argmax (the first, on a tie) set to -1, below any score threshold: the regular (per-class) NMS
    of the TFLite op then sees each box in one class only, as Core ML's per-class NMS does."""
    background, classes = scores[..., :1], scores[..., 1:]
    best = tf.one_hot(tf.argmax(classes, axis=-1), classes.shape[-1], on_value=True, off_value=False)
    return tf.concat([background, tf.where(best, classes, -tf.ones_like(classes))], axis=-1)


def _serving_module(detector, postprocess: PostprocessConfig) -> tf.Module:
    """A module whose only trackables are the model's variables and the serving function.

    Saving the Keras model itself would make the SavedModel writer trace every layer for Keras
    metadata, which with the pure-Python protobuf that tflite-support pins takes minutes; the
    variables alone save in seconds.
    """
    model = detector.model
    anchors = tf.constant(detector.anchors, tf.float32)
    postprocess_op = _postprocess_stub(detector.config.num_classes, postprocess)
    module = tf.Module()
    module.weights = list(model.variables)

    @tf.function
    def serve(image):
        codes, logits = model(image, training=False)
        scores = heads.scores(detector.config, logits)  # the sigmoid; YOLOX: objectness x class
        if postprocess.class_aware:
            scores = best_class_only(scores)
        # TF OD API: "tf.function seems to reverse order" of the stub's outputs.
        return postprocess_op(codes, scores, anchors)[::-1]

    module.serve = serve
    return module


def _task_library_io(tflite_model: bytes) -> bytes:
    """Make the model's outputs the post-processing op's outputs, in the op's order (locations,
    classes, scores, num_detections): the order the Task Library and the metadata writer read;
    and name its input tensor ``image`` (the converter calls it ``serving_default_image:0``)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_model))
    codes = [c.customCode.decode() if isinstance(c.customCode, bytes) else c.customCode
             for c in model.operatorCodes]
    graph = model.subgraphs[0]
    ops = [op for op in graph.operators if codes[op.opcodeIndex] == POSTPROCESS_OP]
    if len(ops) != 1:
        raise RuntimeError(f"the converted detector has {len(ops)} {POSTPROCESS_OP} ops (expected 1)")
    outputs = [int(i) for i in ops[0].outputs]
    if sorted(outputs) != sorted(int(i) for i in graph.outputs):
        raise RuntimeError(f"the detector's outputs are not the {POSTPROCESS_OP} outputs")
    graph.outputs = outputs
    for name, index in zip(OUTPUT_NAMES, outputs):
        graph.tensors[index].name = name
    (image,) = graph.inputs
    graph.tensors[image].name = INPUT_NAME
    for signature in model.signatureDefs or []:
        by_tensor = {t.tensorIndex: t for t in signature.outputs}
        signature.outputs = [by_tensor[i] for i in outputs if i in by_tensor]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def to_tflite(detector, postprocess: PostprocessConfig = PostprocessConfig(),
              calibration: np.ndarray | None = None) -> bytes:
    """A TFLite flatbuffer (no metadata) ending in ``TFLite_Detection_PostProcess`` configured by
    ``postprocess``.

    Input ``[1, R, R, 3]`` named ``image``: float32 normalized to [-1, 1]; with ``calibration``
    pixels ``[N, R, R, 3]`` the model is full-integer int8 and takes uint8 pixels (scale 1/127.5,
    zero point 127.5, i.e. raw 0..255), and the post-processing op, which has no integer kernel,
    runs in float behind a DEQUANTIZE; the four outputs stay float32."""
    r = detector.resolution
    module = _serving_module(detector, postprocess)
    signature = module.serve.get_concrete_function(tf.TensorSpec([1, r, r, 3], tf.float32, name=INPUT_NAME))
    # Through a SavedModel: the converter legalizes the experimental_implements stub only there.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([signature], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = True  # harmless; older converters insist
    if calibration is not None:
        from edgetailor.converters.base import Normalization
        from edgetailor.converters.tflite import full_integer

        full_integer(converter, calibration, Normalization(ssdlite.NORM_MEAN, ssdlite.NORM_STD),
                     "uint8", "float32", custom_ops=True)
    return _task_library_io(converter.convert())


def with_metadata(tflite_model: bytes, labels: list[str] | tuple[str, ...]) -> bytes:
    """Add ObjectDetector metadata (normalization 127.5/127.5, labels) to a detection model."""
    from tensorflow_lite_support.metadata.python.metadata_writers import object_detector

    from edgetailor.converters.metadata import add_inference_metadata

    if not labels:
        raise ConversionError("a detector needs at least one label")
    return add_inference_metadata(tflite_model, object_detector, ssdlite.NORM_MEAN, ssdlite.NORM_STD, labels)


def export_tflite(detector, path: str | Path, postprocess: PostprocessConfig = PostprocessConfig(),
                  calibration: np.ndarray | None = None) -> Path:
    """Write a Task-Library-ready detector ``.tflite`` (post-processing op + metadata + labels);
    int8 when ``calibration`` pixels are given (``to_tflite``)."""
    labels = list(detector.classes)
    if len(labels) != detector.config.num_classes:
        raise ConversionError(f"{len(labels)} labels for a {detector.config.num_classes}-class detector")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, with_metadata(to_tflite(detector, postprocess, calibration), labels))
    return Path(path)


def run_tflite(model: bytes | str | Path, images: np.ndarray):
    """Run a detection .tflite on uint8 images; per image (boxes, classes, scores) trimmed to
    num_detections. Normalization as in the metadata: (x - 127.5) / 127.5 (an int8 model's uint8
    input takes that through its own scale and zero point)."""
    from edgetailor.converters.parity import quantize_input

    content = Path(model).read_bytes() if isinstance(model, (str, Path)) else model
    interpreter = tf.lite.Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    outs = interpreter.get_output_details()
    h, w = inp["shape"][1:3]
    results = []
    for image in images:
        x = tf.image.resize(image[None].astype(np.float32), (h, w)).numpy() if image.shape[:2] != (h, w) \
            else image[None].astype(np.float32)
        interpreter.set_tensor(inp["index"], quantize_input((x - ssdlite.NORM_MEAN) / ssdlite.NORM_STD, inp))
        interpreter.invoke()
        boxes, classes, scores, num = (interpreter.get_tensor(o["index"]) for o in outs)
        n = int(num[0])
        results.append((boxes[0, :n], classes[0, :n].astype(np.int64), scores[0, :n]))
    return results


def evaluate_tflite(model: bytes | str | Path, data) -> dict[str, float]:
    """COCO box metrics (``AP`` = mAP@[.5:.95]) of a detection .tflite on ``data``, run in the
    interpreter with the post-processing the model carries."""
    results = run_tflite(model, data.images)
    return coco_eval.evaluate(data.boxes, data.labels, [r[0] for r in results], [r[2] for r in results],
                              [r[1] for r in results], data.classes, [image.shape[:2] for image in data.images])


def postprocess_of_tflite(model: bytes) -> PostprocessConfig:
    """The settings a detection .tflite's ``TFLite_Detection_PostProcess`` op applies, read back
    from its custom options (thresholds are float32 there: 7 significant digits)."""
    from edgetailor.converters.tflite import custom_options

    options = custom_options(model).get(POSTPROCESS_OP)
    if options is None:
        raise ConversionError(f"the model has no {POSTPROCESS_OP} op")
    return PostprocessConfig(int(options["max_detections"]), float32(options["nms_score_threshold"]),
                             float32(options["nms_iou_threshold"]), bool(options["use_regular_nms"]))


postprocess_of_coreml = coreml_pipeline.postprocess_of


def to_coreml(detector, postprocess: PostprocessConfig = PostprocessConfig()):
    """The Core ML pipeline (``coreml_pipeline.build``) as an unloaded MLModel."""
    return coreml_pipeline.build(detector, postprocess)


def export_coreml(detector, path: str | Path, postprocess: PostprocessConfig = PostprocessConfig()) -> Path:
    """Write the Vision-ready ``.mlpackage`` pipeline (atomically: a temp dir, then rename)."""
    model = to_coreml(detector, postprocess)
    return atomic.write_atomically(path, lambda staged: model.save(str(staged)), replace=True)
