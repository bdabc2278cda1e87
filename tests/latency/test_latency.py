"""Device profiles: schema, lookups, fallback, honest errors, and reproducible calibration."""
import json
from importlib import resources

import numpy as np
import pytest
from click.testing import CliRunner

from edgetailor.latency import cost as latency, profiles
from edgetailor.arch import zoo
from edgetailor.cli.main import main
from edgetailor.arch.layers import walk

REQUIRED = {"pixel1", "galaxy_s8", "iphone_x", "note10", "pixel2", "pixel3", "pixel3_4t", "pixel4_4t",
            "pixel4_int8_4t"}


def test_shipped_profiles_cover_the_required_devices():
    aliases = {a for p in profiles.shipped() for a in p.aliases}
    assert REQUIRED <= aliases


@pytest.mark.parametrize("device", sorted(REQUIRED) + ["galaxy_s8_int8", "iphone_x_tflite"])
def test_every_zoo_model_gets_a_positive_prediction(device):
    profile = profiles.load(device)
    for entry in zoo.entries():
        breakdown = profile.predict(entry.spec)
        assert breakdown.total_ms > 0
        assert all(l.latency_ms >= 0 for l in breakdown.layers)
        # no layer with real work is priced at zero: unknown layers never count as nothing
        for layer, priced in zip(walk(entry.spec), breakdown.layers):
            if layer.macs > 0:
                assert priced.latency_ms > 0, (entry.name, layer.name)


def test_table_entries_are_used_where_keys_match(tmp_path):
    # Shipped phone profiles carry no table (tables are fitted, not overriding); host profiles do.
    document = _profile_dict()
    spec = zoo.ZOO["proxylessnas_mobile"].spec
    document["table"] = {latency.layer_key(layer): 1.5 for layer in walk(spec)[:4]}
    path = tmp_path / "with_table.json"
    path.write_text(json.dumps(document))
    profile = profiles.load(str(path))
    breakdown = profile.predict(spec)
    from_table = [l for l in breakdown.layers if l.source == "table"]
    assert from_table and all(profile.table[l.key] == l.latency_ms for l in from_table)
    assert 0 < breakdown.table_share < 1


def test_predictions_grow_with_work():
    profile = profiles.load("pixel1")
    small = profile.predict(zoo.resolve("mobilenet_v2", width=0.5, resolution=128).spec).total_ms
    large = profile.predict(zoo.resolve("mobilenet_v2", width=1.4, resolution=224).spec).total_ms
    assert large > 3 * small


def test_fit_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.1, 2, latency.N_FEATURES)
    x = rng.uniform(0, 5, (200, latency.N_FEATURES))
    np.testing.assert_allclose(latency.fit(x, x @ truth), truth, rtol=1e-6)


def test_errors_are_reported_per_profile():
    pixel = profiles.load("pixel1")
    assert pixel.error["leave_one_family_out"]["n"] >= 30
    assert pixel.expected_error_pct == pixel.error["leave_one_family_out"]["mape_pct"]
    # the same folds priced by the per-device fit, for comparison
    assert pixel.error["per_device_fit_same_folds"]["leave_one_family_out"]["n"] == pixel.error["leave_one_family_out"]["n"]
    assert profiles.load("iphone_x").expected_error_pct is None  # one row: no out-of-sample error
    assert "note" in profiles.load("iphone_x").error


def _profile_dict(name="pixel1"):
    """A shipped profile's JSON, read from the installed package data."""
    return json.loads(resources.files("edgetailor.device_profiles").joinpath(f"{name}.json").read_text())


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("coefficients"), "missing field 'coefficients'"),
    (lambda d: d.update(unit="s"), "field 'unit' must be 'ms'"),
    (lambda d: d.update(coefficients=[-1] * latency.N_FEATURES), "non-negative numbers"),
    (lambda d: d.update(table={"ir_k3_c16@8x8x16": "fast"}), "table entry 'ir_k3_c16@8x8x16'"),
    (lambda d: d.update(schema="other/9"), "field 'schema' must be"),
])
def test_schema_errors_name_the_field(tmp_path, mutate, message):
    document = _profile_dict()
    mutate(document)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(document))
    with pytest.raises(profiles.ProfileError, match=message):
        profiles.load(str(path))


def test_profile_file_works_like_a_name(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(_profile_dict("note10")))
    spec = zoo.ZOO["mobilenet_v3_large_100"].spec
    assert profiles.load(str(path)).predict(spec).total_ms == profiles.load("note10").predict(spec).total_ms


def test_shipped_profiles_are_what_calibration_builds_from_shared_data(shared_data):
    from edgetailor.profiling.recipes import build_all

    for document in build_all(shared_data):
        shipped = _profile_dict(document["aliases"][0])
        assert json.loads(json.dumps(document)) == shipped, document["name"]


def test_cli_devices_and_latency():
    runner = CliRunner()
    listed = json.loads(runner.invoke(main, ["devices", "--json"]).output)
    assert REQUIRED <= {a for p in listed for a in p["aliases"]}
    result = runner.invoke(main, ["latency", "mobilenet_v2_100", "--device", "pixel1", "--json"])
    data = json.loads(result.output)
    assert data["latency_ms"] == pytest.approx(sum(l["latency_ms"] for l in data["layers"])
                                               + data["overhead_ms"], rel=1e-3)
    assert data["expected_error_pct"] > 0
    rows = json.loads(runner.invoke(main, ["zoo", "--device", "note10", "--json"]).output)
    assert all(r["latency_ms"] > 0 for r in rows)


@pytest.mark.parametrize("args, message", [
    (["latency", "mobilenet_v2_100", "--device", "pixl1"], "unknown device 'pixl1'; did you mean pixel1"),
    (["latency", "mobilenet_v2_100", "--device", "nothere.json"], "device profile file not found"),
    (["latency", "mobilenet_v2_100", "--device", "pixel1", "--resolution", "-5"], "not in the range"),
])
def test_latency_user_mistakes(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_op_keys_round_trip_for_every_zoo_op():
    for entry in zoo.entries():
        for layer in walk(entry.spec):
            for op in layer.ops:
                rebuilt = latency.op_from_key(latency.op_key(op))
                np.testing.assert_array_equal(latency.op_features(rebuilt), latency.op_features(op))


def test_lookup_table_keys_parse_into_the_blocks_they_name(shared_data):
    from edgetailor.profiling import calibration_data

    samples = calibration_data.lut_samples(shared_data / "luts" / "pixel1_proxylessnas_blocks.yaml", "relu6")
    by_name = {s.name: s for s in samples}
    block = by_name["expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:5-stride:2-idskip:0"]
    assert block.table_key == "ir_k5_s2_e3_c24_re6@112x112x16"
    assert block.layers[0].out_shape == (56, 56, 24)
    ofa = calibration_data.lut_samples(shared_data / "luts" / "note10_ofa_mbv3_r224.yaml", "relu", ofa=True)
    se_block = next(s for s in ofa if "-se:1-hs:1" in s.name and "expand:408" in s.name)
    assert "hse0.25_hs" in se_block.table_key and "e3_" in se_block.table_key


def test_profiles_compare_and_hash_by_name_version_and_content(tmp_path):
    pixel = profiles.load("pixel1")
    assert pixel == profiles.load("pixel")  # an alias loads the same profile
    assert len({pixel, profiles.load("pixel1"), profiles.load("galaxy_s8")}) == 2
    changed = _profile_dict()
    changed["table"] = {"ir_k3_e1_c16_re6@112x112x32": 3.0}
    path = tmp_path / "pixel1_edited.json"
    path.write_text(json.dumps(changed))
    edited = profiles.load(str(path))
    assert (edited.name, edited.version) == (pixel.name, pixel.version) and edited != pixel
