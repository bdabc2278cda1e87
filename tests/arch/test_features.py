"""Feature endpoints by stride, computed without TensorFlow."""
import pytest

from edgetailor.arch import zoo
from edgetailor.arch.features import feature_info, last_at_stride


def test_ssdlite_endpoints_of_mobilenet_v3_large():
    spec = zoo.ZOO["mobilenet_v3_large_100"].spec
    # SSDLite takes layer_14/expansion_output (stride 16, 6 x 112) and the final stride-32 map.
    expansion = last_at_stride(spec, 16, "expansion")
    assert (expansion.name, expansion.channels) == ("stage5_0_expand_act", 672)
    assert last_at_stride(spec, 32).channels == 960


def test_ssdlite_endpoint_of_mobilenet_v2():
    expansion = last_at_stride(zoo.ZOO["mobilenet_v2_100"].spec, 16, "expansion")
    assert expansion.channels == 576  # layer_15/expansion_output: 6 x 96, before the stride


def test_lraspp_endpoints():
    spec = zoo.ZOO["mobilenet_v3_large_100"].spec
    assert last_at_stride(spec, 8).channels == 40
    assert last_at_stride(spec, 16).channels == 112


@pytest.mark.parametrize("name", [e.name for e in zoo.entries()])
def test_every_model_reaches_stride_32(name):
    infos = feature_info(zoo.ZOO[name].spec)
    assert max(info.stride for info in infos) == 32
    strides = [info.stride for info in infos if info.kind == "block"]
    assert strides == sorted(strides)


def test_missing_stride_is_a_clear_error():
    with pytest.raises(ValueError, match="no block endpoint at stride 64"):
        last_at_stride(zoo.ZOO["mobilenet_v2_100"].spec, 64)
