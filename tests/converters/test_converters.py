"""Converters: every TFLite quantization mode, metadata, parity, Core ML packages checked statically.

Conversions cost seconds, so each artifact is made once per module and shared. The random
model's BatchNorm statistics are set from data (``calibrate_batchnorm``) so its outputs vary
with the input and the parity numbers mean something.
"""
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_lite_support.metadata.python.metadata import MetadataDisplayer

from edgetailor.builder import network as builder
from edgetailor.arch import zoo
from edgetailor.converters import (RAW_PIXELS, ConversionError, ConvertOptions, ModelInfo,
                                   Normalization, ParityError, convert)
from edgetailor.converters.coreml import describe_package, expectations, verify_package
from edgetailor.converters.inputs import load_images, load_keras, normalization_of
from edgetailor.converters.metadata import normalization_of as metadata_normalization
from edgetailor.converters.metadata import read_metadata
from edgetailor.converters.parity import calibrate_batchnorm, check_parity, parity_pixels, run_tflite
from edgetailor.converters.tflite import op_counts, to_tflite

pytestmark = pytest.mark.slow  # trains or converts models

LABELS = ("cat", "dog", "bird", "fish")
# head conv 16 -> 256: one weight above coremltools' 2048-element compression threshold
TINY = "res32 | conv_k3_s2_c8_hs | ir_k3_e3_c8_hse0.25_hs,ir_k3_s2_e3_c16_re | head:conv_k1_c256_hs,pool"
MODES = ["none", "fp16", "dynamic", "int8", "int16x8"]


def _model(arch: str, resolution: int | None, classes: int) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    model = builder.build(zoo.resolve(arch, resolution=resolution).spec, num_classes=classes)
    size = model.input_shape[1]
    return calibrate_batchnorm(model, Normalization().apply(parity_pixels((size, size), 16, seed=1)))


@pytest.fixture(scope="module")
def model():
    """MobileNetV3-Small 0.75 at 64 px, 4 classes."""
    return _model("mobilenet_v3_small_075", 64, len(LABELS))


@pytest.fixture(scope="module")
def tiny():
    return _model(TINY, None, 3)


@pytest.fixture(scope="module")
def calibration():
    return parity_pixels((64, 64), 16, seed=2)


@pytest.fixture(scope="module")
def tflite(model, calibration):
    """(mode, io_type) -> Artifact, converted on first use."""
    cache = {}

    def get(mode: str, io_type: str = "uint8"):
        if (mode, io_type) not in cache:
            options = ConvertOptions(quantize=mode, io_type=io_type, labels=LABELS,
                                     info=ModelInfo(name="tiny-v3", version="7"))
            cache[mode, io_type] = convert(model, "tflite", options, calibration=calibration)
        return cache[mode, io_type]

    return get


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_converts_and_runs_in_the_interpreter(tflite, model, mode):
    artifact = tflite(mode)
    interpreter = tf.lite.Interpreter(model_content=artifact.payload)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    expected_dtype = {"int8": np.dtype("uint8")}.get(mode, np.dtype("float32"))
    assert np.dtype(detail["dtype"]) == expected_dtype
    assert list(detail["shape"]) == [1, 64, 64, 3]
    out = run_tflite(artifact.payload, Normalization().apply(parity_pixels((64, 64), 2)))
    assert out.shape == (2, len(LABELS)) and np.isfinite(out).all()
    ops = op_counts(artifact.payload)
    assert ops.get("CONV_2D", 0) > 10 and not any(op.startswith(("CUSTOM", "Flex")) for op in ops)
    parity = artifact.details["parity"]
    if mode in ("none", "fp16"):
        assert parity["kind"] == "max_abs_error" and parity["passed"]
        assert parity["max_abs_error"] <= {"none": 1e-4, "fp16": 2e-2}[mode]
    else:  # reported, not enforced: deep random networks flip classes under any quantization
        assert parity["kind"] == "top1_agreement" and 0 <= parity["top1_agreement"] <= 1
    assert artifact.details["seconds"]["convert_s"] > 0


def test_quantized_models_are_smaller_and_int8_takes_pixels(tflite):
    size = {mode: len(tflite(mode).payload) for mode in ("none", "fp16", "dynamic", "int8")}
    assert size["fp16"] < 0.6 * size["none"]
    assert size["dynamic"] < 0.4 * size["none"] and size["int8"] < 0.4 * size["none"]
    quant = tflite("int8", "uint8").details["inputs"][0]["quantization"]
    # uint8 input with scale 1/127.5 around 127.5: the app feeds raw pixels
    assert quant["scale"] == pytest.approx(1 / 127.5, rel=1e-3) and quant["zero_point"] in (127, 128)
    assert "QUANTIZE" in op_counts(tflite("int16x8").payload)  # float fallback where no 16x8 kernel


@pytest.mark.parametrize("mode, io_type", [("int8", "int8"), ("int8", "float32"), ("int16x8", "uint8")])
def test_quantized_shallow_model_agrees_with_keras(tiny, mode, io_type):
    """A shallow random network is not chaotic, so quantized top-1 must mostly agree."""
    artifact = convert(tiny, "tflite", ConvertOptions(quantize=mode, io_type=io_type),
                       calibration=parity_pixels((32, 32), 8, seed=3))
    dtype = io_type if mode == "int8" else "float32"
    assert artifact.details["inputs"][0]["dtype"] == dtype
    assert artifact.details["outputs"][0]["dtype"] == dtype
    assert artifact.details["parity"]["top1_agreement"] >= 0.75


@pytest.mark.parametrize("mode, io_type", [("none", "uint8"), ("int8", "uint8")])
def test_metadata_reads_back_with_the_displayer(tflite, mode, io_type):
    payload = tflite(mode, io_type).payload
    displayer = MetadataDisplayer.with_model_buffer(bytearray(payload))
    assert displayer.get_packed_associated_file_list() == ["labels.txt"]
    assert displayer.get_associated_file_buffer("labels.txt").decode().split() == list(LABELS)
    metadata = read_metadata(payload)
    assert metadata["json"]["name"] == "tiny-v3" and metadata["json"]["version"] == "7"
    assert metadata_normalization(metadata) == {"mean": [127.5], "std": [127.5]}
    assert metadata["labels"] == list(LABELS)


def test_plain_to_tflite_has_no_metadata(tiny):
    flatbuffer = to_tflite(tiny)
    assert read_metadata(flatbuffer) is None
    assert "HARD_SWISH" in op_counts(flatbuffer)


def test_int8_without_calibration_is_a_clear_error(model):
    with pytest.raises(ConversionError, match="int8 needs calibration images"):
        convert(model, "tflite", ConvertOptions(quantize="int8"))
    with pytest.raises(ConversionError, match=r"calibration image 0 has shape \(32, 32, 3\)"):
        convert(model, "tflite", ConvertOptions(quantize="int8"), calibration=np.zeros((2, 32, 32, 3)))


@pytest.mark.parametrize("options, message", [
    (dict(labels=("a", "b")), "2 labels for a model with 4 classes"),
    (dict(quantize="int4"), "unknown quantize 'int4'"),
    (dict(compress="zip"), "unknown compress 'zip'"),
])
def test_bad_options_are_errors(model, options, message):
    with pytest.raises(ConversionError, match=message):
        convert(model, "tflite", ConvertOptions(**options))


def test_unknown_target_is_an_error(model):
    with pytest.raises(ConversionError, match="unknown format 'onnx'; choose one of tflite, coreml"):
        convert(model, "onnx")


def test_parity_fails_when_the_tflite_model_differs(tflite, model):
    other = tf.keras.models.clone_model(model)
    other.set_weights(model.get_weights())
    classifier = other.get_layer("classifier")
    kernel, bias = classifier.get_weights()
    classifier.set_weights([kernel, bias + np.arange(len(LABELS), dtype=np.float32)])
    with pytest.raises(ParityError, match=r"TFLite \(none\) differs from the Keras model"):
        check_parity(other, tflite("none").payload, "none", Normalization(), 1e-3)
    quantized = check_parity(other, tflite("int8").payload, "int8", Normalization(), 1e-3)
    assert quantized.kind == "top1_agreement" and quantized.passed  # reported, not enforced


def test_float_parity_tolerance_is_enforced_by_convert(tiny):
    with pytest.raises(ParityError, match=r"fp16.*max abs error"):
        convert(tiny, "tflite", ConvertOptions(quantize="fp16", tolerance=1e-12))


def test_normalization_maps_to_core_ml_scale_and_bias():
    assert Normalization().coreml_scale_bias() == (1 / 127.5, [-1.0, -1.0, -1.0])
    assert RAW_PIXELS.coreml_scale_bias() == (1.0, [0.0, 0.0, 0.0])
    torch = Normalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    scale, bias = torch.coreml_scale_bias()
    assert scale == pytest.approx(1 / 57.63) and bias == pytest.approx([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], rel=1e-3)
    assert not torch.exact_in_coreml and Normalization().exact_in_coreml
    with pytest.raises(ConversionError, match="std must be positive"):
        Normalization(0, 0)


@pytest.fixture(scope="module")
def coreml(tiny, tmp_path_factory):
    """compress/precision -> (Artifact, saved path), converted on first use."""
    cache = {}
    folder = tmp_path_factory.mktemp("coreml")

    def get(precision: str = "float16", compress: str = "none"):
        if (precision, compress) not in cache:
            options = ConvertOptions(precision=precision, compress=compress, labels=LABELS[:3],
                                     info=ModelInfo(name="tiny", version="2", author="tests",
                                                    extra=(("edgetailor.predicted_latency_ms", "3.5"),)))
            artifact = convert(tiny, "coreml", options)
            path = artifact.save(folder / f"{precision}_{compress}.mlpackage")
            cache[precision, compress] = artifact, path
        return cache[precision, compress]

    return get


def test_core_ml_package_passes_its_static_checks(coreml):
    artifact, path = coreml()
    assert set(artifact.details["verified"]) >= {"ml_program", "image_input", "preprocessing",
                                                 "class_labels", "precision", "metadata"}
    info = describe_package(path)
    assert info["type"] == "mlProgram" and info["precision"] == "float16"
    assert info["inputs"] == [{"name": "image", "type": "image", "height": 32, "width": 32, "color_space": "RGB",
                               "description": "RGB image; normalised in the model"}]
    assert [o["name"] for o in info["outputs"]] == ["classLabel", "classLabel_probs"]
    assert info["classes"] == list(LABELS[:3])
    assert info["preprocessing"]["scale"] == pytest.approx([1 / 127.5])
    assert info["preprocessing"]["bias"] == [-1.0, -1.0, -1.0]
    meta = info["metadata"]
    assert (meta["author"], meta["version"]) == ("tests", "2")
    assert meta["user_defined"]["edgetailor.predicted_latency_ms"] == "3.5"
    assert (path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").is_file()


def test_core_ml_float32_on_request(coreml):
    artifact, path = coreml("float32")
    assert describe_package(path)["precision"] == "float32"


@pytest.mark.parametrize("compress, op", [("linear8", "constexpr_affine_dequantize"),
                                          ("palettize6", "constexpr_lut_to_dense")])
def test_core_ml_weight_compression(coreml, compress, op):
    _, plain = coreml()
    _, path = coreml("float16", compress)
    info = describe_package(path)
    assert info["compression"] == op and "compression" in coreml("float16", compress)[0].details["verified"]
    assert info["bytes"] < describe_package(plain)["bytes"]


def test_static_check_failures_are_named(coreml, tiny):
    _, path = coreml()
    expect = expectations(tiny, ConvertOptions(labels=("x", "y", "z"), precision="float32"))
    with pytest.raises(ConversionError, match=r"failed static checks: class_labels.*precision"):
        verify_package(path, expect)


def test_a_program_is_saved_only_as_an_mlpackage(tmp_path):
    from edgetailor.converters.coreml import save_package

    with pytest.raises(ConversionError, match="model.mlmodel: a Core ML program is saved as a .mlpackage folder"):
        save_package(None, str(tmp_path), tmp_path / "model.mlmodel")
    assert list(tmp_path.iterdir()) == []


def test_core_ml_refuses_tflite_quantization(tiny):
    with pytest.raises(ConversionError, match="--quantize applies to TFLite"):
        convert(tiny, "coreml", ConvertOptions(quantize="int8"))


def test_calibration_images_are_read_and_resized(tmp_path):
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 50), (64, 64), (100, 80)]):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        encode = tf.io.encode_png if i != 1 else tf.io.encode_jpeg
        (tmp_path / f"img{i}.{'png' if i != 1 else 'JPG'}").write_bytes(encode(pixels).numpy())
    (tmp_path / "notes.txt").write_text("not an image")
    images = load_images(tmp_path, (64, 64))
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 255 and images.std() > 20
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ConversionError, match="cannot read calibration image .*broken.png"):
        load_images(tmp_path, (64, 64))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConversionError, match="no .jpg or .png images"):
        load_images(empty, (64, 64))


def test_saved_models_load_or_fail_in_one_line(tiny, tmp_path):
    path = tmp_path / "tiny.keras"
    tiny.save(path)
    loaded = load_keras(path)
    assert loaded.output_shape == (None, 3) and normalization_of(loaded) == Normalization()
    with pytest.raises(ConversionError, match="model file not found"):
        load_keras(tmp_path / "missing.keras")
    (tmp_path / "corrupt.keras").write_bytes(b"not a zip")
    with pytest.raises(ConversionError, match="cannot load Keras model .*corrupt.keras") as info:
        load_keras(tmp_path / "corrupt.keras")
    assert "\n" not in str(info.value)


def test_models_with_preprocessing_layers_take_raw_pixels():
    inputs = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Rescaling(1 / 255)(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(tf.keras.layers.Flatten()(x)))
    assert normalization_of(model) == RAW_PIXELS


def test_converter_interface_imports_without_tensorflow():
    code = ("import sys; import edgetailor.converters as c; c.ConvertOptions(quantize='int8'); "
            "print([m for m in ('tensorflow', 'coremltools') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
