"""Search spaces decode to ordinary specs; the vectorised predictor equals the per-spec one."""
import numpy as np
import pytest

from edgetailor.arch import layers, spaces
from edgetailor.latency import profiles
from edgetailor.latency.space import SpacePredictor
from edgetailor.arch.spec import SpecError, decode


@pytest.mark.parametrize("name", list(spaces.SPACES))
def test_samples_decode_to_valid_round_tripping_specs(name):
    space = spaces.get(name)
    for row in space.sample(np.random.default_rng(0), 25):
        spec = space.decode(row)
        assert decode(spec.encode()) == spec
        params, macs = layers.count(spec)
        assert params > 0 and macs > 0


@pytest.mark.parametrize("name", list(spaces.SPACES))
@pytest.mark.parametrize("device", ["pixel1", "note10"])
def test_vectorised_prediction_equals_per_spec_prediction(name, device):
    space, profile = spaces.get(name), profiles.load(device)
    choices = space.sample(np.random.default_rng(1), 30)
    fast = SpacePredictor(space, profile).predict(choices)
    slow = [profile.predict(space.decode(row)).total_ms for row in choices]
    np.testing.assert_allclose(fast, slow, rtol=1e-9)


def test_mnasnet_space_reproduces_its_choices():
    space = spaces.get("mnasnet")
    choice = space.sample(np.random.default_rng(2), 1)[0]
    spec = space.decode(choice)
    assert len(spec.stages) == 7 and spec.head[0].channels == 1280
    first_stage_depth = space.stages[0].depths[choice[1]]
    assert len(spec.stages[0]) == first_stage_depth


def test_no_skip_where_the_shape_changes():
    space = spaces.get("proxyless")
    for row in space.sample(np.random.default_rng(3), 200):
        for stage in space.decode(row).stages:
            assert stage[0].kind != "skip"


def test_bad_choice_vectors_and_names():
    with pytest.raises(SpecError, match="does not fit space 'fbnet'"):
        spaces.get("fbnet").decode([0, 1, 2])
    with pytest.raises(SpecError, match="unknown search space 'darts'"):
        spaces.get("darts")
