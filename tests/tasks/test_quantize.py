"""specialize --quantize int8: figures measured in the TFLite interpreter on the held-out split,
quantization-aware training only past the threshold, and one-line errors for bad requests."""
import json

import pytest

from edgetailor.converters.base import MOBILENET  # the builder models' input normalisation
from edgetailor.data import shapes
from edgetailor.errors import SpecError
from edgetailor.latency import profiles
from edgetailor.specialize import QuantizeRequest, Request

from cli_checks import assert_one_line_error, invoke

# hard-swish, a squeeze-excite gate (Multiply, HardSigmoid) and an Identity: the layers tfmot's
# registry does not know, in a model that converts in seconds
TINY = "res32 | conv_k3_s2_c8_hs | ir_k3_s2_e3_c16_se0.25_hs | head:pool"


def test_quantize_without_a_dataset_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "bundle"
    result = invoke("specialize", "--device", "pixel1", "--budget-ms", "4", "--quantize", "int8", "--out", out)
    assert_one_line_error(result, "--quantize int8 needs --dataset")
    assert "package --quantize int8 --calibration" in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("threshold", ["150", "-100.5", "nan"])
def test_qat_threshold_out_of_range_is_one_line(tmp_path, threshold):
    out = tmp_path / "bundle"
    result = invoke("specialize", "--device", "pixel1", "--budget-ms", "4", "--dataset", tmp_path,
                  "--quantize", "int8", "--qat-threshold", threshold, "--out", out)
    assert_one_line_error(result, "--qat-threshold must be percentage points from -100 to 100")
    assert not out.exists()


def test_qat_options_need_quantize(tmp_path):
    result = invoke("specialize", "--device", "pixel1", "--budget-ms", "4", "--dataset", tmp_path,
                  "--qat-epochs", "3", "--out", tmp_path / "bundle")
    assert_one_line_error(result, "--qat-threshold and --qat-epochs apply to --quantize int8")


def test_quantize_requests_are_checked(tmp_path):
    with pytest.raises(SpecError, match="--qat-epochs must be a whole number"):
        QuantizeRequest(qat_epochs=0)
    with pytest.raises(SpecError, match="int8 only"):
        QuantizeRequest(mode="fp16")
    with pytest.raises(SpecError, match="supernet bundle ships float"):
        Request(profiles.load("pixel1"), 4.0, tmp_path / "b", dataset=tmp_path, supernet=tmp_path,
                quantize=QuantizeRequest())


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A TINY classifier briefly trained on 2-class shapes (24 images at 32 px), and its folder."""
    import tensorflow as tf

    from edgetailor import builder
    from edgetailor.arch import zoo

    folder = shapes.write_folder(tmp_path_factory.mktemp("q") / "data", 24, size=32, classes=("circle", "square"))
    tf.keras.utils.set_random_seed(0)
    model = builder.build(zoo.resolve(TINY).spec, num_classes=2, name="tiny")
    data = shapes.classification(24, 32, 0, classes=("circle", "square"))
    model.compile(tf.keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", run_eagerly=True)
    model.fit(data.images / 127.5 - 1, data.labels, epochs=2, verbose=0)
    return model, folder


@pytest.mark.slow
@pytest.mark.parametrize("threshold, qat", [(100.0, False), (-100.0, True)])
def test_qat_runs_only_past_the_threshold_and_the_bundle_ships_what_was_measured(tiny_classifier, tmp_path,
                                                                                  threshold, qat):
    from edgetailor.converters.parity import run_tflite
    from edgetailor.tasks import quantize
    from edgetailor.tasks.classification.train import Recipe, load_dataset

    model, folder = tiny_classifier
    split = load_dataset(Recipe(dataset=str(folder), resolution=32, train_images=10**9, val_images=10**9))
    subject = quantize.classifier(model, folder, 0.002)
    result = quantize.quantize(subject, QuantizeRequest(qat_threshold_pp=threshold, qat_epochs=1), lambda m: None)
    report = result.report.to_dict()
    assert report["qat_ran"] is qat and ("qat" in result.flatbuffers) is qat
    assert report["threshold_pp"] == threshold and report["ptq"]["calibration_images"] == len(split.x_train)
    if qat:  # the better int8 model ships, and it is the one the bundle converts
        assert report["qat"]["epochs"] == 1
        better = "qat" if report["qat"]["value"] >= report["ptq"]["value"] else "ptq"
        assert report["int8"]["method"] == better and (result.model is not model) == (better == "qat")
    else:
        assert report["int8"] == {"value": report["ptq"]["value"], "method": "ptq"} and result.model is model
    # every figure is the interpreter's top-1 on the held-out images of the folder's split
    for kind, flatbuffer in result.flatbuffers.items():
        top1 = 100 * float((run_tflite(flatbuffer, MOBILENET.apply(split.x_val)).argmax(-1) == split.y_val).mean())
        assert report[kind]["value"] == round(top1, 2), kind
    assert report["drop_pp"] == round(report["float"]["value"] - report["int8"]["value"], 2)
    if qat:
        return  # the QAT model converted above, with the same converter the bundle uses; a bundle costs ~30 s
    # the bundle (what Classification.bundle writes): its model.tflite, run in the interpreter on the
    # held-out split, gives the manifest's int8 figure; Core ML still converts the float model
    from edgetailor.bundle.writer import package

    manifest = package(model, tmp_path / "bundle", labels=["circle", "square"], profile=profiles.load("pixel1"),
                       quantize="int8", calibration=result.calibration, tflite_model=result.model,
                       quantization=result.report, weights="trained on shapes", quiet=True)
    assert manifest["quantization"] == report == json.loads((tmp_path / "bundle/manifest.json").read_text())["quantization"]
    assert manifest["tflite"]["quantize"] == "int8" and manifest["input"]["tflite"]["dtype"] == "uint8"
    shipped = (tmp_path / "bundle/model.tflite").read_bytes()
    top1 = 100 * float((run_tflite(shipped, MOBILENET.apply(split.x_val)).argmax(-1) == split.y_val).mean())
    assert report["int8"]["value"] == round(top1, 2)
