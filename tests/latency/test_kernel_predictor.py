"""Kernel-level prediction: kernel detection, the trees' plain-array export, unknown kernel types."""
import hashlib
import json

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

from edgetailor._io import write_bytes, write_json
from edgetailor.arch.layers import walk
from edgetailor.arch.spec import decode
from edgetailor.errors import ProfileError
from edgetailor.latency import kernel_predictor, profiles
from edgetailor.latency.kernel_predictor import KERNEL_FEATURES, KernelPredictor, detect_kernels, layer_kernels
from edgetailor.profiling.kernels_fit import export

SPEC = decode("res32 | conv_k3_s2_c16_hs | ir_k5_s2_e3_c24_hse0.25_hs,ir_k3_e6_c24_re6"
              " | head:conv_k1_c96_re,pool,fc_c128_hs")


def _kinds(layer):
    return [(k.type, k.op.act) + (("pad",) if k.padded else ()) for k in layer_kernels(layer)]


def test_kernels_group_ops_as_xnnpack_runs_them():
    stem, strided, residual, head, pool, fc, classifier = walk(SPEC)
    # hard-swish is its own kernel after a convolution; relu/relu6 and the bias stay in it
    assert _kinds(stem) == [("conv", "linear"), ("hswish", "hswish")]
    assert _kinds(strided) == [("pwconv", "linear"), ("hswish", "hswish"), ("dwconv", "linear", "pad"),
                               ("hswish", "hswish"), ("se", "hsigmoid"), ("pwconv", "linear")]
    assert _kinds(residual) == [("pwconv", "relu6"), ("dwconv", "relu6"), ("pwconv", "linear"), ("add", "linear")]
    assert [k.type for layer in (head, pool, fc, classifier) for k in layer_kernels(layer)] == \
        ["pwconv", "pool", "fc", "fc"]
    se = layer_kernels(strided)[4]
    assert se.se_channels == 16 and se.op.in_shape == se.op.out_shape == (8, 8, 48)
    assert len(detect_kernels(walk(SPEC))) == 16


def test_features_are_nn_meters_seven():
    pw = layer_kernels(walk(SPEC)[1])[0]
    assert KERNEL_FEATURES[:7] == ("hw", "cin", "cout", "k", "s", "mflops", "kparams")
    assert pw.features().tolist() == [16, 16, 48, 1, 1, 2 * pw.op.macs / 1e6, pw.op.params / 1e3,
                                      16 * 16 * 16 / 1e6, 16 * 16 * 48 / 1e6]


@pytest.mark.parametrize("model", [RandomForestRegressor(n_estimators=12, random_state=0),
                                   GradientBoostingRegressor(n_estimators=40, subsample=0.8, random_state=0)])
def test_exported_trees_predict_exactly_what_sklearn_predicts(tmp_path, model):
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 300, (200, len(KERNEL_FEATURES)))
    y = np.log(0.01 + x[:, 0] * x[:, 1] * 1e-4) + rng.normal(0, 0.05, 200)
    model.fit(x, y)
    predictor = KernelPredictor({"conv": export(model)}, {"conv": np.array([0.5, 0, 0, 0.01])}, 0.01, {})
    write_bytes(tmp_path / "k.npz", predictor.to_npz_bytes())
    loaded = kernel_predictor.load(tmp_path / "k.npz")
    probe = np.vstack([rng.uniform(0, 320, (500, len(KERNEL_FEATURES))), x])  # unseen and training rows
    assert np.array_equal(loaded.ensembles["conv"].predict(probe), model.predict(probe))
    baseline = np.maximum(0.5 * probe[:, KERNEL_FEATURES.index("mflops")] + 0.01, 1e-4)
    assert np.allclose(loaded.type_ms("conv", probe), baseline * np.exp(model.predict(probe)), rtol=1e-12)


def _tiny_predictor(types) -> KernelPredictor:
    x = np.random.default_rng(1).uniform(1, 100, (30, len(KERNEL_FEATURES)))
    model = RandomForestRegressor(n_estimators=3, random_state=0).fit(x, np.log(x[:, 0] / 100))
    return KernelPredictor({kind: export(model) for kind in types}, {kind: np.array([0.01, 0, 0, 0.001])
                                                                     for kind in types}, 0.02, {})


def test_an_unknown_kernel_type_is_an_error_naming_it():
    predictor = _tiny_predictor(["conv", "pwconv", "hswish"])
    with pytest.raises(ProfileError, match=r"kernel type\(s\) add, dwconv, fc, pool, se"):
        predictor.predict_ms(walk(SPEC))
    full = _tiny_predictor({k.type for k in detect_kernels(walk(SPEC))})
    assert full.predict_ms(walk(SPEC)) > full.overhead_ms


def _profile_with_kernels(tmp_path, predictor):
    base = profiles.shipped()[0]
    data = json.loads(json.dumps({
        "schema": profiles.SCHEMA, "name": "host-test", "aliases": [], "version": "1", "device": "here",
        "runtime": "tflite", "setting": "test", "unit": "ms", "provenance": [], "features": list(profiles.FEATURES),
        "coefficients": base.coefficients.tolist(), "table": {}, "error": {}, "expected_error_pct": None,
        "calibration": []}))
    blob = predictor.to_npz_bytes()
    write_bytes(tmp_path / "host.json.kernels.npz", blob)
    data["kernel_predictor"] = {"file": "host.json.kernels.npz", "sha256": hashlib.sha256(blob).hexdigest()}
    write_json(tmp_path / "host.json", data)
    return tmp_path / "host.json"


def test_a_profile_predicts_with_its_kernel_predictor_and_says_where_it_could_not(tmp_path):
    all_types = {k.type for k in detect_kernels(walk(SPEC))}
    path = _profile_with_kernels(tmp_path, _tiny_predictor(all_types))
    breakdown = profiles.load_file(path).predict(SPEC)
    assert {l.source for l in breakdown.layers} == {"kernels"}
    assert breakdown.overhead_ms == 0.02
    partial = _profile_with_kernels(tmp_path, _tiny_predictor(all_types - {"se"}))
    sources = {l.name: l.source for l in profiles.load_file(partial).predict(SPEC).layers}
    assert sources["stage1.0"] == "model" and sources["stage1.1"] == "kernels"


def test_a_kernel_predictor_that_is_not_the_recorded_one_is_refused(tmp_path):
    path = _profile_with_kernels(tmp_path, _tiny_predictor({"conv"}))
    write_bytes(tmp_path / "host.json.kernels.npz", _tiny_predictor({"pwconv"}).to_npz_bytes())
    with pytest.raises(ProfileError, match="sha256 differs"):
        profiles.load_file(path)
    (tmp_path / "host.json.kernels.npz").unlink()
    with pytest.raises(ProfileError, match="cannot be read"):
        profiles.load_file(path)


def test_in_network_terms_price_each_kernel_and_round_trip_through_the_npz(tmp_path):
    predictor = _tiny_predictor({k.type for k in detect_kernels(walk(SPEC))})
    kernels = detect_kernels(walk(SPEC))
    assert predictor.predict_ms(walk(SPEC)) == pytest.approx(predictor.overhead_ms + predictor.kernel_ms(kernels).sum())
    terms = dict.fromkeys(kernel_predictor.NETWORK_TERMS, 0.0)
    terms.update(conv=2.0, dwconv=1.0, se=1.0, pool=1.0, attention=1.0, elementwise=1.0, weight_mb=0.5, kernel=0.01)
    scaled = KernelPredictor(predictor.ensembles, predictor.baselines, predictor.overhead_ms, {},
                             np.array(list(terms.values())))
    alone = predictor.kernel_ms(kernels)
    conv = np.array([k.type in ("conv", "pwconv", "fc") for k in kernels])
    weight_mb = np.array([k.op.params * 4e-6 for k in kernels])
    expected = np.where(conv, 2.0, 1.0) * alone + 0.5 * weight_mb + 0.01
    assert np.allclose(scaled.in_network_ms(kernels), expected)
    write_bytes(tmp_path / "k.npz", scaled.to_npz_bytes())
    loaded = kernel_predictor.load(tmp_path / "k.npz")
    assert np.array_equal(loaded.network, scaled.network)
    assert loaded.predict_ms(walk(SPEC)) == pytest.approx(predictor.overhead_ms + expected.sum())


def test_an_input_conversion_is_priced_per_input_element_in_the_model_and_its_breakdown(tmp_path):
    import dataclasses

    plain = _tiny_predictor({k.type for k in detect_kernels(walk(SPEC))})
    int8 = dataclasses.replace(plain, input_ms_per_melement=2.5)  # ms per million elements
    conversion = 2.5 * 3 * SPEC.resolution ** 2 / 1e6
    assert int8.predict_ms(walk(SPEC)) == pytest.approx(plain.predict_ms(walk(SPEC)) + conversion)
    write_bytes(tmp_path / "k.npz", int8.to_npz_bytes())
    assert kernel_predictor.load(tmp_path / "k.npz").input_ms_per_melement == 2.5
    breakdown = profiles.load_file(_profile_with_kernels(tmp_path, int8)).predict(SPEC)
    assert breakdown.overhead_ms == pytest.approx(plain.overhead_ms + conversion)
    assert breakdown.total_ms == pytest.approx(int8.predict_ms(walk(SPEC)))
