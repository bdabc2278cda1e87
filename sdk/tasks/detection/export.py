"""Export SSDLite detectors: TFLite for the Task Library / MediaPipe, Core ML for Vision.

TFLite (CONVENTIONS §2): the network (the Keras model and the sigmoid) is converted, then the
custom op is appended to the flatbuffer on (box encodings, class scores, anchors); its four
outputs (locations ``[1, N, 4]``, classes ``[1, N]``, scores ``[1, N]``, num_detections ``[1]``)
are the model's outputs in that order; the input tensor is ``image``, as in the
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
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from edgetailor import _io as atomic
from edgetailor.converters.coreml import save_package
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


def postprocess_options(num_classes: int, postprocess: PostprocessConfig) -> bytes:
    """The op's custom options (a flexbuffer map): the keys TF's kernel reads in ``Init``
    (tensorflow/lite/kernels/detection_postprocess.cc), valued as the converter's legalization of
    the TF Object Detection API's ``experimental_implements`` stub sets them."""
    sy, sx, sh, sw = box_coder.SCALES
    return bytes(flexbuffers.Dumps({
        "max_detections": postprocess.max_detections,
        "max_classes_per_detection": 1,
        # regular NMS: per class, at most max_detections each before the merge keeps the best
        "detections_per_class": postprocess.max_detections,
        "use_regular_nms": postprocess.class_aware,
        "nms_score_threshold": float(postprocess.score_threshold),
        "nms_iou_threshold": float(postprocess.iou_threshold),
        "y_scale": float(sy), "x_scale": float(sx), "h_scale": float(sh), "w_scale": float(sw),
        "num_classes": num_classes,
    }))


def best_class_only(scores: tf.Tensor) -> tf.Tensor:
    """Sigmoid scores ``[1, A, 1 + C]`` (background first) with every class but each anchor's
    argmax (the first, on a tie) set to -1, below any score threshold: the regular (per-class) NMS
    of the TFLite op then sees each box in one class only, as Core ML's per-class NMS does."""
    background, classes = scores[..., :1], scores[..., 1:]
    best = tf.one_hot(tf.argmax(classes, axis=-1), classes.shape[-1], on_value=True, off_value=False)
    return tf.concat([background, tf.where(best, classes, -tf.ones_like(classes))], axis=-1)


def _raw_outputs(detector, postprocess: PostprocessConfig):
    """The detector up to the post-processing op, for one ``[1, R, R, 3]`` image: box encodings
    ``[1, A, 4]`` and class scores ``[1, A, 1 + C]`` (the sigmoid; YOLOX: objectness x class)."""
    model, r = detector.model, detector.resolution

    @tf.function(input_signature=[tf.TensorSpec([1, r, r, 3], tf.float32, name=INPUT_NAME)])
    def serve(image):
        codes, logits = model(image, training=False)
        scores = heads.scores(detector.config, logits)
        if postprocess.class_aware:
            scores = best_class_only(scores)
        return codes, scores

    return serve.get_concrete_function()


def _append_postprocess(tflite_model: bytes, anchors: np.ndarray, num_classes: int,
                        postprocess: PostprocessConfig) -> bytes:
    """Append ``TFLite_Detection_PostProcess`` to a converted detector: it reads the box
    encodings, the class scores and the ``[A, 4]`` anchors (a constant); its four outputs become
    the model's outputs in the op's order (locations, classes, scores, num_detections: the order
    the Task Library and the metadata writer read), named ``OUTPUT_NAMES``; the input is named
    ``image``."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_model))
    graph = model.subgraphs[0]
    codes, scores = (int(i) for i in graph.outputs)  # the function's outputs, in order
    expected = {codes: [1, len(anchors), 4], scores: [1, len(anchors), num_classes + 1]}
    if any(list(graph.tensors[i].shape) != shape for i, shape in expected.items()):
        raise RuntimeError("the converted detector's outputs are not [1, A, 4] box encodings and "
                           "[1, A, 1 + C] class scores")
    inputs = [codes, scores, _add_tensor(model, [len(anchors), 4], anchors)]
    n = postprocess.max_detections
    outputs = [_add_tensor(model, shape, name=name) for shape, name in zip(([1, n, 4], [1, n], [1, n], [1]),
                                                                           OUTPUT_NAMES)]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = POSTPROCESS_OP
    code.version = 1
    model.operatorCodes.append(code)
    op = schema.OperatorT()
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.inputs, op.outputs = inputs, outputs
    op.customOptions = list(postprocess_options(num_classes, postprocess))
    op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    graph.operators.append(op)
    graph.outputs = outputs
    (image,) = graph.inputs
    graph.tensors[image].name = INPUT_NAME
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _add_tensor(model, shape: list[int], data: np.ndarray | None = None, name: str = "anchors") -> int:
    """A float32 tensor ``name`` in the model's first subgraph, constant when ``data`` is given;
    its index."""
    buffer = schema.BufferT()
    if data is not None:
        buffer.data = np.frombuffer(np.ascontiguousarray(data, np.float32).tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape = np.array(shape, np.int32)
    tensor.type = schema.TensorType.FLOAT32
    tensor.buffer = len(model.buffers) - 1
    tensor.name = name
    model.subgraphs[0].tensors.append(tensor)
    return len(model.subgraphs[0].tensors) - 1


def to_tflite(detector, postprocess: PostprocessConfig = PostprocessConfig(),
              calibration: np.ndarray | None = None) -> bytes:
    """A TFLite flatbuffer (no metadata) ending in ``TFLite_Detection_PostProcess`` configured by
    ``postprocess``.

    Input ``[1, R, R, 3]`` named ``image``: float32 normalized to [-1, 1]; with ``calibration``
    pixels ``[N, R, R, 3]`` the model is full-integer int8 and takes uint8 pixels (scale 1/127.5,
    zero point 127.5, i.e. raw 0..255), and the post-processing op, which has no integer kernel,
    runs in float behind a DEQUANTIZE; the four outputs stay float32.

    The network is converted as the classifiers are (its concrete function frozen directly), and
    the op is then appended to the flatbuffer. The converter's own route to the op (a
    ``tf.function`` stub with ``experimental_implements``, legalized only through a SavedModel)
    spent ~90 % of a detector's conversion saving and reloading that SavedModel through the
    pure-Python protobuf (a tiny EfficientDet-Lite: 340 of 375 s under load)."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([_raw_outputs(detector, postprocess)],
                                                                detector.model)
    converter.experimental_lower_to_saved_model = False
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if calibration is not None:
        from edgetailor.converters.base import Normalization
        from edgetailor.converters.tflite import full_integer

        full_integer(converter, calibration, Normalization(ssdlite.NORM_MEAN, ssdlite.NORM_STD),
                     "uint8", "float32")
    network = converter.convert()
    return _append_postprocess(network, detector.anchors, detector.config.num_classes, postprocess)


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


def coreml_spec(detector, postprocess: PostprocessConfig = PostprocessConfig()):
    """(spec, weights folder) of the Core ML pipeline (``coreml_pipeline.build``)."""
    return coreml_pipeline.build(detector, postprocess)


def export_coreml(detector, path: str | Path, postprocess: PostprocessConfig = PostprocessConfig()) -> Path:
    """Write the Vision-ready ``.mlpackage`` pipeline (atomically: a temp dir, then rename)."""
    spec, weights_dir = coreml_spec(detector, postprocess)
    return atomic.write_atomically(path, lambda staged: save_package(spec, weights_dir, staged), replace=True)
