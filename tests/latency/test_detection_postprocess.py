"""The post-processing op's price: the host's fitted shape times a profile's device factor."""
import json

import numpy as np
import pytest

from edgetailor.arch.spec import decode
from edgetailor.errors import ProfileError
from edgetailor.latency import detection_postprocess as pp
from edgetailor.latency import profiles
from edgetailor.tasks.detection import ssdlite


def test_fit_recovers_a_cost_of_the_model_form_exactly():
    truth = np.array([0.01, 0.02, 0.0004, 0.004, 0.001])
    shapes = [(a, c, d) for a in (256, 1024, 4096) for c in (1, 20, 90) for d in (10, 100)]
    coefficients, error = pp.fit(shapes, [pp.terms(*s) @ truth for s in shapes])
    assert coefficients == pytest.approx(truth, rel=1e-6)
    assert error["leave_one_out_mape_pct"] < 1e-6 and error["n"] == len(shapes)


def test_the_shipped_measurement_prices_more_work_higher_on_every_profile():
    cost = pp.shipped()
    assert cost.reference_host_ms > 0 and len(cost.coefficients) == len(pp.TERMS)
    for profile in (profiles.load("pixel1"), profiles.load("galaxy_s8")):
        small = cost.price(profile, 500, 10, 10).latency_ms
        assert 0 < small < cost.price(profile, 4000, 10, 10).latency_ms
        assert small <= cost.price(profile, 500, 90, 10).latency_ms <= cost.price(profile, 500, 90, 100).latency_ms
    pixel1 = profiles.load("pixel1")
    factor = pixel1.predict(decode(cost.reference_spec)).total_ms / cost.reference_host_ms
    assert cost.price(pixel1, 2034, 90, 25).latency_ms == pytest.approx(cost.host_ms(2034, 90, 25) * factor)


def test_a_detector_is_priced_with_its_post_processing():
    spec = ssdlite.detection_backbone("mobilenet_v3_small", 0.5, 160)
    config = ssdlite.SSDLiteConfig(num_classes=6)
    pixel1 = profiles.load("pixel1")
    whole = ssdlite.predict_latency(spec, config, pixel1, max_detections=10)
    layers = pixel1.predict_layers(ssdlite.layers(spec, config))
    last = whole.layers[-1]
    assert last.name == "detection.postprocess" and last.latency_ms > 0
    assert last.key == f"detection_postprocess@{ssdlite.num_anchors(spec, config)}x6->10"
    assert whole.total_ms == pytest.approx(layers.total_ms + last.latency_ms)
    assert ssdlite.predict_latency(spec, config, pixel1, max_detections=100).total_ms > whole.total_ms


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(schema="other/1"), "not an edgetailor.op-cost/1 file"),
    (lambda d: d.update(coefficients=[-1.0, 0, 0, 0, 0]), "non-negative coefficients"),
    (lambda d: d["reference"].update(host_ms=0), "positive reference time"),
])
def test_a_damaged_measurement_file_is_a_one_line_error(edit, message):
    from importlib import resources

    data = json.loads((resources.files("edgetailor.device_profiles") / "ops" / pp.DATA).read_text())
    edit(data)
    with pytest.raises(ProfileError, match=message):
        pp.from_dict(data, "x.json")
