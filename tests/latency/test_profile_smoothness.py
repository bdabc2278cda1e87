"""Shipped phone profiles are smooth and monotone in width and resolution, for every pick family.

Margin of the jump check: the ratio of predictions at neighbouring resolutions (8 px apart) may
exceed the MACs ratio by at most 6%. Over the full grid (every profile x family x widths 0.35,
0.5, 0.75, 1, 1.25, 1.4 x 96-320 px every 8 px) the op model's largest excess is 2.1% (pixel3_int8_4t,
EfficientNet 1.0, 104 -> 112 px; 2.8% with the profiles of before the joint fit's regularisation was
chosen by cross-validation): late, stride-32 layers carry more of the time than of the MACs. The
lookup-table override the joint calibration removed made 16.3% at 216 -> 224 px (pixel1,
efficientnet_lite 1.0) and latency that fell from 224 to 232 px.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from edgetailor.arch import zoo
from edgetailor.arch.layers import totals, walk
from edgetailor.choose.pick import FAMILIES
from edgetailor.latency import profiles
from edgetailor.latency.cost import model_features

SHIPPED = profiles.shipped()
COEFFICIENTS = np.array([p.coefficients for p in SHIPPED])  # [profiles, features]
MARGIN = 1.06
WIDTH_TOLERANCE = 0.01


def _priced(family: str, width: float, resolution: int) -> tuple[np.ndarray, int]:
    """Every shipped profile's prediction (ms) and the MACs of one point."""
    layers = walk(zoo.resolve(family, width=width, resolution=resolution).spec)
    return COEFFICIENTS @ model_features(layers), totals(layers)[1]


def test_no_shipped_profile_lets_a_table_override_the_model():
    assert all(not p.table for p in SHIPPED)
    layers = walk(zoo.resolve("mobilenet_v2", width=1.0, resolution=224).spec)
    for p in SHIPPED:  # so the features' dot product is the profile's prediction
        assert p.predict_layers(layers).total_ms == pytest.approx(model_features(layers) @ p.coefficients)


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=8, deadline=None, derandomize=True)
@given(width=st.floats(0.35, 1.3), step=st.floats(0.02, 0.1), resolution=st.integers(12, 39).map(lambda k: 8 * k))
def test_latency_is_monotone_and_smooth(family, width, step, resolution):
    ms, macs = _priced(family, width, resolution)
    wider, _ = _priced(family, width + step, resolution)
    larger, larger_macs = _priced(family, width, resolution + 8)
    # Width rounding can drop a residual add (proxylessnas_cpu 0.43 -> 0.49: the stem grows to 24
    # channels and no longer matches the first block's 16), one op fewer: 0.6% less on pixel3_int8_4t.
    assert np.all(wider >= ms * (1 - WIDTH_TOLERANCE)), [p.name for p, a, b in zip(SHIPPED, ms, wider) if b < a]
    assert np.all(larger >= ms - 1e-9), [p.name for p, a, b in zip(SHIPPED, ms, larger) if b < a]
    excess = (larger / ms) / (larger_macs / macs)
    assert np.all(excess <= MARGIN), [(p.name, e) for p, e in zip(SHIPPED, excess) if e > MARGIN]


@pytest.mark.parametrize("family", FAMILIES)
def test_no_jump_at_224_px(family):
    ms, macs = zip(*(_priced(family, 1.0, r) for r in (216, 224, 232)))
    for before, after, m0, m1 in ((ms[0], ms[1], macs[0], macs[1]), (ms[1], ms[2], macs[1], macs[2])):
        assert np.all(after >= before) and np.all((after / before) / (m1 / m0) <= MARGIN)


def test_mobilenet_v2_224_over_192_follows_the_published_ratio():
    pixel1 = profiles.load("pixel1")
    ratio = (pixel1.predict(zoo.resolve("mobilenet_v2", width=1.0, resolution=224).spec).total_ms
             / pixel1.predict(zoo.resolve("mobilenet_v2", width=1.0, resolution=192).spec).total_ms)
    assert 1.25 < ratio < 1.45  # published Pixel timings 1.34, MACs 1.36; the table override gave 1.53
