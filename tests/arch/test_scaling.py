"""Scaling rules against the reference implementations' own numbers."""
import pytest

from edgetailor.arch import scaling, zoo
from edgetailor.arch.layers import walk
from edgetailor.arch.spec import SpecError


@pytest.mark.parametrize("value, divisor, expected", [
    (32 * 0.35, 8, 16), (16 * 0.35, 8, 8), (18, 8, 24), (88.00008, 8, 88), (184, 8, 184),
    (20.8, 8, 24), (18, 4, 20), (1280 * 1.4, 8, 1792), (32 * 1.2, 8, 40), (3, 8, 8),
])
def test_make_divisible_matches_keras_and_tpu(value, divisor, expected):
    assert scaling.make_divisible(value, divisor) == expected


def test_round_repeats_is_ceiling():
    assert [scaling.round_repeats(r, 3.1) for r in (1, 2, 3, 4)] == [4, 7, 10, 13]


def test_compound_coefficients():
    width, depth, resolution = scaling.compound_coefficients(1)
    assert (width, depth, resolution) == (1.1, 1.2, 256)
    assert scaling.compound_coefficients(0) == (1.0, 1.0, 224)


def _channels(spec):
    return [layer.out_shape[2] for layer in walk(spec, None)]


def test_efficientnet_b7_scales_stem_head_and_depth():
    b7 = zoo.ZOO["efficientnet_b7"].spec
    assert b7.stem[0].channels == 64 and b7.head[0].channels == 2560
    assert [b.repeats for b in b7.blocks] == [4, 7, 7, 10, 10, 13, 4]
    assert b7.resolution == 600


def test_efficientnet_lite_keeps_stem_head_and_end_repeats():
    lite4 = zoo.ZOO["efficientnet_lite4"].spec
    assert lite4.stem[0].channels == 32 and lite4.head[0].channels == 1280
    assert [b.repeats for b in lite4.blocks] == [1, 4, 4, 6, 6, 8, 1]
    # block 0 projects from the fixed 32-channel stem to round_filters(16 * 1.4) = 24
    assert walk(lite4, None)[1].out_shape[2] == 24


def test_mobilenet_v2_keras_rounding():
    v2 = zoo.ZOO["mobilenet_v2_035"].spec
    assert v2.stem[0].channels == 16 and v2.blocks[0].channels == 8 and v2.head[0].channels == 1280
    assert zoo.ZOO["mobilenet_v2_140"].spec.head[0].channels == 1792


def test_mobilenet_v3_large_075_matches_keras_layer_widths():
    # Keras 2.15 MobileNetV3Large(alpha=0.75) block outputs (measured from the Keras model)
    widths = _channels(zoo.ZOO["mobilenet_v3_large_075"].spec)
    assert widths[:16] == [16, 16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 88, 88, 120, 120, 120]
    assert widths[16:] == [720, 720, 1280]


def test_mobilenet_v1_truncates():
    v1 = zoo.FAMILIES["mobilenet_v1"].spec(width=0.6)
    assert v1.stem[0].channels == 19 and v1.blocks[-1].channels == 614


def test_shufflenet_uses_the_published_channel_table():
    spec = zoo.ZOO["shufflenet_v2_050"].spec
    assert [b.channels for b in spec.blocks] == [48, 96, 192]
    assert spec.head[0].channels == 1024
    assert [b.channels for b in zoo.ZOO["shufflenet_v2_200"].spec.blocks] == [244, 488, 976]


def test_scaling_is_pure():
    base = zoo.FAMILIES["efficientnet"].spec()
    before = base.encode()
    scaled = scaling.scale(base, 1.4, 1.8, 380)
    assert base.encode() == before and scaled is not base
    assert (scaled.width, scaled.depth, scaled.resolution) == (1.4, 1.8, 380)


def test_compound_scale_from_any_spec():
    spec = zoo.ZOO["mnasnet_a1_100"].spec
    scaled = scaling.compound_scale(spec, 2)
    assert scaled.resolution == 296 and scaled.width == pytest.approx(1.21)
    assert sum(b.repeats for b in scaled.blocks) > sum(b.repeats for b in spec.blocks)


@pytest.mark.parametrize("width, depth", [(0, 1.0), (float("nan"), 1.0), (float("inf"), 1.0),
                                          (1.0, float("nan"))])
def test_bad_multipliers_are_errors(width, depth):
    with pytest.raises(SpecError, match="must be finite and positive"):
        scaling.scale(zoo.FAMILIES["efficientnet"].spec(), width=width, depth=depth)
