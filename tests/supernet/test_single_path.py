"""Single-Path NAS on the supernet: thresholds decide as the norms say, gradients reach them, the runtime
model at a one-hot decision is the profile's price, the extracted network computes the superkernel's
output, a search resumes and returns its result, and bad settings are one-line errors."""
import numpy as np
import pytest

from edgetailor.arch import spaces
from edgetailor.errors import SearchError, SupernetError
from edgetailor.latency import profiles
from edgetailor.supernet import searches

SPACE = spaces.get("single_path_proxy")
CLASSES = 4


@pytest.fixture(scope="module")
def built():
    import tensorflow as tf

    from edgetailor.supernet.network import Supernet
    from edgetailor.supernet.single_path import DEFAULTS, SinglePath
    from edgetailor.supernet.single_path_ops import tables
    from edgetailor.supernet.subnet import ElasticSpace

    tf.random.set_seed(0)
    elastic = ElasticSpace.of(SPACE)
    net = Supernet(elastic, CLASSES, dropout=0.0)
    table = tables(elastic, profiles.load("pixel1"), 32, CLASSES)
    searcher = SinglePath(net, table, {**DEFAULTS, "budget_ms": 0.5})
    searcher.begin_epoch(9, 10)  # past the warm-up: no indicator dropout, the runtime term on
    images = tf.random.stateless_uniform([4, 32, 32, 3], (1, 2), -1.0, 1.0)
    return searcher, table, images


def _set(searcher, rng):
    """Every threshold far below (on) or far above (off) its norm, at random."""
    for t in searcher.thresholds:
        t.assign(rng.choice([-50.0, 50.0], size=t.shape[0]).astype(np.float32))


def test_runtime_model_at_a_one_hot_decision_is_the_profiles_price(built):
    from edgetailor.supernet.single_path_ops import compact

    searcher, table, images = built
    profile, rng = profiles.load("pixel1"), np.random.default_rng(0)
    for _ in range(3):
        _set(searcher, rng)
        _, expected = searcher.forward(images, training=False)
        decision = searcher.decision()
        subnet, _ = compact(searcher.net.elastic, decision, 32)
        spec = searcher.net.elastic.spec(subnet)
        assert float(expected) == pytest.approx(profile.predict(spec, CLASSES).total_ms, rel=1e-6)
        assert decision.latency_ms(table) == pytest.approx(profile.predict(spec, CLASSES).total_ms, rel=1e-9)


def _rms(part):
    return np.linalg.norm(part) / np.sqrt(part.size)


def test_thresholds_choose_3x3_or_5x5_and_e3_or_e6_as_the_norms_say(built):
    searcher, _, _ = built
    for i, slot in enumerate(searcher.slots):
        raw = slot.block.layers_by_step["dw"].kernel.numpy()[..., 0]  # [5, 5, C]
        ring = np.sqrt((np.sum(raw ** 2) - np.sum(raw[1:4, 1:4] ** 2)) / raw.size)  # per weight of the 5x5
        use_5x5 = i % 2 == 0
        decided = raw if use_5x5 else np.pad(raw[1:4, 1:4], ((1, 1), (1, 1), (0, 0)))
        half = _rms(decided[:, :, slot.widths[0]:slot.widths[1]])
        first = _rms(decided[:, :, :slot.widths[0]])
        use_e6 = i % 3 != 0
        values = [ring - 1e-3 if use_5x5 else ring + 1e-3, half - 1e-3 if use_e6 else half + 1e-3]
        if slot.skippable:
            values.append(first - 1e-3)
        searcher.thresholds[i].assign(np.array(values, np.float32))
    decision = searcher.decision()
    assert decision.kernels == tuple(int(i % 2 == 0) for i in range(len(searcher.slots)))
    assert decision.expands == tuple(int(i % 3 != 0) for i in range(len(searcher.slots)))
    assert all(decision.kept)
    slot = searcher.slots[1]
    first = _rms(np.pad(slot.block.layers_by_step["dw"].kernel.numpy()[1:4, 1:4, :slot.widths[0], 0],
                        ((1, 1), (1, 1), (0, 0))))
    searcher.thresholds[1].assign(np.array([50.0, -50.0, first + 1e-3], np.float32))  # 3x3, e3 half below t
    assert not searcher.decision().kept[1]


def test_gradients_reach_every_threshold(built):
    import tensorflow as tf

    searcher, _, images = built
    for t in searcher.thresholds:
        t.assign(tf.zeros_like(t))
    with tf.GradientTape() as tape:
        logits, expected = searcher.forward(images, training=True)
        ce = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy([0, 1, 2, 3], logits, from_logits=True))
        loss = ce + searcher.latency_loss(expected)
    grads = tape.gradient(loss, searcher.thresholds)
    for t, g in zip(searcher.thresholds, grads):
        if t.shape[0]:
            assert np.all(np.abs(g.numpy()) > 0), t.name


def test_the_extracted_network_computes_the_superkernels_output(built):
    from edgetailor.supernet.single_path_ops import extract

    searcher, _, images = built
    _set(searcher, np.random.default_rng(3))
    searcher.thresholds[1].assign([-50.0, -50.0, 50.0])  # layer 2 of stage 1 skipped, layer 3 kept
    searcher.thresholds[2].assign([50.0, 50.0, -50.0])   # as 3x3, e3
    decision = searcher.decision()
    assert not decision.kept[1] and decision.kept[2] and len(set(decision.kernels)) == 2
    logits, _ = searcher.forward(images, training=True)  # batch statistics: activations of a useful size
    spec, model = extract(searcher.net, decision, 32, classifier_activation=None)
    assert len(spec.stages[0]) == 2 and spec.stages[0][1].kernel == 3 and spec.stages[0][1].expand == 3
    np.testing.assert_allclose(model(images, training=True).numpy(), logits.numpy(), atol=1e-5, rtol=1e-5)
    assert np.abs(logits.numpy()).max() > 1e-2


def test_bad_settings_and_spaces_are_one_line_errors(tmp_path):
    from edgetailor.supernet.single_path import DEFAULTS
    from edgetailor.supernet.single_path_run import settings

    def request(**changes):
        return searches.Request(**{"strategy": "single_path", "space": "single_path_proxy",
                                   "profile": profiles.load("pixel1"), "budget_ms": 1.0, "dataset": "shapes",
                                   "out": tmp_path / "out", **changes})
    with pytest.raises(SearchError, match="no setting 'lamda'"):
        settings(request(settings={"lamda": 0.1}), DEFAULTS)
    with pytest.raises(SearchError, match="must be a float"):
        settings(request(settings={"lambda": "high"}), DEFAULTS)
    with pytest.raises(SearchError, match="runs on spaces"):
        searches.run(request(space="fbnet"))
    from edgetailor.supernet.single_path import run_single_path
    with pytest.raises(SupernetError):
        run_single_path(request(space="mnasnet"))
    assert not (tmp_path / "out").exists()


class _Stop(Exception):
    pass


@pytest.mark.slow
def test_a_search_resumes_after_an_interrupted_epoch_and_returns_its_result(tmp_path):
    def request(progress=None):
        return searches.Request("single_path", "single_path_proxy", profiles.load("pixel1"), 1.0, "shapes",
                                tmp_path / "run", epochs=2, resolution=32, images=8, batch_size=8,
                                settings={"warmup": 0.5}, progress=progress)

    def stop_after_first(report):
        assert "expected" in report.line() and report.arch.startswith("res32")
        raise _Stop

    with pytest.raises(_Stop):
        searches.run(request(stop_after_first))
    reports = []
    result = searches.run(request(reports.append))
    assert [r.epoch for r in reports] == [2] and len(result.history) == 2
    assert result.history[1]["extra"]["lambda"] == pytest.approx(0.02)
    assert result.predicted_ms == pytest.approx(profiles.load("pixel1").predict(result.spec, len(result.classes)).total_ms,
                                                rel=1e-6)
    assert SPACE.decode(result.choice).replace(resolution=32) == result.spec
    from edgetailor import builder
    searches.load_weights(builder.build(result.spec, num_classes=len(result.classes)), result.weights)
    assert searches.run(request()) == result  # finished: returned as written, no training
