"""profile adapt: a base kernel predictor refitted to another setting from few kernel timings."""
import hashlib
import json
from importlib import resources

import numpy as np
import pytest
from click.testing import CliRunner

from edgetailor.cli.main import main
from edgetailor.errors import EdgetailorError, ProfileError
from edgetailor.latency import profiles
from edgetailor.latency.kernel_predictor import KernelPredictor, TreeEnsemble
from edgetailor.profiling import adapt
from edgetailor.profiling.kernels import make_kernel
from edgetailor.profiling import timing_journal
from edgetailor.profiling.timing_journal import EMPTY_MODEL_KEY

PW = (1, 1, "linear", False)
ACT = (1, 1, "hswish", False)


def _leaf() -> TreeEnsemble:
    """Trees that predict log(ms / baseline) = 0: the baseline alone."""
    one = np.array([-1], np.int32)
    return TreeEnsemble(np.zeros(1, np.int32), np.zeros(1), one, one, np.zeros(1), np.zeros(1, np.int32),
                        0.0, 1.0, 1.0)


def _base() -> KernelPredictor:
    """ms = 0.01 per MFLOP + 0.2 per million elements read + 0.001 (dwconv twice that)."""
    baseline = np.array([0.01, 0.2, 0.0, 0.001])
    kinds = ("pwconv", "dwconv", "add", "pool", "fc")
    return KernelPredictor({k: _leaf() for k in kinds}, {k: (2 if k == "dwconv" else 1) * baseline for k in kinds},
                           0.002, {"threads": 1})


def _kernels(kind: str, n: int, seed: int):
    rng = np.random.default_rng(seed)
    choice = (3, 1, "linear", False) if kind == "dwconv" else PW
    return [make_kernel(kind, int(rng.integers(4, 40)), int(rng.integers(2, 40)) * 8,
                        int(rng.integers(2, 40)) * 8, choice) for _ in range(n)]


def _lines(kernels, ms, threads=1, precision="int8", empty_ms=0.003) -> str:
    out = timing_journal.line(EMPTY_MODEL_KEY, empty_ms, threads, precision)
    for kernel, value in zip(kernels, ms):
        out += timing_journal.line(kernel.key, value, threads, precision, type=kernel.type,
                                  features=[float(f) for f in kernel.features()])
    return out


def test_measured_types_take_their_own_factor_and_the_rest_the_global_one(tmp_path):
    base = _base()
    pw, dw = _kernels("pwconv", 25, 0), _kernels("dwconv", 5, 1)
    net = lambda kind, ks: base.kernel_ms(ks)  # noqa: E731
    ms = [*(2 * net("pwconv", pw)), *(3 * net("dwconv", dw))]
    path = tmp_path / "m.jsonl"
    path.write_text(_lines(pw + dw, np.array(ms) + 0.003))
    adapted, report = adapt.adapt(base, adapt.read(path))
    assert report["types"]["pwconv"]["baseline"] in ("refit", "type factor")  # both exact here: left-one-out picks
    assert report["types"]["dwconv"]["baseline"] == "type factor"  # 5 < REFIT_MIN
    assert report["types"]["add"] == {"measured": 0, "baseline": "global factor"}
    probe = _kernels("pwconv", 6, 7)
    np.testing.assert_allclose(adapted.kernel_ms(probe), 2 * base.kernel_ms(probe), rtol=1e-3)
    probe = _kernels("dwconv", 6, 8)  # (the journal keeps 5 decimals of ms: 1e-4 relative)
    np.testing.assert_allclose(adapted.kernel_ms(probe), 3 * base.kernel_ms(probe), rtol=1e-4)
    global_factor = np.exp((25 * np.log(2) + 5 * np.log(3)) / 30)
    probe = _kernels("add", 6, 9)
    np.testing.assert_allclose(adapted.kernel_ms(probe), global_factor * base.kernel_ms(probe), rtol=1e-3)
    assert adapted.overhead_ms == 0.003 and adapted.meta["adapted"]["precision"] == "int8"


def test_whole_models_set_the_in_model_factor_when_it_helps_models_left_out(tmp_path):
    from edgetailor.arch.layers import walk
    from edgetailor.arch.spec import decode

    base = _base()
    pw = _kernels("pwconv", 12, 0)
    path = tmp_path / "m.jsonl"
    path.write_text(_lines(pw, base.kernel_ms(pw) + 0.003))
    kernels_only, _ = adapt.adapt(base, adapt.read(path))
    texts = [f"res{r} | conv_k1_s1_c16_re | ir_k1_s1_e2_c{c} | head:conv_k1_c32_re,pool,fc_c10"
             for r, c in ((32, 16), (48, 24), (64, 16))]
    kernels_ms = [kernels_only.predict_ms(walk(decode(text))) - 0.003 for text in texts]

    def with_models(factors):
        path.write_text(_lines(pw, base.kernel_ms(pw) + 0.003) + "".join(
            timing_journal.line(f"model:tiny{i}", 0.003 + f * k, 1, "int8", spec=text)
            for i, (f, k, text) in enumerate(zip(factors, kernels_ms, texts))))
        return adapt.adapt(base, adapt.read(path))

    scaled, report = with_models([1.5, 1.5, 1.5])  # kernels cost 1.5x inside these models
    assert report["in_model"] == "factor 1.5000" and report["models_loo_mape_pct"] < 0.1
    assert scaled.predict_ms(walk(decode(texts[0]))) == pytest.approx(0.003 + 1.5 * kernels_ms[0], rel=1e-3)
    _, report = with_models([1.0, 1.0, 3.0])  # no factor fitted on two models prices the third
    assert report["in_model"].startswith("none") and report["models_loo_mape_pct"] == report["models_mape_pct_before"]


@pytest.mark.slow
def test_adapted_predictor_times_held_out_int8_kernels_better_than_the_float_base(tmp_path):
    """Real timings: a base fitted on float32 one-kernel models, adapted with int8 ones, scored on
    int8 kernels neither saw (hard-swish runs ~10x slower in int8 here, 1x1 convs about the same)."""
    from edgetailor.profiling import adapt_measure, kernels_fit
    from edgetailor.profiling.int8_tflite_ops import input_conversion_model
    from edgetailor.profiling.timing import interleaved_best_ms

    train = _kernels("pwconv", 16, 0) + [make_kernel("hswish", int(s), int(c) * 8, 0, ACT)
                                          for s, c in zip(np.linspace(4, 40, 10), np.linspace(2, 30, 10))]
    float_ms = np.array(interleaved_best_ms([adapt_measure.kernel_model_bytes(k, "float32") for k in train], 1))
    kinds = {"pwconv": train[:16], "hswish": train[16:]}
    fitted = {kind: kernels_fit.fit_ensemble(np.array([k.features() for k in group]),
                                             float_ms[[train.index(k) for k in group]], "random_forest")
              for kind, group in kinds.items()}
    base = KernelPredictor({k: e for k, (_, e) in fitted.items()}, {k: b for k, (b, _) in fitted.items()}, 0.0, {})
    journal = tmp_path / "int8.jsonl"
    new = _kernels("pwconv", 10, 1) + [make_kernel("hswish", int(s), int(c) * 8, 0, ACT)
                                        for s, c in zip(np.linspace(6, 36, 8), np.linspace(3, 28, 8))]
    adapt_measure.measure(new, journal, 1, "int8")
    adapted, _ = adapt.adapt(base, adapt.read(journal))
    held = _kernels("pwconv", 6, 2) + [make_kernel("hswish", s, c * 8, 0, ACT) for s, c in ((9, 5), (17, 11), (30, 20))]
    held_journal = tmp_path / "held.jsonl"
    adapt_measure.measure(held, held_journal, 1, "int8")
    measured = adapt.read(held_journal)
    truth = np.array([max(measured.kernels[k.key][2] - measured.empty_ms, adapt.FLOOR_MS) for k in held])
    base_error = np.abs(base.kernel_ms(held) / truth - 1).mean()
    adapted_error = np.abs(adapted.kernel_ms(held) / truth - 1).mean()
    assert adapted_error < 0.5 * base_error, (adapted_error, base_error)
    # the int8 input conversion, timed at 96-288 px, priced at 160 px (~2.5 ns per element here)
    (elements, ms), = [(e, ms) for e, ms in measured.inputs if e == 3 * 192 ** 2]
    assert abs(adapted.input_ms_per_melement * elements / 1e6 / (ms - measured.empty_ms) - 1) < 0.3
    conversion = interleaved_best_ms([input_conversion_model(160)], 1, passes=20)[0] - measured.empty_ms
    assert abs(adapted.input_ms_per_melement * 3 * 160 ** 2 / 1e6 / conversion - 1) < 0.3


def _base_profile(tmp_path, predictor=None):
    """A shipped profile's JSON with a kernel predictor beside it, as a file."""
    document = json.loads(resources.files("edgetailor.device_profiles").joinpath("pixel1.json").read_text())
    data = (predictor or _base()).to_npz_bytes()
    (tmp_path / "base.json.kernels.npz").write_bytes(data)
    document["kernel_predictor"] = {"file": "base.json.kernels.npz", "sha256": hashlib.sha256(data).hexdigest()}
    (tmp_path / "base.json").write_text(json.dumps(document))
    return tmp_path / "base.json"


def _adapt(tmp_path, base, measurements, *extra):
    out = tmp_path / "new.json"
    result = CliRunner().invoke(main, ["profile", "adapt", "--base", str(base), "--measurements", str(measurements),
                                       "--name", "new-device", "--out", str(out), *extra])
    return result, out


def test_adapted_profile_loads_and_latency_answers_with_it(tmp_path):
    base = _base()
    kernels = _kernels("pwconv", 12, 0) + _kernels("dwconv", 4, 1)
    path = tmp_path / "m.jsonl"
    path.write_text(_lines(kernels, 2 * base.kernel_ms(kernels) + 0.003))
    result, out = _adapt(tmp_path, _base_profile(tmp_path), path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["adapt"]["types"]["add"]["baseline"] == "global factor"
    profile = profiles.load_file(out)
    assert profile.name == "new-device" and profile.kernels.overhead_ms == 0.003
    probe = _kernels("pwconv", 3, 5)
    np.testing.assert_allclose(profile.kernels.kernel_ms(probe), 2 * base.kernel_ms(probe), rtol=1e-3)
    arch = "res32 | conv_k1_s1_c16_re | ir_k1_s1_e2_c16 | head:conv_k1_c32_re,pool,fc_c10"
    answer = CliRunner().invoke(main, ["latency", arch, "--device", str(out), "--json"])
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.output)["device"] == "new-device"


def _one_line_error(result, *words):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize("case, words", [
    ("missing", ("not found",)),
    ("empty", ("no measurements",)),
    ("bad line", ("line 2",)),
    ("no features", ("features",)),
    ("unknown type", ("warp",)),
    ("too few", ("too few",)),
    ("two settings", ("mixes settings",)),
])
def test_user_mistakes_are_one_line_and_write_nothing(tmp_path, case, words):
    base = _base()
    kernels = _kernels("pwconv", 12, 0)
    text = _lines(kernels, base.kernel_ms(kernels) + 0.003)
    lines = text.splitlines(keepends=True)
    path = tmp_path / "m.jsonl"
    if case == "empty":
        path.write_text("")
    elif case == "bad line":
        path.write_text(lines[0] + "{not json\n" + "".join(lines[1:]))
    elif case == "no features":
        path.write_text(lines[0] + json.dumps({"key": kernels[0].key, "ms": 0.1, "threads": 1, "precision": "int8"}) + "\n")
    elif case == "unknown type":
        entry = json.loads(lines[1])
        path.write_text(text + json.dumps({**entry, "key": "warp@1", "type": "warp"}) + "\n")
    elif case == "too few":
        path.write_text("".join(lines[:4]))
    elif case == "two settings":
        path.write_text(text + timing_journal.line("other", 0.1, 2, "int8", type="pwconv",
                                                  features=json.loads(lines[1])["features"]))
    result, out = _adapt(tmp_path, _base_profile(tmp_path), path)
    _one_line_error(result, *words)
    assert not out.exists() and not (tmp_path / "new.json.kernels.npz").exists()


def test_a_base_without_kernel_predictor_is_one_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(_lines(_kernels("pwconv", 12, 0), np.full(12, 0.1)))
    result, out = _adapt(tmp_path, "pixel1", path)
    _one_line_error(result, "no kernel predictor")
    assert not out.exists()


def test_a_failed_profile_write_leaves_no_predictor_behind(tmp_path):
    base = _base()
    kernels = _kernels("pwconv", 12, 0)
    path = tmp_path / "m.jsonl"
    path.write_text(_lines(kernels, base.kernel_ms(kernels) + 0.003))
    out = tmp_path / "taken"
    (out / "inside").mkdir(parents=True)  # a non-empty folder where the profile should go
    with pytest.raises((EdgetailorError, OSError)):  # the rename onto a folder fails
        adapt.write(profiles.load_file(_base_profile(tmp_path)), path, "new", out)
    assert not (tmp_path / "taken.kernels.npz").exists()


def test_a_cut_off_last_line_is_dropped_when_measuring_resumes(tmp_path):
    path = tmp_path / "m.jsonl"
    text = _lines(_kernels("pwconv", 3, 0), [0.1, 0.2, 0.3])
    path.write_text(text[:-20])
    with pytest.raises(ProfileError, match="line 4"):
        adapt.read(path)
    said = []
    resumed = adapt.read(path, repair=True, say=said.append)
    assert len(resumed.kernels) == 2 and said and path.read_text() == "".join(text.splitlines(True)[:3])


@pytest.mark.slow
def test_measure_then_adapt_from_the_cli_and_resume(tmp_path):
    """--measure times the chosen kernels (int8, one thread) into the journal; a rerun finds them
    all there and times nothing again."""
    base = _base_profile(tmp_path)
    journal = tmp_path / "int8.jsonl"
    args = ["--measure", "--precision", "int8", "--max-kernels", "24", "--networks", "3"]
    result, out = _adapt(tmp_path, base, journal, *args)
    assert result.exit_code == 0, result.output
    lines = journal.read_text().splitlines()
    assert json.loads(lines[0])["key"] == EMPTY_MODEL_KEY and 10 < len(lines) <= 28
    assert {json.loads(line).get("precision") for line in lines} == {"int8"}
    assert profiles.load_file(out).kernels.meta["adapted"]["precision"] == "int8"
    again, _ = _adapt(tmp_path, base, journal, *args)
    assert again.exit_code == 0 and journal.read_text().splitlines() == lines
    fewer, _ = _adapt(tmp_path, base, journal, "--measure", "--max-kernels", "3")
    _one_line_error(fewer, "--max-kernels 3")


@pytest.mark.slow
def test_networks_are_timed_whole_into_the_journal_once(tmp_path, monkeypatch):
    from edgetailor.profiling import kernels_fit

    monkeypatch.setitem(kernels_fit.NETWORK_TIMING, "min_span_s", 0.0)  # the mechanism, not the timing's quality
    from edgetailor.arch.layers import walk
    from edgetailor.arch.spec import decode
    from edgetailor.latency.kernel_predictor import detect_kernels
    from edgetailor.profiling import adapt_measure

    text = "res32 | conv_k1_s1_c16_re | ir_k1_s1_e2_c16 | head:conv_k1_c32_re,pool,fc_c10"
    journal = tmp_path / "m.jsonl"
    journal.write_text(_lines(_kernels("pwconv", 12, 0), np.full(12, 0.01)))
    networks = [(text, detect_kernels(walk(decode(text))))]
    adapt_measure.measure_networks(networks, journal, 1, "int8")
    adapt_measure.measure_networks(networks, journal, 1, "int8")  # already there: not timed again
    (name, spec, ms), = adapt.read(journal).models
    assert name == f"network:{text}" and spec == text and ms > 0
