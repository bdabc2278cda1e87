"""Run a bundle's model.tflite in the TFLite Task Library (tflite_support.task.vision):
ImageClassifier, ObjectDetector or ImageSegmenter. Speaks protocol.py.

Runs in .venv-clients/tflite-support (tools/client-venvs.sh), which holds no TensorFlow:
``import tflite_support`` fails next to TF >= 2.14 (DESIGN.md).
"""
from importlib import metadata

import numpy as np
from tflite_support.task import core, processor, vision

from protocol import detection, serve


def _base(request: dict) -> core.BaseOptions:
    return core.BaseOptions(file_name=request["model"], num_threads=1)


def _limits(request: dict) -> dict:
    """max_results / score_threshold as the options take them (unset: the task's defaults)."""
    return {key: request[key] for key in ("max_results", "score_threshold") if request.get(key) is not None}


def _image(pixels: np.ndarray) -> vision.TensorImage:
    return vision.TensorImage.create_from_array(np.ascontiguousarray(pixels))


def classify(request: dict, images: np.ndarray) -> dict:
    options = vision.ImageClassifierOptions(
        base_options=_base(request), classification_options=processor.ClassificationOptions(**_limits(request)))
    classifier = vision.ImageClassifier.create_from_options(options)
    results = []
    for pixels in images:
        head = classifier.classify(_image(pixels)).classifications[0]
        results.append({"categories": [{"index": c.index, "score": c.score, "label": c.category_name}
                                       for c in head.categories]})
    return {"results": results}


def detect(request: dict, images: np.ndarray) -> dict:
    options = vision.ObjectDetectorOptions(
        base_options=_base(request), detection_options=processor.DetectionOptions(**_limits(request)))
    detector = vision.ObjectDetector.create_from_options(options)
    results = []
    for pixels in images:
        results.append({"detections": [detection(d) for d in detector.detect(_image(pixels)).detections]})
    return {"results": results}


def segment(request: dict, images: np.ndarray) -> dict:
    options = vision.ImageSegmenterOptions(
        base_options=_base(request),
        segmentation_options=processor.SegmentationOptions(output_type=processor.OutputType.CATEGORY_MASK))
    segmenter = vision.ImageSegmenter.create_from_options(options)
    results, labels = [], []
    for pixels in images:
        segmentation = segmenter.segment(_image(pixels)).segmentations[0]
        results.append({"mask": np.squeeze(segmentation.category_mask).tolist()})
        labels = [label.category_name for label in segmentation.colored_labels]
    return {"results": results, "labels": labels}


if __name__ == "__main__":
    tasks = {"classification": classify, "detection": detect, "segmentation": segment}
    serve("TFLite Task Library", metadata.version("tflite-support"),
          lambda request, images: tasks[request["task"]](request, images))
