"""The joint calibration: recovers known factors, and labels the published rows as it says."""
import numpy as np

from edgetailor.arch import zoo
from edgetailor.arch.layers import walk
from edgetailor.profiling import calibration_data as data, joint, joint_select
from edgetailor.profiling.joint_data import Labelled, arch_of, publication, setting_of, skip_reason


def _sample(family, width, resolution, ms):
    layers = tuple(walk(zoo.resolve(family, width=width, resolution=resolution).spec))
    return data.Sample(f"{family}-{width}-{resolution}", "model", layers, ms, "test", family)


def test_fit_recovers_device_and_setting_factors():
    # Synthetic truth: shared coefficients, Pixel 2 is 1.3x Pixel 1, 4 threads are 0.3x.
    rng = np.random.default_rng(0)
    truth = np.abs(rng.normal(0.2, 0.1, 12))
    rows = []
    for family in ("mobilenet_v1", "mobilenet_v2", "mnasnet_a1"):
        for width in (0.5, 1.0):
            for resolution in (128, 224):
                base = _sample(family, width, resolution, 1.0)
                cost = joint.features(base) @ truth
                for device, setting, factor in (("pixel1", "tflite-fp32-1t", 1.0), ("pixel2", "tflite-fp32-1t", 1.3),
                                                ("pixel2", "tflite-fp32-4t", 0.39)):
                    sample = _sample(family, width, resolution, factor * cost)
                    rows.append(Labelled(sample, device, setting, f"src-{setting}", family))
    design = joint.Design.of(rows)
    fit = joint.fit(design)
    predicted = fit.predict(design, np.arange(len(rows)))
    np.testing.assert_allclose(predicted, design.y, rtol=0.02)
    assert abs(fit.factor("pixel2", "tflite-fp32-1t") - 1.3) < 0.05
    assert abs(fit.factor("pixel2", "tflite-fp32-4t") / fit.factor("pixel2", "tflite-fp32-1t") - 0.3) < 0.02


def test_rows_are_labelled_by_setting_and_architecture():
    assert setting_of("TFLite uint8 quant, CPU 4 threads") == "tflite-int8-4t"
    assert setting_of("TFLite float, single large core") == "tflite-fp32-1t"
    assert setting_of("TFLite float, GPU delegate") is None
    assert setting_of('Core ML via Vision (VNCoreMLRequest), "Inference Time" column (likely GPU)') == "coreml"
    row = {"model": "MobileNetV3", "variant": "Small minimalistic (float)", "width": "1.0", "resolution": "224",
           "device": "Pixel 3", "setting": "TFLite float, single large core"}
    assert arch_of(row) == ("mobilenet_v3_small_minimal", 1.0, 224) and skip_reason(row) is None
    assert skip_reason({**row, "model": "Inception_V3", "variant": "Inception_V3"}) == "arch"
    assert skip_reason({**row, "setting": "ncnn CPU 1 thread(s)"}) == "runtime"


def test_one_table_cited_with_two_macs_notes_is_one_source():
    note = "uve/tensorflow hosted_models.md @e0807946; MACs/params from tensorflow/models mobilenet_v1.md"
    assert publication(note) == publication(note.replace("mobilenet_v1.md", "mobilenet/README.md"))
    assert publication("tensorflow/tpu mnasnet/README.md @7dc921f8") == "tensorflow/tpu mnasnet/README.md @7dc921f8"


def test_nested_choice_never_sees_the_held_out_family(monkeypatch):
    rows = []
    for family in ("mobilenet_v1", "mobilenet_v2", "mnasnet_a1"):
        for resolution in (128, 224):
            sample = _sample(family, 0.5, resolution, 1.0)
            sample = data.Sample(sample.name, "model", sample.layers,
                                 float(joint.features(sample) @ np.full(12, 0.1)), "t", family)
            rows.append(Labelled(sample, "pixel1", "tflite-fp32-1t", f"src-{family}", family))
    design = joint.Design.of(rows)
    trained_on = []  # the families each fit saw (the real fit runs; this only records)
    real_fit = joint.fit

    def recording_fit(d, train=None, *args):
        trained_on.append(set(d.family[train]))
        return real_fit(d, train, *args)

    monkeypatch.setattr(joint, "fit", recording_fit)
    monkeypatch.setattr(joint_select, "GRID", {"source_ridge": (4.0,), "shrink": (3.0, 30.0)})
    predicted, chosen = joint_select.nested_held_out(design, np.arange(len(rows)))
    assert set(chosen) == {"mobilenet_v1", "mobilenet_v2", "mnasnet_a1"}
    # 3 outer folds x (2 grid points x 2 inner folds + 1 outer fit); none saw all three families
    assert len(trained_on) == 15 and all(len(families) <= 2 for families in trained_on)
    # Four rows of two families cannot pin twelve coefficients: each family is predicted within 20%.
    np.testing.assert_allclose(predicted, design.y, rtol=0.2)
