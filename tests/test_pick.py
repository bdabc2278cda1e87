"""Pick mode and accuracy sources."""
import numpy as np
import pytest

from edgetailor import accuracy, layers, pick, profiles, zoo
from edgetailor.latency import predict_layers
from edgetailor.spec import SpecError


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
    assert (result.top1, result.kind) == (71.8, "published")
    a1 = accuracy.estimate(zoo.FAMILIES["mnasnet_a1"].spec(0.75, 1.0, 160), "mnasnet_a1", 0.75)
    assert (a1.top1, a1.kind) == (70.1, "published")  # MnasNet-A1 README table row


def test_estimates_carry_their_leave_one_out_error():
    result = accuracy.estimate(zoo.resolve("mobilenet_v2", width=0.6, resolution=176).spec,
                               "mobilenet_v2", 0.6)
    assert result.kind == "estimated" and 0 < result.expected_error_pp < 5
    assert 55 < result.top1 < 72
    narrower = accuracy.estimate(zoo.resolve("mobilenet_v2", width=0.5, resolution=128).spec,
                                 "mobilenet_v2", 0.5)
    assert narrower.top1 < result.top1


def test_generic_estimator_for_search_specs():
    top1, kind, source = accuracy.generic_estimator()(zoo.ZOO["fbnet_c"].spec)
    assert kind == "estimated" and "generic" in source and 60 < top1 < 85
