"""A new user's first-run mistakes and odd inputs (issue 11): each is one clear line, a warning or
the right result, never a traceback, a silent NaN or a file read from outside a dataset."""
import json
import math
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from edgetailor.arch import layers, spec as spec_module, zoo
from edgetailor.data import folders
from edgetailor.errors import DatasetError, ProfileError, SpecError
from edgetailor.latency import profiles

from cli_checks import assert_one_line_error, invoke

DET = Path(__file__).parents[1] / "fixtures" / "det"
# million-channel convolutions: 12 T parameters (the build ran out of memory)
HUGE = "res224 | conv_k3_s2_c32_re | ir_k3_e6_c1000000_re,ir_k3_e6_c1000000_re | head:pool"


def assert_usage_error(result, needle):
    """click's own answer to a bad option value: exit 2, the option named, no traceback."""
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output


# 1. NaN and inf in options and specs; a folder given as the device

@pytest.mark.parametrize("args", [
    ["describe", "mobilenet_v2", "--width", "nan"],
    ["latency", "mobilenet_v2", "--device", "pixel1", "--width", "nan"],
    ["specialize", "--device", "pixel1", "--budget-ms", "nan", "--out", "{tmp}/out"],
    ["specialize", "--device", "pixel1", "--budget-ms", "inf", "--out", "{tmp}/out"],
    ["package", "mobilenet_v2_035", "--device", "pixel1", "--labels", "{tmp}/labels.txt",
     "--budget-ms", "nan", "--out", "{tmp}/out"],
    ["package", "mobilenet_v2_035", "--device", "pixel1", "--labels", "{tmp}/labels.txt",
     "--accuracy", "nan", "--accuracy-source", "mine", "--out", "{tmp}/out"],
    ["convert", "mobilenet_v2", "--width", "nan", "--out", "{tmp}/m.tflite"],
], ids=["describe-width", "latency-width", "specialize-budget-nan", "specialize-budget-inf",
        "package-budget", "package-accuracy", "convert-width"])
def test_nan_and_inf_options_are_refused_before_any_work(tmp_path, args):
    (tmp_path / "labels.txt").write_text("a\nb\n")
    result = invoke(*[a.format(tmp=tmp_path) for a in args])
    assert_usage_error(result, "is not a finite number")
    assert [p.name for p in tmp_path.iterdir()] == ["labels.txt"]


def test_a_nan_width_that_reaches_the_library_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="must be finite and positive"):
        zoo.resolve("mobilenet_v2", width=math.nan)
    # the CLI refuses it before the library sees it (a usage error, exit 2)
    result = invoke("build", "mobilenet_v2", "--width", "nan", "--out", tmp_path / "m.keras")
    assert result.exit_code == 2 and "not a finite number" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_spec_multipliers_must_be_finite():
    overflow = "res32_w" + "9" * 400 + " | conv_k3_s2_c8_re | ir_k3_e3_c8_re | head:pool"  # float() -> inf
    with pytest.raises(SpecError, match=r"width must be a finite positive multiplier \(got inf\)"):
        spec_module.decode(overflow)
    data = zoo.resolve("mobilenet_v2_035").spec.to_dict()
    with pytest.raises(SpecError, match="depth must be a finite positive multiplier"):
        spec_module.from_dict({**data, "depth": math.nan})


def test_a_folder_as_the_device_is_one_line():
    assert_one_line_error(invoke("latency", "mobilenet_v2", "--device", "."),
                          ". is a folder; give a device profile name or .json file")


# 2. Non-finite numbers in a device profile

def _pixel1() -> dict:
    return json.loads((resources.files("edgetailor.device_profiles") / "pixel1.json").read_text())


@pytest.mark.parametrize("edit, needle", [
    (lambda d: d["table"].update({"conv_k3_s2_c16|224x224x3": math.inf}), "must be a finite non-negative number of ms (got inf)"),
    (lambda d: d["table"].update({"conv_k3_s2_c16|224x224x3": math.nan}), "must be a finite non-negative number of ms (got nan)"),
    (lambda d: d["coefficients"].__setitem__(0, math.nan), "'coefficients' needs"),
    (lambda d: d.update(expected_error_pct=math.inf), "'expected_error_pct' must be a finite"),
], ids=["table-inf", "table-nan", "coefficient-nan", "error-inf"])
def test_profiles_with_non_finite_numbers_are_refused(tmp_path, edit, needle):
    doc = _pixel1()
    edit(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))  # Python writes Infinity / NaN, which its json reads back
    assert "Infinity" in path.read_text() or "NaN" in path.read_text()
    with pytest.raises(ProfileError, match=re.escape(needle)):
        profiles.load(str(path))
    assert_one_line_error(invoke("latency", "mobilenet_v2", "--device", path), needle)


# 3. Truncated or corrupt model files

def test_inspect_of_a_truncated_tflite_is_one_line(tmp_path):
    import tensorflow as tf

    from edgetailor.converters.tflite import to_tflite

    inputs = tf.keras.Input((8, 8, 3))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(4)(tf.keras.layers.Flatten()(inputs)))
    flatbuffer = to_tflite(model)
    for cut in (len(flatbuffer) // 2, 64, 12):
        path = tmp_path / f"cut{cut}.tflite"
        path.write_bytes(flatbuffer[:cut])
        assert_one_line_error(invoke("inspect", path), "not a complete TFLite flatbuffer")


def test_build_with_a_corrupt_keras_weights_file_is_one_line(tmp_path):
    corrupt = tmp_path / "weights.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))  # HDF5's signature, then nothing valid
    result = invoke("build", "mobilenet_v2_035", "--resolution", "96", "--pretrained", corrupt,
                    "--out", tmp_path / "m.keras")
    assert_one_line_error(result, "cannot read weights file")
    assert [p.name for p in tmp_path.iterdir()] == ["weights.h5"]


# 4. Absurd sizes

def test_a_million_channel_build_is_refused_before_keras_allocates(tmp_path):
    from edgetailor.builder import network

    params, _ = layers.count(zoo.resolve(HUGE).spec)
    assert params > 100 * layers.MAX_PARAMS
    with pytest.raises(SpecError, match=r"cannot build edgetailor: [\d,]+ M parameters, more than the 500 M"):
        network.build(zoo.resolve(HUGE).spec)
    assert_one_line_error(invoke("build", HUGE, "--out", tmp_path / "m.keras"), "more than the 500 M")
    assert list(tmp_path.iterdir()) == []


def test_describe_warns_about_an_absurd_size_and_still_describes():
    result = invoke("describe", HUGE)
    assert result.exit_code == 0, result.output
    assert re.match(r"warning: [\d,]+ M parameters, more than the 500 M", result.stderr)
    assert result.stderr.strip().endswith("build, convert and specialize refuse it")
    assert "stage1.1" in result.stdout
    assert invoke("describe", "efficientnet_b7").stderr == ""  # the zoo's largest: 66 M


# 5, 6. COCO and VOC entries that leave the dataset folder; duplicate COCO ids

def _dataset(tmp_path, layout):
    root = Path(shutil.copytree(DET / layout, tmp_path / "data" / layout))
    # a readable image outside the dataset: without the check it would be loaded and trained on
    shutil.copy(root / "images" / "00000.png", tmp_path / "x.png")
    return root


def _edit_coco(root, edit):
    path = root / "labels.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("name", ["../../../x.png", "sub/../../../../x.png", "/etc/passwd"])
def test_coco_file_names_that_leave_the_folder_are_refused(tmp_path, name):
    root = _dataset(tmp_path, "coco")
    _edit_coco(root, lambda doc: doc["images"][1].update(file_name=name))
    with pytest.raises(DatasetError, match=rf"images\[1\] \(id 2, '{re.escape(name)}'\): image file "
                                           rf"name .* leaves the dataset's images/ folder"):
        folders.load_coco_folder(root, size=64)


def test_voc_file_names_that_leave_the_folder_are_refused(tmp_path):
    root = _dataset(tmp_path, "voc")
    xml = root / "Annotations" / "00001.xml"
    xml.write_text(xml.read_text().replace("<filename>00001.png", "<filename>../../../x.png"))
    with pytest.raises(DatasetError, match=r"00001\.xml: <filename> '\.\./\.\./\.\./x\.png': .* leaves"):
        folders.load_voc_folder(root, size=64)


def test_names_inside_the_folder_still_load(tmp_path):
    root = _dataset(tmp_path, "coco")
    _edit_coco(root, lambda doc: doc["images"][1].update(file_name="sub/../00001.png"))
    assert folders.load_coco_folder(root, size=64).files[1] == "sub/../00001.png"


def test_a_duplicate_coco_image_id_is_named(tmp_path):
    root = _dataset(tmp_path, "coco")
    _edit_coco(root, lambda doc: doc["images"][2].update(id=2))
    with pytest.raises(DatasetError, match=r"images\[2\] has id 2, as images\[1\] does; image ids must be unique"):
        folders.load_coco_folder(root, size=64)


@pytest.mark.parametrize("edit, needle", [
    (lambda doc: doc["images"][0].update(id=[1]), r"images\[0\]: 'id' must be an integer"),
    (lambda doc: doc["annotations"][0].update(bbox=[1, 2, "3", 4]), r"annotations\[0\] \(id 1\): bbox values must be numbers"),
    (lambda doc: doc["annotations"][0].update(bbox=[1, 2, math.nan, 4]), "box coordinates must be finite"),
])
def test_malformed_coco_values_are_named(tmp_path, edit, needle):
    root = _dataset(tmp_path, "coco")
    _edit_coco(root, edit)
    with pytest.raises(DatasetError, match=needle):
        folders.load_coco_folder(root, size=64)


# 8. A saved .keras file loads with plain Keras once edgetailor's layers module is imported

def test_a_built_model_loads_in_a_fresh_process(tmp_path):
    out = tmp_path / "m.keras"
    result = invoke("build", "mobilenet_v3_small_075", "--resolution", "32", "--num-classes", "3", "--out", out)
    assert result.exit_code == 0, result.output
    # what the README says: Keras 2.15 finds registered layers only once their module is imported
    code = ("import sys, tensorflow as tf, edgetailor.builder.keras_layers; "
            "m = tf.keras.models.load_model(sys.argv[1]); "
            "print(sorted({type(l).__module__ for l in m.layers if type(l).__name__ == 'HardSwish'}))")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['edgetailor.builder.keras_layers']"


def test_load_keras_names_an_unregistered_custom_layer(tmp_path):
    import tensorflow as tf

    from edgetailor.errors import ConversionError
    from edgetailor.converters.inputs import load_keras

    class Doubler(tf.keras.layers.Layer):  # not registered: what another project's layer looks like
        def call(self, inputs):
            return inputs * 2.0

    inputs = tf.keras.Input((4,))
    path = tmp_path / "custom.keras"
    tf.keras.Model(inputs, Doubler()(inputs)).save(path)
    with pytest.raises(ConversionError, match="holds a custom layer nothing imported here registers") as info:
        load_keras(path)
    assert "\n" not in str(info.value)


# 9. Help, suggestions, binary captures, package bundles

@pytest.mark.parametrize("command, example", [
    ([], "    edgetailor latency mobilenet_v2 --device pixel1 --width 0.75"),
    (["specialize"], "    edgetailor specialize --device pixel1 --budget-ms 40 --out out/pixel1_40ms"),
    (["search"], "    edgetailor search --space mnasnet --device pixel1 --budget-ms 40 --trials 20 --out out/search"),
    (["package"], "        --budget-ms 40 --out out/app"),
    (["convert"], "    edgetailor convert m.keras --labels labels.txt --out m.tflite"),
], ids=["main", "specialize", "search", "package", "convert"])
def test_help_shows_examples_one_per_line(command, example):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output and example in result.output.splitlines()


def test_suggestions_name_each_architecture_once():
    hints = zoo.suggestions("effnet_b0")
    assert hints and len(hints) == len(set(hints))
    result = invoke("scale", "effnet_b0", "--phi", "1")
    assert_one_line_error(result, "did you mean")
    named = result.stderr.split("did you mean ")[1].rstrip("?\n").split(", ")
    assert len(named) == len(set(named))


def test_parse_of_a_binary_file_shows_a_short_printable_excerpt(tmp_path):
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 4)
    result = invoke("android-bench", "--parse", binary)
    assert_one_line_error(result, "benchmark_model is a binary file, not a benchmark_model capture "
                                  "(it starts '.ELF............')")
    assert len(result.stderr) < 120 and result.stderr.strip().isprintable()


def test_inspect_of_a_bundle_without_budget_or_accuracy_uses_words(tmp_path):
    from edgetailor.bundle.manifest import LatencyReport, Manifest, file_entry
    from edgetailor.bundle.writer import published_accuracy

    (tmp_path / "labels.txt").write_text("a\nb\n")
    manifest = Manifest(task="classification", model_name="tiny", arch=None, weights="saved model",
                        profile=profiles.load("iphone_x"), latency=LatencyReport(None, None, None),
                        accuracy=published_accuracy(None, False), input={"shape": [1, 32, 32, 3], "normalization": {"mean": [127.5] * 3, "std": [127.5] * 3}},
                        labels=["a", "b"], files={"labels.txt": file_entry(tmp_path / "labels.txt")})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest.to_dict()))
    result = invoke("inspect", tmp_path)
    assert result.exit_code == 0, result.output
    assert "None" not in result.stdout
    assert "latency  predicted unknown, expected error unknown, budget none" in result.stdout
    assert "accuracy unknown (no published figure for this architecture" in result.stdout


# 7. Parity can see a broken conversion of a random-weight build

@pytest.mark.slow
def test_parity_sees_a_broken_conversion_of_a_random_weight_build():
    import tensorflow as tf

    from edgetailor.builder import network
    from edgetailor.converters import MOBILENET, ParityError
    from edgetailor.converters.parity import check_parity, parity_pixels
    from edgetailor.converters.tflite import to_tflite

    spec = zoo.resolve("mobilenet_v2_100", resolution=96).spec
    tf.keras.utils.set_random_seed(0)
    model = network.build(spec, num_classes=10)
    inputs = MOBILENET.apply(parity_pixels((96, 96), 8))
    probabilities = model(inputs).numpy()
    assert np.ptp(probabilities) < 1e-6  # the case: a uniform softmax, the same for every image
    parity = check_parity(model, to_tflite(model), "none", MOBILENET, 1e-3)
    assert parity.passed and parity.compared == "logits" and parity.max_abs_error > 0

    # wrong normalisation: the artifact rescales pixels the app already normalised
    renormalised = network.build(spec, num_classes=10, preprocessing=[tf.keras.layers.Rescaling(1 / 127.5, -1)])
    renormalised.set_weights(model.get_weights())
    # a dropped op: one activation left out of the converted graph
    dropped = tf.keras.models.clone_model(model, clone_function=lambda layer: (
        tf.keras.layers.Identity(name=layer.name) if layer.name == "stage2_0_expand_act"
        else layer.__class__.from_config(layer.get_config())))
    dropped.set_weights(model.get_weights())
    for broken in (renormalised, dropped):
        with pytest.raises(ParityError, match="max abs error of the logits"):
            check_parity(model, to_tflite(broken), "none", MOBILENET, 1e-3)


# 10. The terminal and the manifest agree on a 2,500-label pick (not the 1,000 of the default labels)

@pytest.mark.slow
def test_specialize_prices_the_real_label_count(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class_{i}\n" for i in range(2_500)))
    out = tmp_path / "bundle"
    # 5 ms picks width 0.6 at 96 px (10 ms: width 1.25 at 104 px; this test 169 s -> 119 s, load 4-5);
    # priced with 1,000 labels it would be 0.29 ms cheaper, far outside the 1e-3 ms checked below
    result = invoke("specialize", "--device", "pixel1", "--budget-ms", "5", "--labels", labels,
                    "--out", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    manifest = json.loads((out / "manifest.json").read_text())
    assert summary["predicted_ms"] == manifest["latency"]["predicted_ms"]
    assert summary["chosen"]["latency_ms"] == pytest.approx(manifest["latency"]["predicted_ms"], abs=0.005)
    assert manifest["latency"]["within_budget"] is True and summary["chosen"]["latency_ms"] <= 5
    spec = spec_module.decode(manifest["arch"]["spec"])
    priced = profiles.load("pixel1").predict(spec, 2_500).total_ms  # the head as built: 2,500 classes
    assert priced == pytest.approx(manifest["latency"]["predicted_ms"], abs=1e-3)
    assert len(manifest["labels"]) == 2_500
