"""Run a bundle's model.tflite in MediaPipe Tasks (mediapipe.tasks.python.vision): ImageClassifier,
ObjectDetector or ImageSegmenter, as an Android app's MediaPipe Tasks would. Speaks protocol.py.

Runs in .venv-clients/mediapipe (tools/client-venvs.sh), never inside edgetailor's process.
"""
import mediapipe as mp
import numpy as np
from mediapipe.tasks.python import BaseOptions, vision

from protocol import detection, serve


def _image(pixels: np.ndarray) -> mp.Image:
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(pixels))


def _limits(request: dict) -> dict:
    """max_results / score_threshold as the options take them (unset: the task's defaults)."""
    return {key: request[key] for key in ("max_results", "score_threshold") if request.get(key) is not None}


def classify(request: dict, images: np.ndarray) -> dict:
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=request["model"]),
                                            **_limits(request))
    with vision.ImageClassifier.create_from_options(options) as classifier:
        results = []
        for pixels in images:
            head = classifier.classify(_image(pixels)).classifications[0]
            results.append({"categories": [{"index": c.index, "score": c.score, "label": c.category_name or ""}
                                           for c in head.categories]})
    return {"results": results}


def detect(request: dict, images: np.ndarray) -> dict:
    options = vision.ObjectDetectorOptions(base_options=BaseOptions(model_asset_path=request["model"]),
                                           **_limits(request))
    with vision.ObjectDetector.create_from_options(options) as detector:
        results = []
        for pixels in images:
            results.append({"detections": [detection(d) for d in detector.detect(_image(pixels)).detections]})
    return {"results": results}


def segment(request: dict, images: np.ndarray) -> dict:
    options = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=request["model"]),
                                           output_category_mask=True, output_confidence_masks=False)
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        results = [{"mask": np.squeeze(segmenter.segment(_image(pixels)).category_mask.numpy_view()).tolist()}
                   for pixels in images]
        return {"results": results, "labels": list(segmenter.labels)}


if __name__ == "__main__":
    tasks = {"classification": classify, "detection": detect, "segmentation": segment}
    serve("MediaPipe Tasks", mp.__version__, lambda request, images: tasks[request["task"]](request, images))
