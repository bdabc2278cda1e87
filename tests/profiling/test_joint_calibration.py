"""The joint calibration: recovers known factors, and labels the published rows as it says."""
import numpy as np

from edgetailor.arch import zoo
from edgetailor.arch.layers import walk
from edgetailor.profiling import calibration_data as data, joint
from edgetailor.profiling.joint_data import Labelled, arch_of, setting_of, skip_reason


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
