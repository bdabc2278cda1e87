"""Detection and segmentation with --pretrained: only published points are picked, and the head is
new while the backbone carries the pretrained weights (a weights file made here)."""
import numpy as np
import pytest
import tensorflow as tf

from edgetailor import tasks
from edgetailor.arch import pretrained as published
from edgetailor.builder.pretrained import build_pretrained
from edgetailor.latency import profiles
from edgetailor.tasks.base import Request
from edgetailor.tasks.detection import ssdlite
from edgetailor.tasks.segmentation import lraspp


@pytest.mark.parametrize("task_name", ["detection", "segmentation"])
def test_a_pretrained_pick_only_chooses_points_with_published_weights(task_name, tmp_path):
    request = Request(profile=profiles.load("pixel1"), budget_ms=80, out_dir=tmp_path / "out", task=task_name,
                      dataset=tmp_path, pretrained="imagenet")
    choice = tasks.get(task_name).choose(request, 3, lambda message: None)
    for candidate in (choice.best, *choice.runners_up):
        assert published.has_start(candidate.family, candidate.width), candidate.label


@pytest.mark.slow
def test_both_heads_sit_on_the_pretrained_backbone(tmp_path):
    keras_model = tf.keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=0.35, weights=None)
    keras_model.save_weights(tmp_path / "v2.h5")
    for task_name, head in (("detection", ssdlite.build), ("segmentation", lraspp.build)):
        task = tasks.get(task_name)
        spec = task.backbone("mobilenet_v2", 0.35, 96)
        backbone, start = build_pretrained(spec, "mobilenet_v2", str(tmp_path / "v2.h5"), include_top=False)
        model = head(spec, task.config(3), backbone=backbone)
        used = {layer.name for layer in model.layers}  # LR-ASPP leaves the last stage out
        for layer in backbone.layers:
            if layer.weights and layer.name in used:
                mine = model.get_layer(layer.name).get_weights()
                assert all(np.array_equal(a, b) for a, b in zip(mine, layer.get_weights())), layer.name
        assert start.kept_fraction > 0.5
