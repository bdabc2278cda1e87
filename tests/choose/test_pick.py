"""Pick mode and accuracy sources."""
import pytest

from edgetailor.choose import accuracy, pick
from edgetailor.arch import layers, zoo
from edgetailor.latency import profiles
from edgetailor.latency.cost import predict_layers
from edgetailor.arch.spec import SpecError


@pytest.fixture(scope="module")
def grid():
    return pick.Grid(profiles.load("pixel1"), families=("mobilenet_v2", "mobilenet_v3_large", "ghostnet"))


def test_vectorised_screen_equals_the_layer_walk(grid):
    profile = grid.profile
    for i in range(0, len(grid.rows), 3):
        family, width = grid.rows[i]
        for j in range(0, len(grid.resolutions), 7):
            spec = zoo.FAMILIES[family].spec(width, 1.0, int(grid.resolutions[j]))
            walked = layers.walk(spec)
            exact = predict_layers(walked, profile.coefficients, {}).total_ms
            assert grid.latency_ms[i, j] == pytest.approx(exact, rel=1e-9)
            assert grid.macs[i, j] == sum(l.macs for l in walked)


def test_pick_respects_the_budget_exactly(grid):
    for budget in (8, 25, 60):
        result = pick.pick(grid.profile, budget, grid)
        assert result.best.exact and result.best.latency_ms <= budget
        assert all(c.latency_ms <= budget for c in result.runners_up)
        assert all(c.top1 <= result.best.top1 for c in result.runners_up)
        assert result.best.top1 >= max(c.top1 for c in result.pareto if c.latency_ms <= budget * 0.8)


def test_pareto_front_is_monotone(grid):
    front = pick.pareto_front(grid)
    assert all(a.latency_ms <= b.latency_ms and a.top1 < b.top1 for a, b in zip(front, front[1:]))


def test_impossible_budget_names_the_fastest(grid):
    with pytest.raises(SpecError, match=r"no candidate meets 0.5 ms on pixel1.*the fastest is .* ms"):
        pick.pick(grid.profile, 0.5, grid)
    with pytest.raises(SpecError, match="positive"):
        pick.pick(grid.profile, -3, grid)


def test_published_variants_use_the_published_figure():
    result = accuracy.estimate(zoo.ZOO["mobilenet_v2_100"].spec, "mobilenet_v2", 1.0)
    assert (result.value, result.kind) == (71.8, "published")
    a1 = accuracy.estimate(zoo.FAMILIES["mnasnet_a1"].spec(0.75, 1.0, 160), "mnasnet_a1", 0.75)
    assert (a1.value, a1.kind) == (70.1, "published")  # MnasNet-A1 README table row


def test_estimates_carry_their_leave_one_out_error():
    result = accuracy.estimate(zoo.resolve("mobilenet_v2", width=0.6, resolution=176).spec,
                               "mobilenet_v2", 0.6)
    assert result.kind == "estimated" and 0 < result.expected_error_pp < 5
    assert 55 < result.value < 72
    narrower = accuracy.estimate(zoo.resolve("mobilenet_v2", width=0.5, resolution=128).spec,
                                 "mobilenet_v2", 0.5)
    assert narrower.value < result.value


def test_generic_estimator_for_search_specs():
    top1, kind, source = accuracy.generic_estimator()(zoo.ZOO["fbnet_c"].spec)
    assert kind == "estimated" and "generic" in source and 60 < top1 < 85


def test_pick_prices_the_classifier_that_ships():
    """The budget is checked against the latency of the classifier with the bundle's class count."""
    profile = profiles.load("pixel1")
    few = pick.pick(profile, 20.0, families=("mobilenet_v2",), num_classes=5).best
    assert few.latency_ms == pytest.approx(profile.predict(few.spec, 5).total_ms)
    many = pick.pick(profile, 20.0, families=("mobilenet_v2",)).best
    assert many.latency_ms == pytest.approx(profile.predict(many.spec, 1000).total_ms)


def test_picked_candidates_say_where_their_accuracy_comes_from(grid):
    best = pick.pick(grid.profile, 25, grid).best
    assert best.accuracy.kind in ("published", "estimated") and best.accuracy.source
    assert best.spec == zoo.FAMILIES[best.family].spec(best.width, 1.0, best.resolution)


def test_pretrained_only_picks_points_with_published_weights():
    from edgetailor.arch import pretrained

    profile = profiles.load("pixel1")
    result = pick.pick(profile, 30, pretrained_only=True, num_classes=5)
    for candidate in (result.best, *result.runners_up, *result.pareto):
        assert pretrained.has_start(candidate.family, candidate.width), candidate.label
    assert pretrained.source_for("mobilenet_v2", 0.6).width == 0.75  # channels dropped, never invented
    assert pretrained.source_for("efficientnet", 1.1) is None        # B2 is deeper: no depth-1.0 start
    narrow = pick.pick(profile, 30, families=("mobilenet_v2",), pretrained_only=True, max_width=0.5)
    assert narrow.best.family == "mobilenet_v2" and narrow.best.width <= 0.5
    with pytest.raises(SpecError, match="pretrained start"):
        pick.pick(profile, 30, families=("ghostnet",), pretrained_only=True)
