"""FBNet, ProxylessNAS and LightNAS on the search supernet (``supernet.dnas*``, ``supernet.searches``)."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from edgetailor.arch import spaces
from edgetailor.cli.main import main
from edgetailor.errors import SearchError
from edgetailor.latency import profiles
from edgetailor.supernet import searches
from edgetailor.supernet.dnas_space import SKIP, DnasSpace

PIXEL1 = profiles.load("pixel1")


@pytest.mark.parametrize("space", ["fbnet", "proxyless", "proxyless_proxy"])
def test_expected_latency_of_a_one_hot_distribution_is_the_profiles_prediction(space):
    search = DnasSpace(spaces.get(space), PIXEL1, 32, num_classes=6)
    rng = np.random.default_rng(0)
    for _ in range(5):
        picks = [rng.integers(len(slot.candidates)) for slot in search.slots]
        one_hot = np.zeros(search.table.shape)
        one_hot[np.arange(len(picks)), picks] = 1.0
        exact = PIXEL1.predict(search.spec(picks), 6).total_ms
        assert search.expected_ms(one_hot) == pytest.approx(exact, rel=1e-9)
        assert search.latency_ms(picks) == pytest.approx(exact, rel=1e-9)
    fastest, ms = search.fastest()
    assert ms == pytest.approx(PIXEL1.predict(search.spec(fastest), 6).total_ms, rel=1e-9)
    assert search.fixed_ms < ms < search.slowest_ms()


def test_an_argmax_over_budget_moves_to_cheaper_ops_until_it_fits():
    search = DnasSpace(spaces.get("proxyless"), PIXEL1, 32, num_classes=6)
    probs = np.where(search.mask, 1.0, 0.0) / search.mask.sum(axis=1, keepdims=True)
    slowest = np.argmax(np.where(search.mask, search.table, -np.inf), axis=1)
    _, fastest = search.fastest()
    budget = (fastest + search.latency_ms(slowest)) / 2
    picks = search.within_budget(probs, slowest, budget)
    assert search.latency_ms(picks) <= budget < search.latency_ms(slowest)
    assert search.within_budget(probs, picks, budget).tolist() == picks.tolist()  # already within: unchanged


def test_candidates_share_weights_and_skip_only_where_the_shape_stays():
    fbnet = DnasSpace(spaces.get("fbnet"), PIXEL1, 32, num_classes=6)
    assert len(fbnet.notes) == 2 and all("g2" in note for note in fbnet.notes)  # grouped 1x1: own weights needed
    assert all(len(slot.candidates) == 6 + slot.residual for slot in fbnet.slots)  # k3/k5 x e1/e3/e6 (+ skip)
    proxyless = DnasSpace(spaces.get("proxyless"), PIXEL1, 32, num_classes=6)
    assert not proxyless.notes
    for slot in proxyless.slots:
        has_skip = any(k == SKIP for _, k, _ in slot.candidates)
        assert has_skip == slot.residual == (slot.layer > 0)


def test_unknown_strategy_or_space_is_refused():
    with pytest.raises(SearchError, match="unknown weight-sharing search"):
        searches.get("darts", "fbnet")
    with pytest.raises(SearchError, match="runs on spaces"):
        searches.get("fbnet", "mnasnet")


def _request(strategy, space, out, budget=3.0, epochs=1, images=24, **kwargs):
    return searches.Request(strategy, space, PIXEL1, budget, "shapes", out, epochs=epochs, resolution=32,
                            images=images, batch_size=8, **kwargs)


def _search(request):
    from edgetailor.supernet import data, dnas

    method = {"fbnet": dnas.FBNET, "proxyless": dnas.PROXYLESS, "lightnas": dnas.LIGHTNAS}[request.strategy]
    source = data.open_source("shapes", 32, request.images, 0.2, 0)
    search = DnasSpace(spaces.get(request.space), PIXEL1, 32, len(source.classes))
    return dnas._Search(request, method, search, source)


def _batch(run):
    return next(iter(run.arch_images.epoch(0)))


def test_budget_below_the_fastest_architecture_is_refused(tmp_path):
    from edgetailor.supernet import dnas

    search = DnasSpace(spaces.get("proxyless"), PIXEL1, 32, num_classes=6)
    with pytest.raises(SearchError, match="fastest is predicted at"):
        dnas.check(_request("proxyless", "proxyless", tmp_path / "s", budget=1.5), dnas.PROXYLESS, search)


@pytest.mark.slow
def test_fbnet_gradients_reach_every_slots_logits(tmp_path):
    import tensorflow as tf

    run = _search(_request("fbnet", "proxyless", tmp_path / "s"))
    before = run.logits.numpy().copy()
    run.arch_step(*_batch(run), 5.0, tf.constant([0, 1], tf.int64))
    moved = np.abs(run.logits.numpy() - before) > 0
    assert moved[run.search.mask].all()            # Adam moves every real candidate's logit
    assert not moved[~run.search.mask].any()       # and none of the padding


@pytest.mark.slow
def test_proxyless_runs_two_paths_per_slot_and_one_for_weights(tmp_path):
    import tensorflow as tf

    run = _search(_request("proxyless", "proxyless", tmp_path / "s"))
    x, y = _batch(run)
    before = run.logits.numpy().copy()
    run.arch_step(x, y, 5.0, tf.constant([0, 3], tf.int64))
    ran = {}
    for slot, candidate in run.net.ran:
        ran.setdefault(slot, []).append(candidate)
    for slot, (active, inactive) in enumerate(run.last_pairs):
        expected = [c for c in (active, inactive) if run.search.slots[slot].candidates[c][1] != SKIP]
        assert ran.get(slot, []) == expected
        changed = set(np.nonzero(run.logits.numpy()[slot] != before[slot])[0])
        if run.search.slots[slot].candidates[active][1] != SKIP:
            assert changed <= set(range(len(run.search.slots[slot].candidates)))
    run.weight_step(x, y, 5.0, tf.constant([0, 4], tf.int64), 0.01)
    assert len(run.net.ran) <= len(run.search.slots) and len({s for s, _ in run.net.ran}) == len(run.net.ran)


@pytest.mark.slow
def test_lightnas_multiplier_rises_over_the_target_and_stays_at_zero_under_it(tmp_path):
    import tensorflow as tf

    search = DnasSpace(spaces.get("proxyless"), PIXEL1, 32, num_classes=6)
    _, fastest = search.fastest()
    tight = _search(_request("lightnas", "proxyless", tmp_path / "a", budget=fastest * 1.01))
    x, y = _batch(tight)
    _, latency = tight.arch_step(x, y, 5.0, tf.constant([0, 5], tf.int64))
    assert latency > fastest * 1.01 and float(tight.lam.numpy()) > 0.0
    loose = _search(_request("lightnas", "proxyless", tmp_path / "b", budget=search.slowest_ms() * 2))
    loose.lam.assign(1e-3)
    _, latency = loose.arch_step(x, y, 5.0, tf.constant([0, 5], tf.int64))
    assert float(loose.lam.numpy()) < 1e-3  # under the target: the multiplier falls (clipped at 0)


@pytest.mark.slow
def test_search_resumes_from_its_checkpoint_and_a_finished_one_is_read_back(tmp_path):
    import tensorflow as tf
    from edgetailor import builder

    out = tmp_path / "search"
    lines = []
    first = searches.run(_request("lightnas", "proxyless", out, epochs=1, images=18, progress=lines.append))
    assert len(first.history) == 1 and lines[0].epoch == 1
    again = searches.run(_request("lightnas", "proxyless", out, epochs=2, images=18, progress=lines.append))
    assert [h["epoch"] for h in again.history] == [1, 2] and again.history[0] == first.history[0]
    assert [r.epoch for r in lines] == [1, 2]  # the second run trained only epoch 2
    assert searches.run(_request("lightnas", "proxyless", out, epochs=2, images=18)).history == again.history
    assert again.predicted_ms == pytest.approx(PIXEL1.predict(again.spec, len(again.classes)).total_ms)
    assert again.unrepaired_ms == again.history[-1]["argmax_ms"]  # the argmax before any repair, as reported
    model = builder.build(again.spec, num_classes=len(again.classes), classifier_activation="softmax")
    searches.load_weights(model, again.weights)
    assert np.isfinite(model(tf.zeros([1, 32, 32, 3])).numpy()).all()
    with pytest.raises(SearchError, match="other settings"):
        searches.run(_request("lightnas", "proxyless", out, epochs=2, images=18, budget=3.5))


@pytest.mark.parametrize("args, message", [
    (["--strategy", "fbnet", "--space", "mnasnet"], "runs on spaces fbnet, proxyless"),
    (["--strategy", "proxyless", "--space", "proxyless", "--dataset", "/no/such/folder"], "not a folder"),
    (["--strategy", "proxyless", "--space", "proxyless", "--loss", "l2"], "mul#log or add#linear"),
])
def test_cli_mistakes_are_one_line_errors(tmp_path, args, message):
    result = CliRunner().invoke(main, ["search", "--device", "pixel1", "--budget-ms", "3", "--out",
                                       str(tmp_path / "out"), *args])
    assert result.exit_code == 1 and message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_budget_below_the_fastest_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["search", "--strategy", "proxyless", "--space", "proxyless", "--device",
                                       "pixel1", "--budget-ms", "1.5", "--images", "24", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "fastest is predicted at" in result.output
    assert not (tmp_path / "o").exists()
