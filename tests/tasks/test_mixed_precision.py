"""quantize-mix: denylisted layers are float32 in the file and the rest int8, the search keeps to
its budget, the pricing counts the boundaries the converter writes, and bad input is one line."""
import numpy as np
import pytest

from edgetailor.data import shapes
from edgetailor.errors import ProfileError
from edgetailor.latency import profiles

from cli_checks import assert_one_line_error, invoke

TINY = "res32 | conv_k3_s2_c8_hs | ir_k3_s2_e3_c16_se0.25_hs | ir_k3_s1_e3_c16_re | head:pool"
CLASSES = ("circle", "square")


def test_a_bundle_is_not_a_model(tmp_path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "manifest.json").write_text("{}")
    result = invoke("quantize-mix", tmp_path / "bundle", "--dataset", tmp_path, "--device", "host",
                  "--budget-ms", "1", "--out", tmp_path / "out")
    assert_one_line_error(result, "holds converted models only")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, needle", [
    (["m.txt", "--budget-ms", "1"], "saved Keras classifier"),
    (["m.keras", "--budget-ms", "0"], "--budget-ms"),
])
def test_bad_arguments_are_one_line(tmp_path, args, needle):
    (tmp_path / args[0]).write_text("x")
    result = invoke("quantize-mix", tmp_path / args[0], "--dataset", tmp_path, "--device", "host", *args[1:],
                  "--out", tmp_path / "out")
    assert result.exit_code != 0 and "Traceback" not in result.output and needle in result.output + result.stderr
    assert not (tmp_path / "out").exists()


def test_a_phone_without_an_int8_profile_is_refused_before_the_model_loads(tmp_path):
    (tmp_path / "m.keras").write_text("not a model: loading it would fail with another message")
    result = invoke("quantize-mix", tmp_path / "m.keras", "--dataset", tmp_path, "--device", "pixel1",
                    "--budget-ms", "1", "--out", tmp_path / "out")
    assert_one_line_error(result, "no int8 profile")
    assert not (tmp_path / "out").exists()


def test_a_phone_without_an_int8_profile_is_named():
    from edgetailor.tasks.mixed_precision_latency import int8_partner

    assert int8_partner(profiles.load("pixel3")).name == "pixel3-tflite-int8-1big"
    with pytest.raises(ProfileError, match="no int8 profile.*pixel3"):
        int8_partner(profiles.load("pixel1"))


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    """TINY trained one epoch on 2-class shapes at 32 px, as quantization sees it."""
    import tensorflow as tf

    from edgetailor import builder
    from edgetailor.arch import zoo
    from edgetailor.tasks import quantize

    folder = shapes.write_folder(tmp_path_factory.mktemp("mix") / "data", 24, size=32, classes=CLASSES)
    tf.keras.utils.set_random_seed(0)
    model = builder.build(zoo.resolve(TINY).spec, num_classes=2, name="tiny")
    data = shapes.classification(24, 32, 0, classes=CLASSES)
    model.compile(tf.keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(data.images / 127.5 - 1, data.labels, epochs=1, verbose=0)
    return quantize.classifier(model, folder, 1e-3)


@pytest.mark.slow
def test_denylisted_layers_are_float_in_the_file_and_the_rest_int8(subject):
    import tensorflow as tf

    from edgetailor.converters.inputs import normalization_of
    from edgetailor.tasks import mixed_precision as mp
    from edgetailor.tasks.mixed_precision_latency import boundaries, graph_of
    from edgetailor.tasks.quantize import calibration_images

    debugger = mp._debugger(subject.model, calibration_images(subject.train_images), normalization_of(subject.model))
    graph = graph_of(debugger.get_nondebug_quantized_model())
    errors = mp.layer_errors(debugger, graph)
    assert all(e.rmse_over_scale >= 0 for e in errors) and len(errors) == len(graph.layers)
    conv = [e.name for e in errors if e.op in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    floats = frozenset({conv[0], conv[3]})
    model = mp._export(debugger, errors, floats)
    precisions = mp.precisions_in(model, graph)
    assert {name for name, p in precisions.items() if p == "float32"} == floats
    assert all(p == "int8" for name, p in precisions.items() if name not in floats)
    # the interpreter agrees: the float layers' weights are float32, the others' int8
    interpreter = tf.lite.Interpreter(model_content=model)
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    weights = {tensors[op["outputs"][0]]["name"]: tensors[op["inputs"][1]]["dtype"]
               for op in interpreter._get_ops_details() if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")}
    assert {n for n, t in weights.items() if t == np.float32} == floats
    # the boundaries priced are the QUANTIZE / DEQUANTIZE ops the converter wrote
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    kinds = [kind for kind, _ in boundaries(graph, floats)]
    assert sorted(kinds) == sorted(o for o in ops if o in ("QUANTIZE", "DEQUANTIZE"))


@pytest.mark.slow
def test_the_search_keeps_to_the_budget(subject):
    from edgetailor.tasks import mixed_precision as mp
    from edgetailor.tasks.mixed_precision_latency import phone_costs

    pixel3 = profiles.load("pixel3")
    seen = {}

    def price(float_fb, int8_fb):
        seen["costs"] = phone_costs(int8_fb, pixel3)
        return seen["costs"]

    # first learn the int8 price, then allow a budget only a little above it
    probe = mp.search(subject, mp.MixRequest(budget_ms=1e9, max_trials=1, patience=1), price, lambda m: None)
    budget = probe.predicted_ms["int8"] * 1.02
    result = mp.search(subject, mp.MixRequest(budget_ms=budget, max_trials=3), price, lambda m: None)
    assert result.predicted_ms["mixed"] <= budget
    assert all(t.predicted_ms <= budget for t in result.trials if t.accuracy is not None)
    assert all(t.note == "over budget" for t in result.trials if t.predicted_ms > budget)
    assert result.accuracy["float32"] == round(subject.score(result.flatbuffers["float32"]), 2)
