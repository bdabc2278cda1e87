"""Export SSDLite detectors: TFLite for the Task Library / MediaPipe, Core ML for Vision.

TFLite (CONVENTIONS §2): the serving function runs the Keras model, applies the sigmoid, and
calls a ``tf.function(experimental_implements='name: "TFLite_Detection_PostProcess" ...')`` stub
on (box encodings, class scores, anchors); the converter legalizes it into the custom op, whose
four outputs (locations ``[1, N, 4]``, classes ``[1, N]``, scores ``[1, N]``, num_detections
``[1]``) are the model's outputs in that order. ObjectDetector metadata (input normalization
127.5/127.5, labels on the classes tensor) comes from tflite-support's metadata writer.

Core ML (CONVENTIONS §3): a pipeline of a decoder ML Program (anchors decoded in-graph to
normalized centre-xywh ``coordinates``, per-class sigmoid ``confidence`` without the background
column) and a NonMaximumSuppression model with ``iouThreshold``/``confidenceThreshold`` inputs
and class labels, so Vision returns ``VNRecognizedObjectObservation``s. The ML Program's NMS
bug is worked around as Ultralytics does: the class dimension is zero-padded to a multiple of 80
(padded labels are named ``_pad<i>`` and never score above 0).

Every file is written to a temporary name and renamed: nothing is left half written.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from edgetailor import _io as atomic
from edgetailor.tasks.detection import box_coder, ssdlite
from edgetailor.converters.coreml import image_program
from edgetailor.errors import ConversionError

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
OUTPUT_NAMES = ("location", "category", "score", "number of detections")
COREML_CLASS_PAD = 80


def _postprocess_stub(num_classes: int, max_detections: int, score_threshold: float,
                      iou_threshold: float, use_regular_nms: bool, detections_per_class: int):
    sy, sx, sh, sw = box_coder.SCALES
    implements = " ".join([
        f'name: "{POSTPROCESS_OP}"',
        f'attr {{ key: "max_detections" value {{ i: {max_detections} }} }}',
        'attr { key: "max_classes_per_detection" value { i: 1 } }',
        f'attr {{ key: "detections_per_class" value {{ i: {detections_per_class} }} }}',
        f'attr {{ key: "use_regular_nms" value {{ b: {str(use_regular_nms).lower()} }} }}',
        f'attr {{ key: "nms_score_threshold" value {{ f: {score_threshold:f} }} }}',
        f'attr {{ key: "nms_iou_threshold" value {{ f: {iou_threshold:f} }} }}',
        f'attr {{ key: "y_scale" value {{ f: {sy:f} }} }}',
        f'attr {{ key: "x_scale" value {{ f: {sx:f} }} }}',
        f'attr {{ key: "h_scale" value {{ f: {sh:f} }} }}',
        f'attr {{ key: "w_scale" value {{ f: {sw:f} }} }}',
        f'attr {{ key: "num_classes" value {{ i: {num_classes} }} }}',
    ])

    @tf.function(experimental_implements=implements)
    def postprocess(box_encodings, class_scores, anchors):
        # A stub: the converter replaces the whole function by the custom op.
        boxes = tf.constant(0.0, tf.float32, name="boxes")
        scores = tf.constant(0.0, tf.float32, name="scores")
        classes = tf.constant(0.0, tf.float32, name="classes")
        num = tf.constant(0.0, tf.float32, name="num_detections")
        return boxes, classes, scores, num

    return postprocess


def _serving_module(detector, postprocess) -> tf.Module:
    """A module whose only trackables are the model's variables and the serving function.

    Saving the Keras model itself would make the SavedModel writer trace every layer for Keras
    metadata, which with the pure-Python protobuf that tflite-support pins takes minutes; the
    variables alone save in seconds.
    """
    model = detector.model
    anchors = tf.constant(detector.anchors, tf.float32)
    module = tf.Module()
    module.weights = list(model.variables)

    @tf.function
    def serve(image):
        codes, logits = model(image, training=False)
        # TF OD API: "tf.function seems to reverse order" of the stub's outputs.
        return postprocess(codes, tf.sigmoid(logits), anchors)[::-1]

    module.serve = serve
    return module


def _outputs_in_op_order(tflite_model: bytes) -> bytes:
    """Make the model's outputs the post-processing op's outputs, in the op's order (locations,
    classes, scores, num_detections): the order the Task Library and the metadata writer read."""
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
    for signature in model.signatureDefs or []:
        by_tensor = {t.tensorIndex: t for t in signature.outputs}
        signature.outputs = [by_tensor[i] for i in outputs if i in by_tensor]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def to_tflite(detector, max_detections: int = 10, score_threshold: float = 1e-8,
              iou_threshold: float = 0.6, use_regular_nms: bool = False,
              detections_per_class: int = 100) -> bytes:
    """A float32 TFLite flatbuffer (no metadata) ending in ``TFLite_Detection_PostProcess``.

    Input: float32 ``[1, R, R, 3]`` normalized to [-1, 1]."""
    r = detector.resolution
    postprocess = _postprocess_stub(detector.config.num_classes, max_detections, score_threshold,
                                    iou_threshold, use_regular_nms, detections_per_class)
    module = _serving_module(detector, postprocess)
    signature = module.serve.get_concrete_function(tf.TensorSpec([1, r, r, 3], tf.float32, name="image"))
    # Through a SavedModel: the converter legalizes the experimental_implements stub only there.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([signature], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = True  # harmless; older converters insist
    return _outputs_in_op_order(converter.convert())


def with_metadata(tflite_model: bytes, labels: list[str] | tuple[str, ...]) -> bytes:
    """Add ObjectDetector metadata (normalization 127.5/127.5, labels) to a detection model."""
    from tensorflow_lite_support.metadata.python.metadata_writers import object_detector

    from edgetailor.converters.metadata import add_inference_metadata

    if not labels:
        raise ConversionError("a detector needs at least one label")
    return add_inference_metadata(tflite_model, object_detector, ssdlite.NORM_MEAN, ssdlite.NORM_STD, labels)


def export_tflite(detector, path: str | Path, **options) -> Path:
    """Write a Task-Library-ready detector ``.tflite`` (post-processing op + metadata + labels).

    ``options`` go to ``to_tflite`` (max_detections, score_threshold, iou_threshold, ...)."""
    labels = list(detector.classes)
    if len(labels) != detector.config.num_classes:
        raise ConversionError(f"{len(labels)} labels for a {detector.config.num_classes}-class detector")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, with_metadata(to_tflite(detector, **options), labels))
    return Path(path)


def run_tflite(model: bytes | str | Path, images: np.ndarray):
    """Run a detection .tflite on uint8 images; per image (boxes, classes, scores) trimmed to
    num_detections. Normalization as in the metadata: (x - 127.5) / 127.5."""
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
        interpreter.set_tensor(inp["index"], (x - ssdlite.NORM_MEAN) / ssdlite.NORM_STD)
        interpreter.invoke()
        boxes, classes, scores, num = (interpreter.get_tensor(o["index"]) for o in outs)
        n = int(num[0])
        results.append((boxes[0, :n], classes[0, :n].astype(np.int64), scores[0, :n]))
    return results


def _decode(codes, logits, anchors: np.ndarray, pad_to: int):
    """Box codes + logits -> (confidence [A, C'] per-class sigmoid without the background,
    zero-padded to a multiple of ``pad_to``; coordinates [A, 4] normalized cx, cy, w, h)."""
    a = tf.constant(np.asarray(anchors, np.float32))
    sy, sx, sh, sw = box_coder.SCALES
    codes = codes[0]
    yc = codes[:, 0:1] / sy * a[:, 2:3] + a[:, 0:1]
    xc = codes[:, 1:2] / sx * a[:, 3:4] + a[:, 1:2]
    h = tf.exp(codes[:, 2:3] / sh) * a[:, 2:3]
    w = tf.exp(codes[:, 3:4] / sw) * a[:, 3:4]
    confidence = tf.sigmoid(logits[0, :, 1:])
    classes = confidence.shape[-1]
    if pad_to and classes % pad_to:
        confidence = tf.pad(confidence, [[0, 0], [0, pad_to - classes % pad_to]])
    return confidence, tf.concat([xc, yc, w, h], axis=1)


def coreml_labels(labels, pad: bool = True) -> list[str]:
    """Class labels as the NMS model lists them (padded to a multiple of 80 for ML Programs)."""
    labels = list(labels)
    if pad and len(labels) % COREML_CLASS_PAD:
        labels += [f"_pad{i}" for i in range(COREML_CLASS_PAD - len(labels) % COREML_CLASS_PAD)]
    return labels


def to_coreml(detector, iou_threshold: float = 0.45, confidence_threshold: float = 0.25):
    """The Core ML pipeline (decoder ML Program -> NonMaximumSuppression) as an unloaded MLModel."""
    import coremltools as ct

    r = detector.resolution
    labels = coreml_labels(detector.classes)
    model, anchors = detector.model, detector.anchors

    @tf.function(input_signature=[tf.TensorSpec([1, r, r, 3], tf.float32, name="image")])
    def decode(image):
        codes, logits = model(image, training=False)
        return _decode(codes, logits, anchors, COREML_CLASS_PAD)

    decoder = image_program(decode.get_concrete_function(), r, ssdlite.NORM_MEAN, ssdlite.NORM_STD)
    spec = decoder.get_spec()
    for out, name in zip(list(spec.description.output), ("raw_confidence", "raw_coordinates")):
        ct.utils.rename_feature(spec, out.name, name)
    num_anchors = len(detector.anchors)
    for out, width in zip(spec.description.output, (len(labels), 4)):
        shape = list(out.type.multiArrayType.shape)
        if shape != [num_anchors, width]:  # the NMS stage reads these as N x C and N x 4
            raise RuntimeError(f"decoder output {out.name} has shape {shape}, "
                               f"expected {[num_anchors, width]}")
    weights_dir = decoder.weights_dir

    nms_spec = ct.proto.Model_pb2.Model()
    nms_spec.specificationVersion = spec.specificationVersion
    for i, name in enumerate(("confidence", "coordinates")):
        decoded = spec.description.output[i].SerializeToString()
        nms_spec.description.input.add().ParseFromString(decoded)
        out = nms_spec.description.output.add()
        out.ParseFromString(decoded)
        out.name = name
        array = out.type.multiArrayType
        del array.shape[:]
        array.shapeRange.sizeRanges.add(lowerBound=0, upperBound=-1)
        width = len(labels) if i == 0 else 4
        array.shapeRange.sizeRanges.add(lowerBound=width, upperBound=width)
    for name in ("iouThreshold", "confidenceThreshold"):
        feature = nms_spec.description.input.add()
        feature.name = name
        feature.type.doubleType.SetInParent()
    nms = nms_spec.nonMaximumSuppression
    nms.confidenceInputFeatureName = "raw_confidence"
    nms.coordinatesInputFeatureName = "raw_coordinates"
    nms.confidenceOutputFeatureName = "confidence"
    nms.coordinatesOutputFeatureName = "coordinates"
    nms.iouThresholdInputFeatureName = "iouThreshold"
    nms.confidenceThresholdInputFeatureName = "confidenceThreshold"
    nms.iouThreshold = iou_threshold
    nms.confidenceThreshold = confidence_threshold
    nms.pickTop.perClass = True
    nms.stringClassLabels.vector.extend(labels)

    pipeline = ct.models.pipeline.Pipeline(
        input_features=[("image", ct.models.datatypes.Array(3, r, r)),
                        ("iouThreshold", ct.models.datatypes.Double()),
                        ("confidenceThreshold", ct.models.datatypes.Double())],
        output_features=["confidence", "coordinates"])
    pipeline.add_model(spec)  # the edited spec: no extra MLModel (each one rewrites the package)
    pipeline.add_model(nms_spec)
    pipeline.spec.description.input[0].ParseFromString(spec.description.input[0].SerializeToString())
    pipeline.spec.description.output[0].ParseFromString(nms_spec.description.output[0].SerializeToString())
    pipeline.spec.description.output[1].ParseFromString(nms_spec.description.output[1].SerializeToString())
    pipeline.spec.specificationVersion = spec.specificationVersion
    description = pipeline.spec.description
    description.input[1].shortDescription = f"IoU threshold override (default {iou_threshold})"
    description.input[2].shortDescription = f"confidence threshold override (default {confidence_threshold})"
    description.output[0].shortDescription = "per-class confidence of each kept box (background dropped)"
    description.output[1].shortDescription = "boxes (x_center, y_center, width, height), normalized"
    description.metadata.userDefined.update({
        "classes": ",".join(detector.classes), "iou_threshold": str(iou_threshold),
        "confidence_threshold": str(confidence_threshold), "architecture": "ssdlite",
        "backbone": detector.spec.encode()})
    return ct.models.MLModel(pipeline.spec, weights_dir=weights_dir, skip_model_load=True)


def export_coreml(detector, path: str | Path, **options) -> Path:
    """Write the Vision-ready ``.mlpackage`` pipeline (atomically: a temp dir, then rename)."""
    model = to_coreml(detector, **options)
    return atomic.write_atomically(path, lambda staged: model.save(str(staged)), replace=True)
