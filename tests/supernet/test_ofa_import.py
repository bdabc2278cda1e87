"""`supernet import-ofa`: Once-for-All's own PyTorch supernet (PyPI's `ofa`, random weights), saved,
imported without PyTorch, gives the same logits for 20 sub-networks at 64-160 px.

The reference comes from tools/ofa_reference.py in the side environment tools/ofa-venv.sh makes
(`make test` makes it); without it those tests are skipped. The reader's refusals run without it.
"""
import json
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgetailor.cli.supernet import supernet_group
from edgetailor.errors import WeightsError
from edgetailor.supernet import ofa, torch_file

ROOT = Path(__file__).resolve().parents[2]
SIDE_PYTHON = ROOT / ".venv-ofa" / "bin" / "python"
TOLERANCE = 1e-4  # on logits of order 1 (the reference prints their scale)


def _reference(out: Path, width: float, subnets: int) -> Path:
    if not (ROOT / ".venv-ofa" / ".installed").exists():
        pytest.skip("no PyTorch side environment: run `bash tools/ofa-venv.sh` (`make test` does)")
    subprocess.run([str(SIDE_PYTHON), str(ROOT / "tools" / "ofa_reference.py"), "--width", str(width),
                    "--out", str(out), "--subnets", str(subnets)], check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="module")
def w10(tmp_path_factory):
    """Once-for-All's w1.0 files and our checkpoint imported from them through the CLI."""
    folder = _reference(tmp_path_factory.mktemp("ofa_w10"), 1.0, 20)
    checkpoint = folder / "ckpt"
    result = CliRunner().invoke(supernet_group, ["import-ofa", str(folder / "ofa_w1.0.pth"), "--out",
                                                 str(checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    return folder, checkpoint, summary


def _subnet(ref, i):
    from edgetailor.supernet.subnet import Subnet

    return Subnet(int(ref["resolution"][i]), ref["d"][i], ref["ks"][i], ref["e"][i])


@pytest.mark.slow
def test_imported_w10_supernet_and_extracted_models_give_once_for_alls_logits(w10):
    from edgetailor import builder
    from edgetailor.builder.keras_layers import ChannelAffine
    from edgetailor.supernet import checkpoint

    folder, ckpt, summary = w10
    assert summary["space"] == "ofa_mbv3_w1.0" and summary["classes"] == 1000
    assert "ofa_mbv3_d234_e346_k357_w1.0" in summary["source"]
    net, state = checkpoint.load(ckpt)
    assert state.source == summary["source"] and net.elastic.space.padding == "symmetric"
    ref = np.load(folder / "ofa_w1.0.npz")
    assert len(ref["resolution"]) >= 20 and set(ref["resolution"]) >= {64, 72, 96, 128, 160}
    np.testing.assert_allclose(ref["subnet"], ref["supernet"], atol=1e-5)  # OFA's own two agree
    worst = 0.0
    for i in range(len(ref["resolution"])):
        subnet = _subnet(ref, i)
        x = ref[f"input_{subnet.resolution}"]
        net.set_active(subnet)
        worst = max(worst, float(np.abs(net(x).numpy() - ref["supernet"][i]).max()))
    assert worst < TOLERANCE, f"active supernet vs Once-for-All: max |diff| {worst}"
    for i in (1, 7):  # the smallest (k3, e3, d2) and a random one at 96 px
        subnet = _subnet(ref, i)
        x = ref[f"input_{subnet.resolution}"]
        spec, model = net.extract(subnet, classifier_activation=None)
        assert "_padsym_eps1e-05" in spec.encode().split(" | ")[0]
        extracted = model(x).numpy()
        np.testing.assert_allclose(extracted, ref["subnet"][i], atol=TOLERANCE)
    # the check can fail: TF "same" padding or Keras' epsilon on the same weights miss by far more
    for changed in (spec.replace(padding="same"), spec.replace(bn_eps=1e-3)):
        other = builder.build(changed, num_classes=1000, classifier_activation=None,
                              preprocessing=[ChannelAffine(*ofa.input_affine())])
        other.set_weights(model.get_weights())
        assert np.abs(other(x).numpy() - ref["subnet"][7]).max() > 10 * TOLERANCE


@pytest.mark.slow
def test_legacy_stream_and_old_key_names_read_as_the_zip_file(w10):
    folder = w10[0]
    zipped = ofa.read_state_dict(folder / "ofa_w1.0.pth")
    legacy = ofa.read_state_dict(folder / "ofa_w1.0_legacy.pth")
    assert zipped.keys() == legacy.keys() and len(zipped) == 411
    assert all(np.array_equal(zipped[k], legacy[k]) for k in zipped)


@pytest.mark.slow
def test_w12_imports_as_ofa_mbv3(tmp_path):
    from edgetailor.supernet.subnet import Subnet

    folder = _reference(tmp_path, 1.2, 2)
    net, space, name = ofa.to_supernet(ofa.read_state_dict(folder / "ofa_w1.2.pth"))
    assert (space, name) == ("ofa_mbv3", "ofa_mbv3_d234_e346_k357_w1.2")
    ref = np.load(folder / "ofa_w1.2.npz")
    for i in range(2):
        net.set_active(Subnet(int(ref["resolution"][i]), ref["d"][i], ref["ks"][i], ref["e"][i]))
        x = ref[f"input_{int(ref['resolution'][i])}"]
        np.testing.assert_allclose(net(x).numpy(), ref["supernet"][i], atol=TOLERANCE)


@pytest.mark.slow
def test_cut_short_files_and_existing_output_are_one_line_errors(w10, tmp_path):
    folder, ckpt, _ = w10
    for name in ("ofa_w1.0.pth", "ofa_w1.0_legacy.pth"):
        cut = tmp_path / f"cut_{name}"
        cut.write_bytes((folder / name).read_bytes()[: 10_000_000])
        with pytest.raises(WeightsError, match="cut short or corrupt") as error:
            torch_file.read(cut)
        assert "\n" not in str(error.value)
    result = CliRunner().invoke(supernet_group, ["import-ofa", str(folder / "ofa_w1.0.pth"), "--out", str(ckpt)])
    assert result.exit_code == 1 and "already exists and is not empty" in result.output


class _RunsCode:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    payload = _RunsCode()
    payload.marker = str(marker)
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"state_dict": {"w": payload}}))
    with pytest.raises(WeightsError, match=r"asks to run pathlib\.") as error:
        torch_file.read(path)
    assert "\n" not in str(error.value) and not marker.exists()


def test_other_files_and_networks_are_named_in_one_line(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        torch_file.read(text)
    with pytest.raises(WeightsError, match="first conv has 32 channels"):
        ofa.to_supernet({"first_conv.conv.weight": np.zeros((32, 3, 3, 3), np.float32),
                         "blocks.1.conv.depth_conv.conv.7to5_matrix": np.eye(25, dtype=np.float32)})
    with pytest.raises(WeightsError, match="not a Once-for-All MobileNetV3 supernet"):
        ofa.to_supernet({"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)})


def test_old_key_names_map_to_todays():
    assert ofa.canonical("blocks.3.mobile_inverted_conv.depth_conv.conv.weight") == \
        ofa.canonical("blocks.3.conv.depth_conv.conv.conv.weight") == "blocks.3.conv.depth_conv.conv.weight"
    assert ofa.canonical("blocks.3.mobile_inverted_conv.point_linear.bn.running_var") == \
        "blocks.3.conv.point_linear.bn.running_var"
