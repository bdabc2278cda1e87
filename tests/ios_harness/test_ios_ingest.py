"""The ingest of edgetailor-coreml-bench JSON: the checker is the schema, errors name field paths."""
import copy
import json
from pathlib import Path

import pytest

from edgetailor.ios_harness.ingest import (BenchFormatError, check_coreml_bench, device_name,
                                           load_coreml_bench, to_measurements)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ios"
GOOD = FIXTURES / "iphone_x_three_models.json"
WITH_ERRORS = FIXTURES / "iphone_8_with_errors.json"


@pytest.fixture
def good():
    return json.loads(GOOD.read_text())


def errors_of(data):
    with pytest.raises(BenchFormatError) as caught:
        check_coreml_bench(data)
    return caught.value.errors


def test_loads_the_iphone_x_file():
    bench = load_coreml_bench(GOOD)
    assert (bench.device_model, bench.device_name) == ("iPhone10,3", "iPhone X")
    assert bench.os == "Version 16.7.10 (Build 20H350)"
    assert bench.coremltools_note.startswith("coremltools 9.0")
    assert len(bench.results) == 9 and all(r.ok for r in bench.results)
    assert {r.compute_units for r in bench.results} == {"cpuOnly", "cpuAndGPU", "all"}
    first = bench.results[0]
    assert (first.model, first.compute_units, first.warmup, first.runs) == (
        "efficientnet_lite0_100.mlpackage", "cpuOnly", 10, 50)
    assert first.latency.mean_ms == 31.5519 and first.latency.std_ms == 0.8879
    assert first.load_ms == 212.7


@pytest.mark.parametrize("units, expected", [
    ("cpuOnly", {"efficientnet_lite0_100.mlpackage": 31.5519, "mobilenet_v2_100.mlpackage": 21.525,
                 "mobilenet_v3_small_100.mlpackage": 5.9191}),
    ("cpuAndGPU", {"efficientnet_lite0_100.mlpackage": 14.651, "mobilenet_v2_100.mlpackage": 9.7631,
                   "mobilenet_v3_small_100.mlpackage": 7.432}),
    ("all", {"efficientnet_lite0_100.mlpackage": 14.5863, "mobilenet_v2_100.mlpackage": 9.6363,
             "mobilenet_v3_small_100.mlpackage": 7.2627}),
])
def test_one_measurement_per_model_for_the_chosen_compute_units(units, expected):
    out = to_measurements(load_coreml_bench(GOOD), compute_units=units)
    assert out["schema"] == "edgetailor.measurements/1" and out["source"] == "ios-harness"
    assert out["device"] == {"name": "iPhone X", "os": "Version 16.7.10 (Build 20H350)"}
    assert out["runtime"] == {"name": "coreml", "compute_units": units}
    assert {m["model"]: m["latency_ms"] for m in out["measurements"]} == expected
    assert out["skipped"] == []
    json.dumps(out)  # plain JSON types only


def test_measurement_fields_and_arch_by_file_name_or_stem():
    arch = {"mobilenet_v2_100.mlpackage": "mobilenet_v2_100",
            "mobilenet_v3_small_100": "res224 | conv_k3_s2_c16_hs | head:pool"}
    out = to_measurements(load_coreml_bench(GOOD), arch, compute_units="cpuOnly")
    by_model = {m["model"]: m for m in out["measurements"]}
    assert by_model["mobilenet_v2_100.mlpackage"] == {
        "model": "mobilenet_v2_100.mlpackage", "arch": "mobilenet_v2_100", "latency_ms": 21.525,
        "std_ms": 0.6301, "min_ms": 20.9038, "max_ms": 24.1908, "count": 50}
    assert by_model["mobilenet_v3_small_100.mlpackage"]["arch"].startswith("res224")
    assert by_model["efficientnet_lite0_100.mlpackage"]["arch"] is None


def test_failed_models_are_skipped_and_reported():
    bench = load_coreml_bench(WITH_ERRORS)
    assert bench.device_name == "iPhone 8" and bench.coremltools_note is None
    failed = [r for r in bench.results if not r.ok]
    assert len(failed) == 5
    assert failed[-1].load_ms == 649.8 and failed[-1].latency is None

    cpu = to_measurements(bench, compute_units="cpuOnly")
    assert [m["model"] for m in cpu["measurements"]] == ["mobilenet_v2_100.mlpackage",
                                                          "yolov5n.mlpackage"]
    assert [s["model"] for s in cpu["skipped"]] == ["ssdlite_mobilenet_v3_small.mlpackage"]
    assert cpu["skipped"][0]["error"].startswith("compile failed: The model supplied is of version 8")

    gpu = to_measurements(bench, compute_units="all")
    assert [m["model"] for m in gpu["measurements"]] == ["mobilenet_v2_100.mlpackage"]
    assert gpu["skipped"] == [
        {"model": "ssdlite_mobilenet_v3_small.mlpackage", "error": cpu["skipped"][0]["error"]},
        {"model": "yolov5n.mlpackage", "error": "prediction failed: Error computing NN outputs."}]


def test_conversion_refusals(good):
    bench = load_coreml_bench(GOOD)
    with pytest.raises(ValueError, match=r"compute_units must be one of cpuOnly, cpuAndGPU, all \(got 'gpu'\)"):
        to_measurements(bench, compute_units="gpu")
    with pytest.raises(ValueError, match="arch_by_model names models not in the file: mobilenet_v2_140"):
        to_measurements(bench, {"mobilenet_v2_140": "mobilenet_v2_140"})

    good["results"] = [r for r in good["results"] if r["compute_units"] != "cpuOnly"]
    with pytest.raises(ValueError, match=r"no results on cpuOnly in this file \(it has: cpuAndGPU, all\)"):
        to_measurements(check_coreml_bench(good), compute_units="cpuOnly")

    for result in good["results"]:
        del result["latency_ms"]
        result["error"] = "load failed: boom"
    with pytest.raises(ValueError, match="every model failed on all: efficientnet_lite0_100.mlpackage: load failed: boom"):
        to_measurements(check_coreml_bench(good), compute_units="all")


@pytest.mark.parametrize("hardware_id, name", [
    ("iPhone10,3", "iPhone X"), ("iPhone10,6", "iPhone X"), ("iPhone10,1", "iPhone 8"),
    ("iPhone10,4", "iPhone 8"), ("iPhone10,2", "iPhone 8 Plus"), ("iPhone12,1", "iPhone 11"),
    ("iPhone15,2", "iPhone 14 Pro"), ("iPhone99,9", "iPhone99,9"), ("Mac14,2", "Mac14,2"),
])
def test_device_names(hardware_id, name):
    assert device_name(hardware_id) == name


DELETE = object()


def edit(data, path, value):
    """Set the field at ``path`` (keys and indices) to ``value``, or remove it for DELETE."""
    *parents, last = path
    target = data
    for key in parents:
        target = target[key]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return data


# results[2] is efficientnet_lite0 on all: min 14.0002, max 16.3751.
@pytest.mark.parametrize("path, value, message", [
    (["schema"], "edgetailor.coreml-bench/2",
     "schema must be 'edgetailor.coreml-bench/1' (got \"edgetailor.coreml-bench/2\")"),
    (["schema"], DELETE, "schema is missing"),
    (["device"], "iPhone10,3", "device must be an object (got a string)"),
    (["device", "model"], DELETE, "device.model is missing"),
    (["device", "os"], 16, "device.os must be a non-empty string (got 16)"),
    (["device", "chip"], "A11", "device.chip is not a field of edgetailor.coreml-bench/1"),
    (["coremltools_note"], DELETE, "coremltools_note is missing"),
    (["coremltools_note"], ["9.0"], "coremltools_note must be a string or null (got a list)"),
    (["results"], [], "results must be a non-empty list (got [])"),
    (["results", 4], "oops", "results[4] must be an object (got a string)"),
    (["results", 2, "latency_ms", "mean"], -1,
     "results[2].latency_ms.mean must be a positive number (got -1)"),
    (["results", 2, "latency_ms", "mean"], "9.6",
     "results[2].latency_ms.mean must be a positive number (got \"9.6\")"),
    (["results", 2, "latency_ms", "median"], float("nan"),
     "results[2].latency_ms.median must be a positive number (got NaN)"),
    (["results", 2, "latency_ms", "min"], True,
     "results[2].latency_ms.min must be a positive number (got true)"),
    (["results", 2, "latency_ms", "std"], -0.1,
     "results[2].latency_ms.std must be a non-negative number (got -0.1)"),
    (["results", 2, "latency_ms", "max"], DELETE, "results[2].latency_ms.max is missing"),
    (["results", 2, "latency_ms", "p99"], 20.0,
     "results[2].latency_ms.p99 is not a field of edgetailor.coreml-bench/1"),
    (["results", 2, "latency_ms"], None, "results[2].latency_ms must be an object (got null)"),
    (["results", 2, "latency_ms", "mean"], 30.0,
     "results[2].latency_ms.mean must lie between min and max (got 30.0, min 14.0002, max 16.3751)"),
    (["results", 2, "latency_ms", "std"], 8.0,
     "results[2].latency_ms.std cannot exceed max - min (got 8.0, max - min 2.375)"),
    (["results", 2, "latency_ms"], DELETE, "results[2].latency_ms is missing"),
    (["results", 1, "load_ms"], 0, "results[1].load_ms must be a positive number (got 0)"),
    (["results", 1, "load_ms"], DELETE, "results[1].load_ms is missing"),
    (["results", 0, "compute_units"], "cpuAndNeuralEngine",
     "results[0].compute_units must be one of cpuOnly, cpuAndGPU, all (got \"cpuAndNeuralEngine\")"),
    (["results", 0, "model"], "mobilenet_v2_100.tflite",
     "results[0].model must be a file name ending in .mlpackage, .mlmodel, .mlmodelc "
     "(got \"mobilenet_v2_100.tflite\")"),
    (["results", 0, "runs"], 0, "results[0].runs must be an integer >= 1 (got 0)"),
    (["results", 0, "runs"], 50.0, "results[0].runs must be an integer >= 1 (got 50.0)"),
    (["results", 0, "warmup"], -1, "results[0].warmup must be an integer >= 0 (got -1)"),
    (["results", 3, "error"], "load failed", "results[3] has both error and latency_ms"),
])
def test_each_schema_violation_names_its_field(good, path, value, message):
    assert errors_of(edit(good, path, value)) == [message]


@pytest.mark.parametrize("field, value, message", [
    ("error", "", 'results[3].error must be a non-empty string (got "")'),
    ("error", None, "results[3].error must be a non-empty string (got null)"),
    ("load_ms", -5, "results[3].load_ms must be a positive number (got -5)"),
    ("runs", DELETE, "results[3].runs is missing"),
])
def test_error_entries_are_checked_too(good, field, value, message):
    entry = good["results"][3]
    del entry["latency_ms"]
    entry["error"] = "prediction failed: Error computing NN outputs."
    assert errors_of(edit(good, ["results", 3, field], value)) == [message]


def test_duplicate_entries_are_errors(good):
    good["results"].append(copy.deepcopy(good["results"][4]))
    assert errors_of(good) == [
        "results[9] repeats model 'mobilenet_v2_100.mlpackage' on cpuAndGPU (first at results[4])"]


def test_root_must_be_an_object():
    assert errors_of([1, 2]) == ["the file must hold a JSON object (got a list)"]


def test_malformed_file_lists_every_problem():
    with pytest.raises(BenchFormatError) as caught:
        load_coreml_bench(FIXTURES / "malformed_fields.json")
    assert caught.value.errors == [
        'device.model must be a non-empty string (got "")',
        "coremltools_note must be a string or null (got a number)",
        'results[0].compute_units must be one of cpuOnly, cpuAndGPU, all (got "ane")',
        "results[1].runs must be an integer >= 1 (got 0)",
        "results[1].latency_ms.mean must be a positive number (got -3.2)",
        "results[2] has both error and latency_ms",
        'results[2].model must be a file name ending in .mlpackage, .mlmodel, .mlmodelc '
        '(got "mobilenet_v3_small_100")',
        "results[2].warmup must be an integer >= 0 (got true)",
        "results[3].load_ms is missing",
        "results[3].latency_ms.mean must lie between min and max (got 12.0, min 11.5, max 11.9)",
    ]
    message = str(caught.value)
    assert message.startswith(f"{FIXTURES / 'malformed_fields.json'}: 10 problems\n")


def test_truncated_file_is_not_json():
    with pytest.raises(BenchFormatError, match=r"malformed_truncated.json: not JSON: .* at line 11 column"):
        load_coreml_bench(FIXTURES / "malformed_truncated.json")
