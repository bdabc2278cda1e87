"""The weight-sharing supernet: space reading, extraction parity, progressive shrinking, resume, bad input.

Training tests use a small copy of the ``ofa_mbv3`` space (its first two stages, same choices, a
quarter of the channels) at 32-40 px; parity is checked on the real space.
"""
import dataclasses
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgetailor.arch import spaces
from edgetailor.data import shapes
from edgetailor.errors import DatasetError, OutputError, SupernetError
from edgetailor.supernet.subnet import ElasticSpace, Subnet

OFA = spaces.get("ofa_mbv3")


def tiny_space(name: str = "ofa_tiny", divide: int = 4):
    """``ofa_mbv3``'s first two stages (one with squeeze-excite), every width divided by ``divide``;
    kernels, expands and depths kept."""
    stages = tuple(dataclasses.replace(s, channels=max(8, s.channels // divide)) for s in OFA.stages[:2])
    return dataclasses.replace(OFA, name=name, stages=stages, stem="conv_k3_s2_c8_hs,ir_k3_e1_c8_re",
                               head=f"conv_k1_c{1152 // divide}_hs,pool,fc_c{1536 // divide}_hs",
                               resolutions=(32, 40))


TINY = tiny_space()


def fast(**changes):
    from edgetailor.supernet.train import TrainOptions

    return TrainOptions(**{"epochs": 1, "resolutions": (32, 40), "batch_size": 8, "images": 16,
                           "random_subnets": 1, **changes})


# --- the space, pure Python ----------------------------------------------------------------------

def test_ofa_mbv3_reads_as_once_for_all_elastic_dimensions():
    elastic = ElasticSpace.of(OFA)
    assert [s.channels for s in elastic.stages] == [32, 48, 96, 136, 192]  # OFA w1.2
    assert all((s.kernels, s.expands, s.depths) == ((3, 5, 7), (3.0, 4.0, 6.0), (2, 3, 4))
               for s in elastic.stages)
    assert elastic.slots == 20
    assert elastic.largest().describe().startswith("r224 d4,4,4,4,4 k7,7")


def test_subnets_round_trip_through_the_space_choice_vectors():
    elastic = ElasticSpace.of(OFA)
    for choice in OFA.sample(np.random.default_rng(0), 25):
        subnet = elastic.from_choice(choice)
        assert elastic.to_choice(subnet) == list(choice)
        assert elastic.spec(subnet) == OFA.decode(choice)


@pytest.mark.parametrize("name", ["mnasnet", "proxyless", "fbnet"])
def test_spaces_not_shaped_like_once_for_all_are_refused(name):
    with pytest.raises(SupernetError, match="stage 1"):
        ElasticSpace.of(spaces.get(name))


@pytest.mark.parametrize("subnet, message", [
    (Subnet(160, (2, 2, 2, 2, 5), (3,) * 20, (3,) * 20), "depth 5"),
    (Subnet(160, (2,) * 5, (9,) * 20, (3,) * 20), "kernel"),
    (Subnet(164, (2,) * 5, (3,) * 20, (3,) * 20), "multiple of 8"),
    (Subnet(160, (2,) * 4, (3,) * 20, (3,) * 20), "needs 5 depths"),
])
def test_a_subnet_outside_the_space_is_refused(subnet, message):
    with pytest.raises(SupernetError, match=message):
        ElasticSpace.of(OFA).check(subnet)


# --- the Keras supernet on the real space ----------------------------------------------------------

def _randomised(net, seed: int = 0):
    """Random batch-norm statistics and kernel transforms, so that parity checks more than identities."""
    rng = np.random.default_rng(seed)
    for variable in net.variables:
        shape, name = variable.shape, variable.name
        if "moving_variance" in name or "bn_gamma" in name:
            variable.assign(rng.uniform(0.5, 1.5, shape))
        elif "moving_mean" in name or "bn_beta" in name:
            variable.assign(rng.normal(0, 0.1, shape))
        elif "transform" in name:
            variable.assign(np.eye(shape[0]) + rng.normal(0, 0.05, shape))
    return net


@pytest.fixture(scope="module")
def tiny_net():
    import tensorflow as tf

    from edgetailor.supernet.network import Supernet

    tf.random.set_seed(0)
    return _randomised(Supernet(TINY, num_classes=3))


def _check_parity(net, subnets, traced=None):
    """Active supernet == extracted builder model, or == the traced graph fed tensors; logits."""
    rng = np.random.default_rng(1)
    for subnet in subnets:
        x = rng.uniform(-1, 1, (2, subnet.resolution, subnet.resolution, 3)).astype(np.float32)
        net.set_active(subnet)
        expected = net(x, training=False).numpy()
        if traced is not None:
            actual = traced(x, net.encode(subnet).tensors()).numpy()
        else:
            spec, model = net.extract(subnet, classifier_activation=None)
            space = net.elastic.space
            assert spec == space.decode(net.elastic.to_choice(subnet, 0)).replace(resolution=subnet.resolution)
            actual = model(x, training=False).numpy()
        np.testing.assert_allclose(actual, expected, atol=1e-5, rtol=0, err_msg=subnet.describe())


def test_extracted_models_match_the_active_supernet(tiny_net):
    elastic, rng = tiny_net.elastic, np.random.default_rng(1)
    _check_parity(tiny_net, [elastic.largest(32), elastic.smallest(40), elastic.sample(rng, 32),
                             elastic.sample(rng, 40)])


@pytest.mark.slow
def test_extracted_models_match_the_active_ofa_mbv3_supernet():
    import tensorflow as tf

    from edgetailor.supernet.network import Supernet

    tf.random.set_seed(0)
    net = _randomised(Supernet(OFA, num_classes=5))
    elastic, rng = net.elastic, np.random.default_rng(2)
    _check_parity(net, [elastic.largest(64), elastic.smallest(96), elastic.sample(rng, 64), elastic.sample(rng, 96)])


def test_the_traced_supernet_fed_tensors_computes_the_same_subnets(tiny_net):
    """How training runs: one graph, the choices as tensors (dynamic widths, padded kernels, conds)."""
    import tensorflow as tf

    traced = tf.function(lambda x, code: tiny_net(x, training=False, subnet=code))
    elastic, rng = tiny_net.elastic, np.random.default_rng(5)
    _check_parity(tiny_net, [elastic.largest(40), elastic.smallest(40), elastic.sample(rng, 40),
                             elastic.sample(rng, 40)], traced)


def test_sorting_channels_keeps_the_largest_network_and_puts_important_channels_first(tiny_net):
    import tensorflow as tf

    largest = tiny_net.elastic.largest(40)
    x = np.random.default_rng(2).uniform(-1, 1, (2, 40, 40, 3)).astype(np.float32)
    before = tiny_net(x, subnet=tiny_net.encode(largest)).numpy()
    tiny_net.sort_channels(0)
    np.testing.assert_allclose(tiny_net(x, subnet=tiny_net.encode(largest)).numpy(), before, atol=1e-5, rtol=0)
    project = tiny_net.stages[1][1].layers_by_step["project"].kernel  # a block with squeeze-excite
    importance = tf.reduce_sum(tf.abs(project), axis=[0, 1, 3]).numpy()
    assert np.all(np.diff(importance) <= 0)


# --- training, checkpoints, evaluation (narrow space, 32-40 px) ----------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One run of every phase on a classes folder (the folder pipeline), progress recorded."""
    from edgetailor.supernet.train import train

    root = tmp_path_factory.mktemp("supernet")
    shapes.write_folder(root / "data", 12, size=48, seed=3)  # 6 training images: one batch of 4
    events = []
    result = train(TINY, root / "data", root / "ckpt", fast(batch_size=4), progress=events.append)
    return root / "ckpt", result, events


def test_progressive_shrinking_runs_every_phase_and_checkpoints(trained):
    from edgetailor.supernet.checkpoint import load
    from edgetailor.supernet.train import PHASES

    folder, result, events = trained
    assert [h["phase"] for h in result.state.history] == [p.name for p in PHASES]
    assert (result.state.phase, result.state.epochs_done) == (len(PHASES) - 1, 1)
    assert sorted(p.name for p in folder.iterdir()) == [
        "state.json", "weights-6.data-00000-of-00001", "weights-6.index"]
    assert [e.phase for e in events if e.step == 0] == [p.name for p in PHASES]
    assert all(np.isfinite(e.loss) for e in events)
    net, state = load(folder, space=TINY)
    assert state == result.state
    for mine, theirs in zip(net.variables, result.net.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_a_subnet_is_scored_after_batch_norm_recalibration(trained):
    from edgetailor.supernet.evaluate import evaluate

    _, result, _ = trained
    scored = evaluate(result.net, result.net.elastic.smallest(32), result.source)
    assert 0 <= scored.top1 <= 100
    assert (scored.val_images, scored.calibration_images) == (len(result.source.val_labels),
                                                              len(result.source.train_labels))


def test_an_interrupted_run_resumes_after_its_last_checkpoint(tmp_path):
    from edgetailor.supernet.checkpoint import read_state
    from edgetailor.supernet.train import train

    def stop_at(phase, epoch):
        def progress(event):
            seen.append((event.phase, event.epoch, event.step))
            if (event.phase, event.epoch) == (phase, epoch):
                raise KeyboardInterrupt  # Ctrl-C
        return progress

    seen = []
    with pytest.raises(KeyboardInterrupt):
        train(TINY, "shapes", tmp_path / "ckpt", fast(epochs=2, images=8), progress=stop_at("kernel", 1))
    state = read_state(tmp_path / "ckpt")
    assert (state.phase_name, state.epochs_done) == ("kernel", 1)
    seen.clear()
    with pytest.raises(KeyboardInterrupt):  # resumes inside the phase (optimizer restored too)
        train(TINY, "shapes", tmp_path / "ckpt", fast(epochs=2, images=8), progress=stop_at("depth_1", 0))
    assert seen[0] == ("kernel", 1, 0)
    state = read_state(tmp_path / "ckpt")
    assert (state.phase_name, state.epochs_done) == ("kernel", 2)
    assert [(h["phase"], h["epoch"]) for h in state.history] == [
        ("largest", 1), ("largest", 2), ("kernel", 1), ("kernel", 2)]


def test_a_checkpoint_of_another_space_is_refused(trained):
    from edgetailor.supernet.checkpoint import load
    from edgetailor.supernet.train import train

    folder, _, _ = trained
    other = tiny_space("ofa_tiny", divide=8)  # same name, other widths: the fingerprint tells
    with pytest.raises(SupernetError, match="fingerprint"):
        load(folder, space=other)
    with pytest.raises(SupernetError, match="not of 'ofa_tiny'"):
        train(other, "shapes", folder, fast())
    with pytest.raises(SupernetError, match="resume it with those resolutions"):
        train(TINY, "shapes", folder, fast(resolutions=(32,)))


def test_a_damaged_or_half_written_checkpoint_is_a_one_line_error(trained, tmp_path):
    from edgetailor.supernet.checkpoint import load

    folder, _, _ = trained
    for damage in ("truncate", "missing", "state"):
        copy = tmp_path / damage
        shutil.copytree(folder, copy)
        if damage == "truncate":  # killed while the weights were written
            data = copy / "weights-6.data-00000-of-00001"
            data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
        elif damage == "missing":
            for path in copy.glob("weights-6.*"):
                path.unlink()
        else:
            (copy / "state.json").write_text('{"format": "edgetailor-supernet/1", "space": ')
        with pytest.raises(SupernetError) as caught:
            load(copy, space=TINY)
        assert "\n" not in str(caught.value)


def test_a_one_class_dataset_and_a_foreign_output_folder_are_refused(tmp_path):
    from edgetailor.supernet.train import train

    shapes.write_folder(tmp_path / "data", 8, size=32, classes=("circle", "ring"))
    shutil.rmtree(tmp_path / "data" / "ring")
    with pytest.raises(DatasetError, match="single class"):
        train(TINY, tmp_path / "data", tmp_path / "ckpt", fast())
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError):
        train(TINY, "shapes", tmp_path / "busy", fast())


@pytest.mark.parametrize("graph", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_training_resumes_under_a_mirrored_strategy_over_two_cpu_devices(trained, tmp_path, graph):
    """The last phase's second epoch, on two logical CPUs: restore, sandwich, all-reduce, save."""
    folder, _, _ = trained
    shutil.copytree(folder, tmp_path / "ckpt")
    code = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]  # before TensorFlow initialises its devices
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_supernet import TINY, fast
        from edgetailor.supernet.train import train
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        result = train(TINY, {str(folder.parent / "data")!r}, {str(tmp_path / "ckpt")!r},
                       fast(batch_size=4, epochs=2, graph={graph}), strategy=strategy)
        print(json.dumps({{"replicas": strategy.num_replicas_in_sync, "trained": list(result.seconds),
                          "last": result.state.history[-1]}}))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["trained"] == ["expand_2"]
    assert (report["last"]["phase"], report["last"]["epoch"]) == ("expand_2", 2)
    assert np.isfinite(report["last"]["loss"])


# --- the command line ----------------------------------------------------------------------------

def test_cli_refuses_too_few_measurements_before_training(tmp_path):
    from edgetailor.cli.main import main

    result = CliRunner().invoke(main, ["supernet", "train", "--space", "ofa_proxy", "--dataset", "shapes",
                                       "--measure", "3", "--out", str(tmp_path / "ckpt")])
    assert result.exit_code == 1 and "at least 5 measured sub-networks" in result.output
    assert not (tmp_path / "ckpt").exists()


def test_cli_refuses_a_space_that_is_not_elastic(tmp_path):
    from edgetailor.cli.main import main

    result = CliRunner().invoke(main, ["supernet", "train", "--space", "mnasnet", "--dataset", "shapes",
                                       "--out", str(tmp_path / "ckpt")])
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error:") and "shared ops" in result.output
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.slow
def test_cli_trains_the_ofa_supernet_and_fits_its_accuracy_predictor(tmp_path):
    from edgetailor.cli.main import main

    args = ["supernet", "train", "--space", "ofa_proxy", "--dataset", "shapes", "--out", str(tmp_path / "ckpt"),
            "--epochs", "1", "--resolution", "40", "--batch-size", "8", "--images", "8", "--measure", "5", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["space"] == "ofa_proxy" and summary["phase"] == "expand_2"
    assert len(summary["measured"]) == 5 and summary["measured"][0]["subnet"].startswith("r40 d4,4 k7")
    assert summary["predictor"]["fitted_on"] == 4 and summary["predictor"]["held_out"]["subnets"] == 1
    assert summary["predictor"]["held_out"]["kendall_tau"] is None  # strict JSON: no NaN
    assert (tmp_path / "ckpt" / "accuracy_predictor.npz").is_file()
    rerun = CliRunner().invoke(main, args)  # everything done: resumes, trains nothing
    assert rerun.exit_code == 0 and json.loads(rerun.stdout)["seconds_by_phase"] == {}


def test_a_diverging_run_stops_with_one_line_and_keeps_its_last_checkpoint(tmp_path):
    from edgetailor.supernet.checkpoint import read_state
    from edgetailor.supernet.train import train

    train(TINY, "shapes", tmp_path / "ckpt", fast(epochs=1))
    before = read_state(tmp_path / "ckpt")
    with pytest.raises(SupernetError, match=r"training diverged \(loss (nan|inf)\) .* lower --learning-rate"):
        train(TINY, "shapes", tmp_path / "ckpt", fast(epochs=2, learning_rate=1e12))
    assert read_state(tmp_path / "ckpt") == before  # the diverged epoch is not committed
