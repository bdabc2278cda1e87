"""``specialize --dataset DIR --quantize int8``: an int8 TFLite model whose accuracy is measured, not hoped.

The flow, the same for every task:

1. the trained model is converted to float32 TFLite and to full-integer int8 TFLite, calibrated on
   up to ``CALIBRATION_IMAGES`` of the user's own training images (a seeded sample);
2. both run in the TFLite interpreter on the held-out split the task already keeps, and are scored
   with the task's figure (top-1, COCO mAP with the bundle's own post-processing, mIoU; %);
3. when post-training int8 loses more than ``--qat-threshold`` percentage points, a
   quantization-aware copy (``tasks.qat``) is fine-tuned for ``--qat-epochs`` on the training split
   at a tenth of the task's training rate and converted the same way;
4. the better int8 model ships as ``model.tflite`` (Core ML keeps converting the float model), and
   the manifest's ``quantization`` records every figure and why that model shipped.

The figures are the interpreter's outputs on the held-out images, so a test can re-run the
bundle's own ``model.tflite`` and get them again. TensorFlow is imported only inside functions.
"""
from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgetailor.bundle.manifest import QuantizationReport
from edgetailor.tasks.base import Progress, QuantizeRequest

# Representative images for the int8 calibration: the TFLite converter reads each once; ranges from
# a few hundred images are stable (Model Maker's QuantizationConfig.for_int8 takes 500 steps by
# default), and on a small training set all of them are used.
CALIBRATION_IMAGES = 200
QAT_RATE_FACTOR = 0.1  # QAT fine-tunes a trained model: a tenth of the task's from-scratch rate


@dataclass
class Subject:
    """A trained model as quantization sees it; ``model`` is whatever ``convert`` takes."""

    model: Any
    convert: Callable[[Any, np.ndarray | None], bytes]  # float32 TFLite (None) or int8 on these pixels
    score: Callable[[bytes], float]                     # held-out figure (%) of a TFLite model
    aware: Callable[[Any], Any]                         # a quantization-aware copy of ``model``
    fine_tune: Callable[[Any, int, float], Any]         # train that copy: (copy, epochs, learning rate)
    train_images: np.ndarray                            # uint8 pixels at the model's input size
    metric: str
    measured_on: str
    learning_rate: float                                # the task's training rate (Adam)


@dataclass
class Quantized:
    """What the bundle ships: the model its TFLite is converted from, the calibration pixels (the
    same the figures were measured with), and the manifest's report."""

    model: Any
    calibration: np.ndarray
    report: QuantizationReport
    flatbuffers: dict[str, bytes]  # "float", "ptq" and, when QAT ran, "qat": the models measured (no metadata)


def calibration_images(images: np.ndarray, limit: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """Up to ``limit`` of ``images`` (a seeded sample, in their order) as float32 pixels."""
    if len(images) > limit:
        images = images[np.sort(np.random.default_rng(seed).choice(len(images), limit, replace=False))]
    return np.asarray(images, np.float32)


def quantize(subject: Subject, request: QuantizeRequest, progress: Progress) -> Quantized:
    """Post-training int8, measured; quantization-aware training when it loses too much."""
    from edgetailor.converters.base import native_output_captured

    calibration = calibration_images(subject.train_images)
    flatbuffers = {}

    def measure(kind: str, model, pixels) -> float:
        with native_output_captured():  # the converter's MLIR summaries; progress says what happens
            flatbuffers[kind] = subject.convert(model, pixels)
        return round(subject.score(flatbuffers[kind]), 2)

    progress(f"measuring float32 and int8 TFLite on {subject.measured_on} (int8 calibrated on "
             f"{len(calibration)} training images)")
    float_value = measure("float", subject.model, None)
    ptq_value = measure("ptq", subject.model, calibration)
    drop = round(float_value - ptq_value, 2)
    threshold = float(request.qat_threshold_pp)
    progress(f"{subject.metric}: float32 {float_value:g}, post-training int8 {ptq_value:g} (a loss of {drop:g} pp)")
    report = dict(mode=request.mode, metric=subject.metric, measured_on=subject.measured_on,
                  float_value=float_value, ptq_value=ptq_value, threshold_pp=threshold,
                  calibration_images=len(calibration))
    if drop <= threshold:
        reason = f"post-training int8 loses {drop:g} pp, within the {threshold:g} pp threshold"
        return Quantized(subject.model, calibration, QuantizationReport(shipped="ptq", reason=reason, **report),
                         flatbuffers)
    rate = subject.learning_rate * QAT_RATE_FACTOR
    progress(f"post-training int8 loses {drop:g} pp (> {threshold:g}): quantization-aware training for "
             f"{request.qat_epochs} epoch(s) at learning rate {rate:g}")
    aware = subject.aware(subject.model)
    subject.fine_tune(aware, request.qat_epochs, rate)
    qat_value = measure("qat", aware, calibration)
    progress(f"{subject.metric}: quantization-aware int8 {qat_value:g} (a loss of {float_value - qat_value:.2f} pp)")
    report.update(qat_value=qat_value, qat_epochs=request.qat_epochs)
    if qat_value >= ptq_value:
        reason = (f"post-training int8 lost {drop:g} pp (> {threshold:g} pp threshold); quantization-aware "
                  f"training scores {qat_value:g} against post-training {ptq_value:g}")
        return Quantized(aware, calibration, QuantizationReport(shipped="qat", reason=reason, **report),
                         flatbuffers)
    reason = (f"post-training int8 lost {drop:g} pp (> {threshold:g} pp threshold), but quantization-aware "
              f"training scored lower ({qat_value:g} against {ptq_value:g}): the post-training model ships")
    return Quantized(subject.model, calibration, QuantizationReport(shipped="ptq", reason=reason, **report),
                     flatbuffers)


def classifier(model, dataset: Path, learning_rate: float, unseen_half: bool = False) -> Subject:
    """A trained Keras classifier (softmax output) with the classes folder it was trained on: the
    same seeded split ``train_classifier`` makes, at the model's input size; ``unseen_half``: a
    fine-tuned model is measured on the held-out half that did not choose its epoch
    (``finetune.split_held_out``), as its manifest accuracy is."""
    from edgetailor.converters.base import ConvertOptions
    from edgetailor.converters.inputs import normalization_of
    from edgetailor.converters.parity import run_tflite
    from edgetailor.converters.tflite import to_tflite
    from edgetailor.tasks import qat
    from edgetailor.tasks.classification.train import Recipe, load_dataset

    size = int(model.input_shape[1])
    data = load_dataset(Recipe(dataset=str(dataset), resolution=size, train_images=10**9, val_images=10**9))
    if unseen_half:
        from edgetailor.tasks.classification.finetune import split_held_out

        x_val, y_val = split_held_out(data)[1]
        data = dataclasses.replace(data, x_val=x_val, y_val=y_val)
    normalization = normalization_of(model)
    options = ConvertOptions(normalization=normalization)

    def score(flatbuffer: bytes) -> float:
        probabilities = run_tflite(flatbuffer, normalization.apply(data.x_val))
        return 100.0 * float((probabilities.argmax(-1) == data.y_val).mean())

    def fine_tune(aware, epochs: int, rate: float):
        return qat.fine_tune_classifier(aware, data.x_train, data.y_train, normalization.apply, epochs, rate)

    return Subject(model, lambda m, pixels: to_tflite(m, pixels, options), score, qat.quantize_aware,
                   fine_tune, data.x_train, "top-1 (%)",
                   f"the held-out split of {dataset} ({len(data.x_val)} images)", learning_rate)
