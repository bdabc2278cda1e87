"""Every zoo entry against its published figures, and the layer walk against the built model."""
import pytest

from edgetailor.arch import layers, zoo

ENTRIES = [entry.name for entry in zoo.entries()]
# The Keras build is checked on the smallest entry of each set of block variants (kind, activation,
# squeeze-excite, stride, posenc): the builder's code paths are those (every entry's walk is checked
# against its paper above). Building every entry (EfficientNet B1-B7, G-GhostNet 4-16 GF,
# EfficientFormerV2-L, ...) cost minutes of the suite. UniNet's blocks are built walk-exact on a
# 32 px spec in tests/converters/test_uninet_convert.py (its smallest entry, B0, took ~35 s here).
BUILT_TINY_ELSEWHERE = {"uconv", "ldsm", "lgdsm", "mhsa"}


def _smallest_per_kinds() -> list[str]:
    chosen = {}
    for entry in zoo.entries():
        spec = entry.spec
        if BUILT_TINY_ELSEWHERE & {b.kind for b in spec.blocks}:
            continue
        kinds = frozenset((b.kind, b.act, b.se, b.hard_se, b.stride, b.posenc)
                          for b in spec.stem + spec.blocks + spec.head)
        macs = layers.count(spec)[1]
        if kinds not in chosen or macs < chosen[kinds][0]:
            chosen[kinds] = (macs, entry.name)
    return sorted(name for _, name in chosen.values())


BUILDS = _smallest_per_kinds()
REQUIRED = (["mobilenet_v1_100"] + [f"mobilenet_v2_{w}" for w in ("035", "050", "075", "100", "130", "140")]
            + [f"mobilenet_v3_{s}_{w}" for s in ("large", "small") for w in ("075", "100")]
            + ["mobilenet_v3_large_minimal_100", "mobilenet_v3_small_minimal_100",
               "mnasnet_a1_100", "mnasnet_b1_100", "mnasnet_small"]
            + [f"efficientnet_b{i}" for i in range(8)] + [f"efficientnet_lite{i}" for i in range(5)]
            + ["fbnet_a", "fbnet_b", "fbnet_c", "proxylessnas_mobile", "proxylessnas_cpu",
               "proxylessnas_gpu", "single_path_nas", "ghostnet_100"]
            + [f"shufflenet_v2_{w}" for w in ("050", "100", "150", "200")])


def test_registry_holds_the_required_models():
    assert set(REQUIRED) <= set(ENTRIES)


@pytest.mark.parametrize("name", ENTRIES)
def test_matches_published_figures(name):
    """Params within 2% (or 0.05 M: papers quote 0.1 M), MACs within 5%, unless a note says why."""
    entry = zoo.ZOO[name]
    pub = entry.published
    assert pub.source, "every published figure needs its source"
    params, macs = layers.count(entry.spec)
    if pub.params_m is None or pub.macs_m is None:
        assert pub.note, "a missing published figure needs a note saying why"
    if pub.params_m is not None:
        gap = abs(params / 1e6 - pub.params_m)
        assert gap <= max(0.02 * pub.params_m, 0.05), f"params {params / 1e6:.3f} M vs {pub.params_m}"
    if pub.macs_m is not None:
        ratio = macs / 1e6 / pub.macs_m
        tolerance = 0.25 if pub.note else 0.05
        assert abs(ratio - 1) <= tolerance, f"MACs {macs / 1e6:.1f} M vs {pub.macs_m}"
    assert pub.top1 is None or 50 < pub.top1 < 90


@pytest.mark.parametrize("name", BUILDS)
def test_layer_walk_matches_built_keras_model(name):
    from edgetailor.builder import network as builder

    spec = zoo.ZOO[name].spec
    walked = layers.walk(spec, 1000)
    model = builder.build(spec)
    assert model.count_params() == sum(layer.keras_params for layer in walked)
    assert builder.keras_macs(model) == sum(layer.macs for layer in walked)
    assert model.output_shape == (None, 1000)


def test_any_width_and_resolution_of_a_family():
    resolved = zoo.resolve("mobilenet_v2", width=0.6, resolution=176)
    assert resolved.spec.resolution == 176 and resolved.spec.width == 0.6
    assert resolved.family.name == "mobilenet_v2"
    narrower = zoo.resolve("mobilenet_v3_large_100", width=0.5)
    assert layers.count(narrower.spec)[0] < layers.count(zoo.ZOO["mobilenet_v3_large_100"].spec)[0]


def test_inline_spec_resolves():
    resolved = zoo.resolve("res96 | conv_k3_s2_c16_re | ir_k3_s2_e6_c24_re | head:pool")
    assert resolved.name == "custom" and resolved.spec.resolution == 96


def test_unknown_names_suggest_close_ones():
    with pytest.raises(zoo.UnknownArchitecture, match="did you mean .*mobilenet_v2_100"):
        zoo.resolve("mobilenet_v2_10")
    with pytest.raises(zoo.UnknownArchitecture, match="see `edgetailor zoo`"):
        zoo.resolve("vgg")


@pytest.mark.parametrize("name", ENTRIES)
def test_names_are_snake_case_with_width_suffix(name):
    entry = zoo.ZOO[name]
    assert name == name.lower() and " " not in name
    if name.rsplit("_", 1)[-1].isdigit() and entry.family not in ("efficientnet",):
        assert name.endswith(f"_{round(entry.width * 100):03d}")
