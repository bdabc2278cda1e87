"""The detector's Core ML pipeline for Vision: decoder ML Program -> trim -> NonMaximumSuppression.

1. ``decoder`` (ML Program, RGB ``image`` input, normalisation in the program): the network, with
   the anchors decoded in-graph to ``decoded_coordinates`` ``[A, 4]`` (x_center, y_center, width,
   height, normalized) and per-class sigmoid ``decoded_confidence`` ``[A, P]`` without the
   background column, zero-padded to P, a multiple of 80 columns;
2. ``trim`` (NeuralNetwork): ``raw_confidence`` ``[A, C]``, the C real classes, and
   ``raw_coordinates``, a copy;
3. NonMaximumSuppression with the C real labels and the ``PostprocessConfig`` (thresholds,
   per-class flag, at most ``max_detections`` rows out).

Why pad, and why trim: an ML Program feeding the NMS model returns wrong or no boxes on device
unless the class dimension is a multiple of 80 (apple/coremltools#2445: a pipeline disagrees
with its own models run one after the other; ultralytics/ultralytics#22309, worked around in
8.3.207 by zero-padding the classes to 80k, with numbered labels for the pad). The NMS model's
labels must match its confidence width (Core ML's NonMaximumSuppressionValidator), so padding at
the NMS input means pad labels, and Vision lists every label of a box. Here the padded ML Program
output goes to a NeuralNetwork model and the NMS model reads the real-width array that one
writes: a NeuralNetwork -> NMS pipeline is what Turi Create's object detectors ship, with any
class count. Core ML does not run on Linux; the on-device check is the iOS harness's.

``iouThreshold`` and ``confidenceThreshold`` are optional pipeline inputs, as Turi Create marks
them: when an app leaves them out, the NMS model applies its own thresholds, the bundle's.
"""
from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

from edgetailor.converters.coreml import image_program, nms_settings
from edgetailor.tasks.detection import box_coder, heads, ssdlite
from edgetailor.tasks.detection.postprocess import PostprocessConfig

CLASS_PAD = 80
OUTPUTS = {
    "confidence": "per-class confidence (0-1) of each kept box, one column per label, best box first",
    "coordinates": "kept boxes (x_center, y_center, width, height) normalized to 0-1",
}
THRESHOLD_INPUTS = ("iouThreshold", "confidenceThreshold")


def padded_width(classes: int) -> int:
    """The decoder's confidence columns: ``classes`` rounded up to a multiple of ``CLASS_PAD``."""
    return -(-classes // CLASS_PAD) * CLASS_PAD


def decode(codes, logits, anchors: np.ndarray, width: int, config=None):
    """Box codes + logits -> (confidence ``[A, width]``: per-class sigmoid without the background,
    zero-padded; coordinates ``[A, 4]``: normalized x_center, y_center, width, height).
    ``config``: the head's, for heads that score otherwise (``heads.scores``; YOLOX)."""
    a = tf.constant(np.asarray(anchors, np.float32))
    sy, sx, sh, sw = box_coder.SCALES
    codes = codes[0]
    yc = codes[:, 0:1] / sy * a[:, 2:3] + a[:, 0:1]
    xc = codes[:, 1:2] / sx * a[:, 3:4] + a[:, 1:2]
    h = tf.exp(codes[:, 2:3] / sh) * a[:, 2:3]
    w = tf.exp(codes[:, 3:4] / sw) * a[:, 3:4]
    confidence = (tf.sigmoid(logits) if config is None else heads.scores(config, logits))[0, :, 1:]
    confidence = tf.pad(confidence, [[0, 0], [0, width - confidence.shape[-1]]])
    return confidence, tf.concat([xc, yc, w, h], axis=1)


def _decoder(detector, width: int):
    """(spec, weights folder) of the ML Program with outputs decoded_confidence, decoded_coordinates."""
    import coremltools as ct

    r = detector.resolution
    model, anchors = detector.model, detector.anchors

    @tf.function(input_signature=[tf.TensorSpec([1, r, r, 3], tf.float32, name="image")])
    def serve(image):
        codes, logits = model(image, training=False)
        return decode(codes, logits, anchors, width, detector.config)

    spec, weights_dir = image_program(serve.get_concrete_function(), r, ssdlite.NORM_MEAN, ssdlite.NORM_STD)
    for out, name, columns in zip(list(spec.description.output), ("decoded_confidence", "decoded_coordinates"),
                                  (width, 4)):
        shape = list(out.type.multiArrayType.shape)
        if shape != [len(anchors), columns]:  # the trim stage reads these as A x P and A x 4
            raise RuntimeError(f"decoder output {out.name} has shape {shape}, expected {[len(anchors), columns]}")
        ct.utils.rename_feature(spec, out.name, name)
    return spec, weights_dir


def _trim(num_anchors: int, width: int, classes: int, version: int):
    """The NeuralNetwork between the decoder and NMS: drop the pad columns, copy the boxes."""
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    builder = NeuralNetworkBuilder(
        [("decoded_confidence", datatypes.Array(num_anchors, width)),
         ("decoded_coordinates", datatypes.Array(num_anchors, 4))],
        [("raw_confidence", datatypes.Array(num_anchors, classes)),
         ("raw_coordinates", datatypes.Array(num_anchors, 4))],
        disable_rank5_shape_mapping=True, use_float_arraytype=True)
    builder.add_slice_static("drop_class_padding", "decoded_confidence", "raw_confidence",
                             begin_ids=[0, 0], end_ids=[num_anchors, classes], strides=[1, 1],
                             begin_masks=[True, True], end_masks=[True, False])
    builder.add_copy("copy_coordinates", "decoded_coordinates", "raw_coordinates")
    builder.spec.specificationVersion = version
    return builder.spec


def _nms(trim_spec, labels: list[str], postprocess: PostprocessConfig):
    """The NonMaximumSuppression model on the trim stage's outputs."""
    import coremltools as ct

    spec = ct.proto.Model_pb2.Model()
    spec.specificationVersion = trim_spec.specificationVersion
    for raw, name, columns in zip(trim_spec.description.output, OUTPUTS, (len(labels), 4)):
        spec.description.input.add().CopyFrom(raw)
        out = spec.description.output.add()
        out.CopyFrom(raw)
        out.name = name
        array = out.type.multiArrayType
        del array.shape[:]
        array.shapeRange.sizeRanges.add(lowerBound=0, upperBound=postprocess.max_detections)
        array.shapeRange.sizeRanges.add(lowerBound=columns, upperBound=columns)
    for name in THRESHOLD_INPUTS:
        feature = spec.description.input.add()
        feature.name = name
        feature.type.doubleType.SetInParent()
    nms = spec.nonMaximumSuppression
    nms.confidenceInputFeatureName, nms.coordinatesInputFeatureName = "raw_confidence", "raw_coordinates"
    nms.confidenceOutputFeatureName, nms.coordinatesOutputFeatureName = tuple(OUTPUTS)
    nms.iouThresholdInputFeatureName, nms.confidenceThresholdInputFeatureName = THRESHOLD_INPUTS
    nms.iouThreshold = postprocess.iou_threshold
    nms.confidenceThreshold = postprocess.score_threshold
    nms.pickTop.perClass = postprocess.class_aware
    nms.stringClassLabels.vector.extend(labels)
    return spec


def _pipeline(decoder, trim, nms, postprocess: PostprocessConfig):
    """The three models as one pipeline spec: image in, optional thresholds, NMS outputs out."""
    import coremltools as ct

    size = decoder.description.input[0].type.imageType.width
    pipeline = ct.models.pipeline.Pipeline(
        input_features=[("image", ct.models.datatypes.Array(3, size, size)),
                        *((name, ct.models.datatypes.Double()) for name in THRESHOLD_INPUTS)],
        output_features=list(OUTPUTS))
    for model in (decoder, trim, nms):
        pipeline.add_model(model)  # specs: no extra MLModel (each one rewrites the package)
    spec = pipeline.spec
    spec.specificationVersion = decoder.specificationVersion
    description = spec.description
    description.input[0].CopyFrom(decoder.description.input[0])
    description.input[0].shortDescription = f"RGB image, {size}x{size} (Vision scales to it); normalised in the model"
    defaults = (postprocess.iou_threshold, postprocess.score_threshold)
    for feature, default in zip(description.input[1:], defaults):
        feature.type.isOptional = True
        feature.shortDescription = f"optional; default {default:g}, the bundle's (TFLite applies the same)"
    for out, nms_out in zip(description.output, nms.description.output):
        out.CopyFrom(nms_out)
        out.shortDescription = OUTPUTS[out.name]
    return spec


def build(detector, postprocess: PostprocessConfig):
    """(spec, weights folder) of the pipeline: ``converters.coreml.save_package`` writes them as an
    .mlpackage (Core ML cannot load models on Linux; no MLModel is made of them here)."""
    labels = list(detector.classes)
    width = padded_width(len(labels))
    decoder, weights_dir = _decoder(detector, width)
    trim = _trim(len(detector.anchors), width, len(labels), decoder.specificationVersion)
    nms = _nms(trim, labels, postprocess)
    spec = _pipeline(decoder, trim, nms, postprocess)
    spec.description.metadata.userDefined.update({
        "labels": json.dumps(labels), "max_detections": str(postprocess.max_detections),
        "confidence_threshold": repr(postprocess.score_threshold),
        "iou_threshold": repr(postprocess.iou_threshold), "class_aware": json.dumps(postprocess.class_aware),
        "architecture": heads.name_of(detector.config), "backbone": detector.spec.encode()})
    return spec, weights_dir


def postprocess_of(spec) -> PostprocessConfig:
    """The settings a detector pipeline's NMS model applies, read back from its spec."""
    return postprocess_of_settings(nms_settings(spec))


def postprocess_of_settings(settings: dict | None) -> PostprocessConfig:
    """``nms_settings``' dict (``describe_package``'s "nms") as the PostprocessConfig it applies."""
    if settings is None:
        raise RuntimeError("the Core ML detector has no NonMaximumSuppression model")
    return PostprocessConfig(settings["max_boxes"], settings["confidence_threshold"],
                             settings["iou_threshold"], settings["per_class"])
