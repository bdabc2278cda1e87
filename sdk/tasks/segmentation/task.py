"""Segmentation for the specializer: LR-ASPP on a picked backbone, trained on a masks folder."""
from __future__ import annotations

from edgetailor.tasks.dense import DenseTask
from edgetailor.tasks.segmentation import lraspp

VOC_CLASSES = 21  # background + 20


class Segmentation(DenseTask):
    name = "segmentation"
    head = lraspp
    default_resolution = 256
    placeholder_labels = ("background",) + tuple(f"class_{i:02d}" for i in range(1, VOC_CLASSES))
    metric = "mean IoU (%) on the dataset's held-out split"
    package, reader, score, result = "edgetailor.tasks.segmentation", "load_mask_folder", "miou", "Segmenter"
    qat_fine_tune = "fine_tune_segmenter"
    learning_rate = 0.02  # Adam, from scratch: the rate the segmentation tests and benchmark validate
    priced = "backbone + LR-ASPP head, including both bilinear resizes"

    def config(self, num_labels: int) -> lraspp.LRASPPConfig:
        return lraspp.LRASPPConfig(num_classes=num_labels)

    def dataset_labels(self, data) -> list[str]:
        return [data.background, *data.classes]
