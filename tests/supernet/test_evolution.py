"""Searching a supernet without TensorFlow: genome rows, vectorised latency, evolution, accuracy predictor."""
import json

import numpy as np
import pytest

from edgetailor.arch import spaces
from edgetailor.errors import SupernetError
from edgetailor.latency import profiles
from edgetailor.latency.space import SpacePredictor
from edgetailor.supernet.evolution import EvolutionOptions, evolve
from edgetailor.supernet.genome import Genomes, RowLatency
from edgetailor.supernet.predictor import AccuracyPredictor, fit, kendall_tau
from edgetailor.supernet.subnet import ElasticSpace

ELASTIC = ElasticSpace.of(spaces.get("ofa_mbv3"))
LAYOUT = Genomes(ELASTIC, (64, 80, 96))


@pytest.fixture(scope="module")
def pixel1_latency():
    profile = profiles.load("pixel1")
    return profile, RowLatency(LAYOUT, SpacePredictor(LAYOUT.space(), profile, num_classes=6))


def additive_accuracy(seed: int = 0):
    """A synthetic accuracy: a fixed linear function of the one-hot encoding, 40-60 %."""
    weights = np.random.default_rng(seed).normal(size=LAYOUT.n_features)
    return lambda rows: 50.0 + np.tanh(LAYOUT.features(rows) @ weights / 4) * 10


def test_rows_round_trip_through_subnets_and_the_space_choice_vectors():
    rows = LAYOUT.random(np.random.default_rng(0), 50)
    space = LAYOUT.space()
    elastic = ElasticSpace.of(space)
    for row, choice in zip(rows, LAYOUT.choice_vectors(rows)):
        subnet = LAYOUT.subnet(row)
        np.testing.assert_array_equal(LAYOUT.row(subnet), row)
        assert elastic.from_choice(choice) == subnet


def test_features_are_once_for_alls_one_hot_encoding():
    """One resolution bit, then a kernel bit and an expand bit per running slot; none past the depth."""
    rows = LAYOUT.random(np.random.default_rng(1), 30)
    features = LAYOUT.features(rows)
    running = LAYOUT.active(rows).sum(axis=1)
    np.testing.assert_array_equal(features.sum(axis=1), 1 + 2 * running)
    for row, feature in zip(rows, features):
        subnet = LAYOUT.subnet(row)
        assert feature[LAYOUT.resolutions.index(subnet.resolution)] == 1
        assert sum(subnet.depths) == (feature.sum() - 1) / 2


def test_mutation_and_crossover_draw_genes_from_the_right_places():
    rng = np.random.default_rng(2)
    parents = LAYOUT.random(rng, 200)
    np.testing.assert_array_equal(LAYOUT.mutate(rng, parents, 0.0, 0.0), parents)
    changed = LAYOUT.mutate(rng, parents, 1.0, 1.0) != parents
    assert changed.mean() > 0.4  # every gene redrawn: two thirds differ for three choices
    other = LAYOUT.random(rng, 200)
    child = LAYOUT.crossover(rng, parents, other)
    assert np.all((child == parents) | (child == other))
    differ = parents != other
    assert (child == parents)[differ].mean() == pytest.approx(0.5, abs=0.05)
    assert np.all(child < LAYOUT.choices) and np.all(child >= 0)


def test_row_latency_equals_the_profile_on_the_decoded_spec(pixel1_latency):
    profile, latency = pixel1_latency
    rows = LAYOUT.random(np.random.default_rng(3), 12)
    for row, ms in zip(rows, latency(rows)):
        spec = ELASTIC.spec(LAYOUT.subnet(row))
        assert ms == pytest.approx(profile.predict(spec, 6).total_ms, rel=1e-9)


def test_evolution_finds_a_better_subnet_than_random_sampling_within_the_budget(pixel1_latency):
    _, latency = pixel1_latency
    accuracy = additive_accuracy()
    budget = 15.0
    result = evolve(LAYOUT, accuracy, latency, budget, EvolutionOptions(generations=60))
    assert result.latency_ms <= budget
    assert latency(result.row[None])[0] == pytest.approx(result.latency_ms)
    assert accuracy(result.row[None])[0] == pytest.approx(result.accuracy)
    rows = LAYOUT.random(np.random.default_rng(4), result.evaluated)
    assert result.accuracy > accuracy(rows[latency(rows) <= budget]).max()
    again = evolve(LAYOUT, accuracy, latency, budget, EvolutionOptions(generations=60))
    np.testing.assert_array_equal(again.row, result.row)  # seeded


def test_a_budget_below_the_fastest_subnet_names_it(pixel1_latency):
    _, latency = pixel1_latency
    fastest_ms = latency(LAYOUT.row(ELASTIC.smallest(64))[None])[0]
    with pytest.raises(SupernetError, match=rf"the fastest, r64 d2,2,2,2,2 .* {fastest_ms:.1f} ms"):
        evolve(LAYOUT, additive_accuracy(), latency, fastest_ms * 0.9)


def test_the_predictor_learns_an_accuracy_and_reports_its_held_out_error(tmp_path):
    rows = LAYOUT.random(np.random.default_rng(5), 150)
    top1 = additive_accuracy(1)(rows)
    predictor = fit(LAYOUT.features(rows), top1, "abc", steps=400)
    held = predictor.held_out
    assert (held.subnets, predictor.fitted_on) == (30, 120)
    assert held.mae_pp < 0.6 * held.baseline_mae_pp and held.kendall_tau > 0.5
    path = tmp_path / "p.npz"
    predictor.save(path)
    loaded = AccuracyPredictor.load(path, "abc")
    np.testing.assert_array_equal(loaded.predict(LAYOUT.features(rows)), predictor.predict(LAYOUT.features(rows)))
    assert loaded.held_out == held
    with np.load(path, allow_pickle=False) as data:  # plain arrays, no pickled objects
        assert json.loads(bytes(data["header"]))["fingerprint"] == "abc"


def test_a_predictor_for_other_weights_or_a_damaged_file_is_refused(tmp_path):
    rows = LAYOUT.random(np.random.default_rng(6), 10)
    predictor = fit(LAYOUT.features(rows), np.linspace(20, 30, 10), "abc", steps=5)
    predictor.save(tmp_path / "p.npz")
    with pytest.raises(SupernetError, match="fitted for another space"):
        AccuracyPredictor.load(tmp_path / "p.npz", "other")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(SupernetError, match="is not an accuracy predictor"):
        AccuracyPredictor.load(tmp_path / "bad.npz", "abc")
    with pytest.raises(SupernetError, match="at least 5"):
        fit(LAYOUT.features(rows[:4]), np.ones(4), "abc")


def test_kendall_tau():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau([1], [2]) is None  # one held-out sub-network ranks nothing
