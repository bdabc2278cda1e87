"""PruNet on the supernet: expected latency at a one-hot choice is the profile's price, gradients reach
the architecture logits, pruning removes blocks and layers (and their MACs) while the extracted network
still computes the supernet's output, a Prunode moves towards its stronger path, bad settings fail."""
import dataclasses

import numpy as np
import pytest

from edgetailor.arch import spaces
from edgetailor.errors import SearchError
from edgetailor.latency import profiles
from edgetailor.supernet import searches

SPACE = spaces.get("single_path_proxy")
CLASSES = 4
BIG = 1e3  # a logit gap whose softmax (Gumbel noise and temperature 5 included) is exactly one-hot in float32


def _searcher(space, options=None):
    import tensorflow as tf

    from edgetailor.supernet.network import Supernet
    from edgetailor.supernet.prunet import DEFAULTS, PruNet
    from edgetailor.supernet.single_path_ops import tables
    from edgetailor.supernet.subnet import ElasticSpace

    tf.random.set_seed(0)
    elastic = ElasticSpace.of(space)
    net = Supernet(elastic, CLASSES, dropout=0.0)
    searcher = PruNet(net, tables(elastic, profiles.load("pixel1"), 32, CLASSES),
                      {**DEFAULTS, "budget_ms": 0.5, **(options or {})})
    searcher.begin_epoch(5, 10)  # past the warm-up
    return searcher


@pytest.fixture(scope="module")
def built():
    import tensorflow as tf

    return _searcher(SPACE), tf.random.stateless_uniform([4, 32, 32, 3], (1, 2), -1.0, 1.0)


def _one_hot(searcher, choices, paths):
    """Slot i's candidate ``choices[i]`` (kernel index, or len(kernels) for skip) and Prunode path."""
    for i, (c, p) in enumerate(zip(choices, paths)):
        logits = np.full(searcher.logits[i].shape[0], -BIG, np.float32)
        logits[c] = BIG
        searcher.logits[i].assign(logits)
        searcher.prunode_logits[i].assign(np.tile(np.array([BIG, -BIG] if p == 0 else [-BIG, BIG], np.float32),
                                                  (searcher.prunode_logits[i].shape[0], 1)))


def test_expected_latency_at_a_one_hot_choice_is_the_profiles_price(built):
    from edgetailor.supernet.single_path_ops import compact

    searcher, images = built
    rng = np.random.default_rng(0)
    for _ in range(2):
        choices = [int(rng.integers(len(s.kernels) + int(s.skippable))) for s in searcher.slots]
        _one_hot(searcher, choices, rng.integers(2, size=len(choices)))
        _, expected = searcher.forward(images, training=True)
        subnet, _ = compact(searcher.net.elastic, searcher.decision(), 32)
        spec = searcher.net.elastic.spec(subnet)
        assert float(expected) == pytest.approx(profiles.load("pixel1").predict(spec, CLASSES).total_ms, rel=1e-6)


def test_gradients_reach_the_architecture_logits(built):
    import tensorflow as tf

    searcher, images = built
    for variable in searcher.logits + searcher.prunode_logits:
        variable.assign(tf.zeros_like(variable))
    with tf.GradientTape() as tape:
        logits, expected = searcher.forward(images, training=True)
        ce = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy([0, 1, 2, 3], logits, from_logits=True))
        loss = ce + searcher.latency_loss(expected)
    grads = tape.gradient(loss, searcher.logits + searcher.prunode_logits)
    assert all(np.abs(g.numpy()).max() > 0 for g in grads)


def test_pruning_removes_blocks_and_layers_and_the_extracted_network_still_matches():
    from edgetailor.supernet.single_path_ops import extract
    import tensorflow as tf

    searcher = _searcher(SPACE)
    images = tf.random.stateless_uniform([4, 32, 32, 3], (3, 4), -1.0, 1.0)
    before = searcher.forward_macs()
    # slot 1 (stage 1, layer 2): skip likeliest -> the layer goes; slot 0: 5x5 unlikely -> that block goes
    searcher.logits[1].assign([0.0, 0.0, 3.0])
    searcher.logits[0].assign([3.0, 0.0])
    report = searcher.end_epoch(5, 10)
    assert report["layers_pruned"] == 1 and report["blocks_pruned"] == 1
    assert searcher.alive[1].numpy()[-1] == 0 and searcher.alive[0].numpy().tolist() == [1.0, 0.0]
    table = searcher.table
    assert before - searcher.forward_macs() == table.macs[1, :, -1].sum() + table.macs[0, 1, -1]
    choices = [0, 0, 1, 0, 2, 1, 1, 2, 0]  # per slot: kernel index, or 2 = skip (slots 0, 3, 6 cannot)
    _one_hot(searcher, choices, [i % 2 for i in range(len(choices))])
    searcher.logits[0].assign([-BIG, BIG])  # the pruned 5x5 wins its logits but is gone: 3x3 stays
    decision = searcher.decision()
    assert decision.kernels[0] == 0 and not decision.kept[1]
    logits, _ = searcher.forward(images, training=True)
    _, model = extract(searcher.net, decision, 32, classifier_activation=None)
    np.testing.assert_allclose(model(images, training=True).numpy(), logits.numpy(), atol=1e-5, rtol=1e-5)
    assert np.abs(logits.numpy()).max() > 1e-2


def test_a_prunode_moves_towards_its_stronger_path():
    import tensorflow as tf

    stages = tuple(dataclasses.replace(s, ops=tuple(f"ir_k{k}_e{e}_re" for k in (3, 5) for e in (3, 4, 6)))
                   for s in SPACE.stages[:1])
    searcher = _searcher(dataclasses.replace(SPACE, name="prunode_test", stages=stages), {"pruning": False})
    assert searcher._state(0)[2] == [(1, 2), (1, 2)]  # e4 | e6 to start
    searcher.prunode_logits[0].assign([[3.0, 0.0], [0.0, 0.0]])
    searcher.end_epoch(5, 10)
    assert searcher._state(0)[2] == [(0, 1), (1, 2)]
    assert np.all(searcher.prunode_logits[0].numpy()[0] == 0)
    assert searcher.decision().expands[0] == 0  # a tie goes to the narrower path (e3), as the forward's argmax
    assert tf.reduce_all(searcher.alive[0] > 0)  # pruning off: nothing removed


def test_bad_settings_are_one_line_errors(tmp_path):
    request = searches.Request("prunet", "single_path_proxy", profiles.load("pixel1"), 1.0, "shapes", tmp_path / "o",
                               settings={"pruning": "yes"})
    with pytest.raises(SearchError, match="'pruning' must be a bool"):
        searches.run(request)
    with pytest.raises(SearchError, match="no setting 'prune'"):
        searches.run(dataclasses.replace(request, settings={"prune": False}))
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_a_prunet_search_writes_a_priced_result_with_its_cost(tmp_path):
    reports = []
    request = searches.Request("prunet", "single_path_proxy", profiles.load("pixel1"), 1.0, "shapes", tmp_path / "run",
                               epochs=2, resolution=32, images=8, batch_size=8, settings={"block": 0.45},
                               progress=reports.append)
    result = searches.run(request)
    assert [r.epoch for r in reports] == [1, 2]
    assert reports[0].extra["warmup"] and not reports[1].extra["warmup"]
    assert reports[1].extra["blocks_pruned"] > 0 and all(r.extra["mmacs_per_image"] > 0 for r in reports)
    assert result.predicted_ms == pytest.approx(profiles.load("pixel1").predict(result.spec, len(result.classes)).total_ms,
                                                rel=1e-6)
    assert any("held-out top-1" in note for note in result.notes)
