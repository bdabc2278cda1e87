"""TFLite metadata (Task Library / MediaPipe / Android Studio ML binding) and reading it back.

Written with ``tensorflow_lite_support.metadata.python.metadata_writers``; ``import
tflite_support`` itself crashes next to TF >= 2.14 (see DESIGN.md), so only these submodules
are used. Classification writes its metadata field by field (``add_metadata``); detection
(``object_detector``, four post-processing outputs) and segmentation (``image_segmenter``) use
their writers' defaults with a labels file (``add_inference_metadata``).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable

from tensorflow_lite_support.metadata import metadata_schema_py_generated as metadata_fb
from tensorflow_lite_support.metadata.python import metadata as metadata_reader
from tensorflow_lite_support.metadata.python.metadata_writers import image_classifier
from tensorflow_lite_support.metadata.python.metadata_writers import metadata_info, writer_utils

from edgetailor.converters.base import ConversionError, ModelInfo, Normalization

LABEL_FILE = "labels.txt"


def _classifier(model: bytes, normalization: Normalization, labels: tuple[str, ...] | None,
                info: ModelInfo, folder: Path) -> bytes:
    buffer = bytearray(model)
    mean, std = normalization.compact()
    label_files = []
    if labels:
        path = folder / LABEL_FILE
        path.write_text("".join(f"{label}\n" for label in labels))
        label_files = [metadata_info.LabelFileMd(file_path=str(path))]
    writer = image_classifier.MetadataWriter.create_from_metadata_info(
        buffer,
        general_md=metadata_info.GeneralMd(name=info.name, version=info.version,
                                           description=info.description, author=info.author),
        input_md=metadata_info.InputImageTensorMd(
            name="image", description="RGB image, normalised as (pixel - mean) / std.",
            norm_mean=mean, norm_std=std, color_space_type=metadata_fb.ColorSpaceType.RGB,
            tensor_type=writer_utils.get_input_tensor_types(buffer)[0]),
        output_md=metadata_info.ClassificationTensorMd(
            name="probability", description="Score of each label.", label_files=label_files,
            tensor_type=writer_utils.get_output_tensor_types(buffer)[0]))
    return bytes(writer.populate())


Writer = Callable[[bytes, Normalization, "tuple[str, ...] | None", ModelInfo, Path], bytes]
WRITERS: dict[str, Writer] = {"classification": _classifier}


def add_metadata(model: bytes, task: str, normalization: Normalization,
                 labels: tuple[str, ...] | None, info: ModelInfo) -> bytes:
    """``model`` with task metadata (normalisation, labels as ``labels.txt``) packed in."""
    if task not in WRITERS:
        raise ConversionError(f"no TFLite metadata writer for task {task!r} yet")
    with tempfile.TemporaryDirectory(prefix="edgetailor-metadata-") as folder:
        return WRITERS[task](model, normalization, labels, info, Path(folder))


def add_inference_metadata(model: bytes, writer, mean: float, std: float, labels) -> bytes:
    """``model`` with the default metadata of a tflite-support task ``writer`` module
    (``object_detector``, ``image_segmenter``): normalisation (pixel - mean) / std and ``labels``
    packed in as ``labels.txt``."""
    with tempfile.TemporaryDirectory(prefix="edgetailor-metadata-") as folder:
        path = Path(folder) / LABEL_FILE
        path.write_text("".join(f"{label}\n" for label in labels))
        return bytes(writer.MetadataWriter.create_for_inference(
            bytearray(model), [mean], [std], [str(path)]).populate())


def read_metadata(model: bytes) -> dict | None:
    """The metadata JSON and packed files of a .tflite, or None when it has none.

    ``{"json": {...}, "files": [...], "labels": [...] | None}``, read with ``MetadataDisplayer``.
    """
    try:
        displayer = metadata_reader.MetadataDisplayer.with_model_buffer(bytearray(model))
    except ValueError:  # "The model does not have metadata."
        return None
    files = list(displayer.get_packed_associated_file_list())
    labels = None
    if LABEL_FILE in files:
        labels = displayer.get_associated_file_buffer(LABEL_FILE).decode().splitlines()
    return {"json": json.loads(displayer.get_metadata_json()), "files": files, "labels": labels}


def normalization_of(metadata: dict) -> dict | None:
    """The NormalizationOptions of the first input tensor, if any."""
    inputs = metadata["json"].get("subgraph_metadata", [{}])[0].get("input_tensor_metadata", [])
    for unit in (inputs[0].get("process_units", []) if inputs else []):
        if unit.get("options_type") == "NormalizationOptions":
            return unit["options"]
    return None
