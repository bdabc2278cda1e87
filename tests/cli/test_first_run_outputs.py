"""Issue 11, outputs: missing parents made (and unmade on failure), read-only and full disks as
one line with nothing left behind, resumable journals, search's folder, report, progress and
notes. Tests run as root, where chmod stops no write: a read-only or full file system is
simulated at the ``os`` calls the writer makes, or mounted for real as a tmpfs where allowed."""
import dataclasses
import errno
import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import zlib

import optuna
import pytest
from click.testing import CliRunner

from edgetailor import _io
from edgetailor.arch import layers
from edgetailor.choose.search import engine, report, storage
from edgetailor.cli.main import main
from edgetailor.cli.search import search_command
from edgetailor.errors import OutputError, ProfileError, SearchError
from edgetailor.profiling import host
from edgetailor.tasks.classification import train as proxy_train


def toy(spec):
    macs = layers.count(spec)[1]
    return round(40 + 8 * math.log10(macs / 1e7) + zlib.crc32(spec.encode().encode()) % 100 / 100, 3), \
        "estimated", "toy MACs curve"


def invoke(args, command=main, evaluator=None):
    return CliRunner().invoke(command, [str(a) for a in args], obj={"evaluator": evaluator} if evaluator else None)


def one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def raising(exc):
    """A ``write`` callback for ``write_atomically`` that fails with ``exc`` after writing a little."""
    def write(staged):
        staged.write_text("half")
        raise exc
    return write


@pytest.fixture
def failing_fs(monkeypatch):
    """``failing_fs(folder, code)``: ``os.mkdir`` and a writing ``os.open`` under ``folder`` fail
    with ``code`` (EROFS: a read-only mount, EACCES: no permission), as the kernel would."""
    real_mkdir, real_open = os.mkdir, os.open
    blocked: dict[str, int] = {}

    def code_for(path):
        path = os.path.abspath(os.fsdecode(path))
        return next((code for root, code in blocked.items() if path.startswith(root + os.sep)), None)

    def mkdir(path, mode=0o777, *, dir_fd=None):
        code = code_for(path)
        if code:
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_mkdir(path, mode, dir_fd=dir_fd)

    def open_(path, flags, mode=0o777, *, dir_fd=None):
        code = code_for(path)
        if code and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(code, os.strerror(code), os.fsdecode(path))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    return lambda folder, code=errno.EROFS: blocked.__setitem__(str(folder.resolve()), code)


# -- 1. missing parent folders -------------------------------------------------------------------

def test_the_writer_makes_missing_parents_and_unmakes_them_on_failure(tmp_path):
    target = tmp_path / "a" / "b" / "out.json"
    _io.write_json(target, {"ok": True})
    assert json.loads(target.read_text()) == {"ok": True} and tree(tmp_path) == ["a", "a/b", "a/b/out.json"]

    with pytest.raises(RuntimeError):
        _io.write_atomically(tmp_path / "c" / "d" / "out", raising(RuntimeError("killed")))
    with pytest.raises(KeyboardInterrupt):
        _io.write_atomically(tmp_path / "a" / "e" / "out", raising(KeyboardInterrupt()))
    assert tree(tmp_path) == ["a", "a/b", "a/b/out.json"]  # the parents made for them are gone


def test_a_parent_that_cannot_be_made_is_named(tmp_path, failing_fs):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot create folder .*/file/sub: .*/file is not a folder"):
        _io.write_bytes(tmp_path / "file" / "sub" / "out.bin", b"1")
    with pytest.raises(OutputError, match=r"cannot create .*/file/sub/out: .*/file is not a folder"):
        _io.check_output_folder(tmp_path / "file" / "sub" / "out")
    (tmp_path / "made").mkdir()
    failing_fs(tmp_path / "made" / "x", errno.EACCES)
    with pytest.raises(OutputError, match=r"cannot create folder .*/made/x/y: Permission denied"):
        _io.write_bytes(tmp_path / "made" / "x" / "y" / "out.bin", b"1")
    assert tree(tmp_path) == ["file", "made"]  # x was made for y, and removed when y was refused


def test_readme_commands_work_in_a_fresh_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(["shapes", "--format", "coco", "--images", 4, "--size", 64, "--out", "data/shapes_coco"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "shapes_coco" / "labels.json").is_file()
    _io.check_output_folder("out/iphone")  # specialize's first check: a missing parent is fine
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # and the check makes nothing


# -- 2. read-only file systems and full disks --------------------------------------------------

def test_read_only_is_found_before_any_work(tmp_path, failing_fs):
    ro = tmp_path / "ro"
    ro.mkdir()
    failing_fs(ro)
    with pytest.raises(OutputError, match=r"cannot write .*/ro/out/iphone: Read-only file system"):
        _io.check_output_folder(ro / "out" / "iphone")
    commands = {
        "shapes": ["shapes", "--images", 2, "--out", ro / "data"],
        "build": ["build", "mobilenet_v2_035", "--out", ro / "m.keras"],
        "specialize": ["specialize", "--device", "pixel1", "--budget-ms", 20, "--out", ro / "out" / "iphone"],
        "profile measure": ["profile", "measure", "--space", "proxyless", "--out", ro / "host.json"],
    }
    for name, args in commands.items():
        started = time.perf_counter()
        result = invoke(args)
        one_line_error(result, str(ro), "Read-only file system")
        assert time.perf_counter() - started < 20, name
    result = invoke(["--device", "pixel1", "--budget-ms", 60, "--trials", 1, "--out", ro / "search"],
                    search_command, toy)
    one_line_error(result, str(ro / "search"), "Read-only file system")
    assert tree(tmp_path) == ["ro"]


def test_a_full_disk_while_writing_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    from edgetailor.data import shapes

    def write_folder(root, *args, **kwargs):
        (root / "circle").mkdir(parents=True)
        (root / "circle" / "00000.png").write_bytes(b"png")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(root / "circle" / "00001.png"))

    monkeypatch.setattr(shapes, "write_folder", write_folder)
    result = invoke(["shapes", "--images", 2, "--out", tmp_path / "new" / "data"])
    one_line_error(result, f"cannot write {tmp_path / 'new' / 'data'}: No space left on device")
    assert tree(tmp_path) == []
    with pytest.raises(OutputError, match="cannot write .*x.bin: Disk quota exceeded"):
        _io.write_atomically(tmp_path / "x.bin", raising(OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))))
    with pytest.raises(FileNotFoundError):  # not the user's to fix: a bug keeps its traceback
        _io.write_atomically(tmp_path / "x.bin", raising(FileNotFoundError(errno.ENOENT, "gone")))
    assert tree(tmp_path) == []


def _storage_full(monkeypatch, after: int):
    """Optuna's SQLite storage fails to record any trial's end after the first ``after``."""
    import sqlalchemy.exc

    calls = []
    real = optuna.storages.RDBStorage.set_trial_state_values

    def set_trial_state_values(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            raise sqlalchemy.exc.OperationalError("UPDATE trials", {}, sqlite3.OperationalError("database or disk is full"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_state_values", set_trial_state_values)


def test_a_storage_that_fills_up_mid_search_is_one_search_error(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = engine.SearchConfig(space="mnasnet", device="pixel1", budget_ms=60.0, strategy="random", trials=4,
                                 storage=url)
    runner = engine.Search(config, toy)
    _storage_full(monkeypatch, after=1)
    with pytest.raises(SearchError, match=r"study storage sqlite:///.*study.db failed: database or disk is full; "
                                          "finished trials are kept") as info:
        runner.run()
    assert "Should not reach" not in str(info.value)
    runner.close()
    result = invoke(["--device", "pixel1", "--budget-ms", 60, "--trials", 6, "--out", tmp_path / "out"],
                    search_command, toy)
    one_line_error(result, "failed: database or disk is full")


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs mounted at tmp_path/mnt: a real full or read-only file system (root only)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")

    def mount(*options):
        done = subprocess.run(["mount", *options, str(mnt)], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    mount("-t", "tmpfs", "-o", "size=16m", "tmpfs")
    try:
        yield mnt, mount
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(folder):
    with open(folder / "filler", "wb", buffering=0) as stream:
        try:
            while True:
                stream.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")  # Optuna's heartbeat
def test_a_real_full_disk(tmpfs):
    mnt, _ = tmpfs
    base = ["--device", "pixel1", "--budget-ms", 60, "--accuracy", "estimated", "--out", mnt / "search"]
    assert invoke(base + ["--trials", 2], search_command).exit_code == 0
    _fill(mnt)
    with open(mnt / "filler", "r+b") as filler:  # 48 KiB free: the checks pass, SQLite opens, writes fail
        filler.truncate(os.path.getsize(mnt / "filler") - 48 * 1024)
    before = tree(mnt)
    one_line_error(invoke(["shapes", "--images", 50, "--size", 64, "--out", mnt / "data"]),
                   str(mnt / "data"), "No space left on device")
    assert tree(mnt) == before
    one_line_error(invoke(base + ["--trials", 6], search_command), "study.db failed: database or disk is full")


def test_a_real_read_only_mount(tmpfs):
    mnt, mount = tmpfs
    mount("-o", "remount,ro")
    one_line_error(invoke(["shapes", "--images", 2, "--size", 32, "--out", mnt / "data"]),
                   str(mnt / "data"), "Read-only file system")
    one_line_error(invoke(["--device", "pixel1", "--budget-ms", 60, "--accuracy", "estimated", "--out", mnt / "s"],
                          search_command), str(mnt / "s"), "Read-only file system")


# -- 3. a journal cut off by a killed run ------------------------------------------------------

LINE = '{"key": "conv-%d", "ms": 1.5, "threads": 1}\n'


def test_a_cut_off_last_journal_line_is_dropped_and_reported(tmp_path):
    journal = tmp_path / "host.json.measurements.jsonl"
    journal.write_text(LINE % 1 + LINE % 2 + '{"key": "conv-3", "ms"')
    said = []
    assert host.read_journal(journal, 1, said.append) == {"conv-1": 1.5, "conv-2": 1.5}
    assert len(said) == 1 and "cut-off last line 3" in said[0] and str(journal) in said[0]
    assert journal.read_text() == LINE % 1 + LINE % 2  # appending goes on from a whole line
    journal.write_text(LINE % 1 + (LINE % 2)[:-1])  # whole but unterminated: measured again, too
    assert host.read_journal(journal, 1, said.append) == {"conv-1": 1.5}
    assert journal.read_text() == LINE % 1
    journal.write_text(LINE % 1 + "\0\0\0\0\n")  # what a power cut can leave
    assert host.read_journal(journal, 1) == {"conv-1": 1.5} and journal.read_text() == LINE % 1


def test_a_bad_line_in_the_middle_of_the_journal_is_one_line(tmp_path, monkeypatch):
    journal = tmp_path / "host.json.measurements.jsonl"
    journal.write_text(LINE % 1 + '{"key": "conv-2", "m\n' + LINE % 3)
    with pytest.raises(ProfileError, match=r"host.json.measurements.jsonl line 2 is not a measurement"):
        host.read_journal(journal, 1)
    result = invoke(["profile", "measure", "--space", "proxyless", "--archs", 1, "--out", tmp_path / "host.json"])
    one_line_error(result, "line 2 is not a measurement")
    journal.write_text(LINE % 1 + '{"key": "conv-2", "m')

    def stop(threads, precision):
        raise ProfileError("stopped after reading the journal")

    monkeypatch.setattr(host, "_empty_model_ms", stop)
    result = invoke(["profile", "measure", "--space", "proxyless", "--archs", 1, "--out", tmp_path / "host.json"])
    one_line_error(result, "stopped after reading the journal")
    assert "dropped its cut-off last line 2" in result.stderr


def test_profile_measure_leaves_nothing_when_stopped_before_its_first_measurement(tmp_path, monkeypatch):
    def stop(threads, precision):
        raise KeyboardInterrupt

    monkeypatch.setattr(host, "_empty_model_ms", stop)
    result = invoke(["profile", "measure", "--space", "proxyless", "--out", tmp_path / "new" / "host.json"])
    assert result.exit_code == 1 and "Aborted!" in result.output
    assert tree(tmp_path) == []


def test_third_party_log_lines_stay_quiet_unless_verbose(tmp_path, monkeypatch, capfd):
    def noisy(threads, precision):
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        raise ProfileError("stop")

    monkeypatch.setattr(host, "_empty_model_ms", noisy)
    args = ["profile", "measure", "--space", "proxyless", "--out", tmp_path / "host.json"]
    one_line_error(invoke(args), "stop")
    assert "XNNPACK" not in capfd.readouterr().err
    one_line_error(invoke(args + ["--verbose"]), "stop")
    assert "XNNPACK" in capfd.readouterr().err


# -- 4. build refuses an existing model ---------------------------------------------------------

def test_build_refuses_an_existing_model(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"a model")
    one_line_error(invoke(["build", "mobilenet_v2_035", "--out", model]), f"output {model} already exists")
    assert model.read_bytes() == b"a model"


# -- 5-9. search: nothing made on a mistake, one report, progress, honest notes ------------------

@pytest.mark.parametrize("args, fragment", [
    (["--space", "darts"], "unknown search space 'darts'"),
    (["--strategy", "evolution"], "unknown strategy 'evolution'"),
    (["--objective", "fast"], "unknown objective 'fast'"),
    (["--budget-ms", -3], "must be > 0 ms"),
    (["--budget-ms", 1], "no candidate of space 'mnasnet' meets 1 ms"),
    (["--device", "pixel99"], "unknown device 'pixel99'"),
    (["--storage", "not a url"], "not a storage URL"),
    (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot open study storage"),
    (["--storage", "sqlite:////no/such/folder/study.db"], "folder /no/such/folder does not exist"),
    (["--resolution", 16], "--resolution must be 32..224 px with the built-in shapes dataset (got 16)"),
    (["--dataset", "/no/such/dataset"], "dataset folder not found"),
])
def test_search_mistakes_make_no_folder(tmp_path, args, fragment):
    options = {"--device": "pixel1", "--budget-ms": 60, "--trials": 1} | dict(zip(args[::2], args[1::2]))
    flat = [item for pair in options.items() for item in pair]
    proxy = args[0] in ("--resolution", "--dataset")  # checked when the real proxy trainer is made
    one_line_error(invoke(flat + ["--out", tmp_path / "a" / "b" / "out"], search_command, None if proxy else toy),
                   fragment)
    assert tree(tmp_path) == []


def test_search_prints_a_line_per_trial_and_json_stays_clean(tmp_path):
    result = invoke(["--device", "pixel1", "--budget-ms", 60, "--trials", 3, "--out", tmp_path / "new" / "out",
                     "--json"], search_command, toy)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    lines = [line for line in result.stderr.splitlines() if line.startswith("trial ")]
    assert len(lines) == 3, result.stderr
    for line in lines:
        assert re.fullmatch(r"trial \d+: \d+\.\d ms, top-1 \d+\.\d\d% \(estimated\); \d+\.\d s elapsed", line), line
    assert summary["files"] and (tmp_path / "new" / "out" / "pareto.json").is_file()


def _over_budget_setup():
    """A budget just above the fastest candidate, and accuracy that grows fast with MACs: the
    soft reward's best is then over the budget."""
    config = engine.SearchConfig(space="mnasnet", device="pixel1", budget_ms=60.0, strategy="random", trials=5)
    fastest = engine.Search(config, toy).fastest_ms
    return round(fastest * 1.02, 2), lambda spec: (min(99.0, layers.count(spec)[1] / 1e7), "estimated", "MACs")


def test_a_soft_best_over_the_budget_says_so(tmp_path):
    budget, steep = _over_budget_setup()
    config = engine.SearchConfig(space="mnasnet", device="pixel1", budget_ms=budget, strategy="random", trials=5)
    result = engine.run_search(config, steep)
    assert result.best.latency_ms > budget
    assert f"OVER the {budget:g} ms budget" in result.best_note
    args = ["--device", "pixel1", "--budget-ms", budget, "--strategy", "random", "--trials", 5]
    human = invoke(args + ["--out", tmp_path / "human"], search_command, steep)
    assert human.exit_code == 0 and f"OVER the {budget:g} ms budget" in human.stdout
    data = json.loads(invoke(args + ["--out", tmp_path / "json", "--json"], search_command, steep).stdout)
    assert f"OVER the {budget:g} ms budget" in data["best_note"]
    under = engine.run_search(engine.SearchConfig(space="mnasnet", device="pixel1", budget_ms=10000.0,
                                                  strategy="random", trials=3), steep)
    assert under.best_note == "highest soft reward"


class _TinyProxy(proxy_train.ProxyTrainer):
    """A proxy trainer whose recipe is real and whose training is the toy curve."""

    def __call__(self, spec):
        return toy(spec)


@pytest.mark.parametrize("val_images, warned", [(2, True), (400, False)])
def test_few_validation_images_are_warned_about(tmp_path, val_images, warned):
    trainer = _TinyProxy(proxy_train.Recipe(train_images=8, val_images=val_images))
    result = invoke(["--device", "pixel1", "--budget-ms", 60, "--trials", 1, "--out", tmp_path / "out", "--json"],
                    search_command, trainer)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    if warned:
        assert len(warnings) == 1 and "2 validation images" in warnings[0] and "steps of 50.00%" in warnings[0]
    else:
        assert warnings == []
    json.loads(result.stdout)


def test_the_report_written_last_holds_the_whole_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = engine.SearchConfig(space="mnasnet", device="pixel1", budget_ms=60.0, strategy="random", trials=3,
                                 storage=url)
    early = engine.Search(config, toy)
    early_result = early.run()  # this worker's view: 3 trials
    late = engine.Search(dataclasses.replace(config, trials=6), toy)
    late_written, _ = report.write_study_report(late, late.run(), tmp_path)
    assert late_written.counts == {"complete": 6}
    written, _ = report.write_study_report(early, early_result, tmp_path)  # the slower writer comes last
    assert written.counts == {"complete": 6} and written.new_trials == 3
    assert json.loads((tmp_path / "pareto.json").read_text())["trials"] == {"complete": 6}
    # a writer waits for the one holding the lock
    import fcntl

    with open(tmp_path / report.LOCK_FILE, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        (tmp_path / "pareto.json").unlink()
        writer = threading.Thread(target=report.write_study_report, args=(early, early_result, tmp_path))
        writer.start()
        time.sleep(0.5)
        assert not (tmp_path / "pareto.json").exists()
    writer.join(30)
    assert (tmp_path / "pareto.json").exists()
    early.close()
    late.close()


@pytest.mark.slow  # two worker processes
def test_two_searches_started_together_on_a_new_out_both_report_the_whole_study(tmp_path):
    # both create the SQLite tables at once (SQLite: "table ... already exists", retried) and
    # both write the report; the one written last holds every trial
    command = [sys.executable, "-m", "edgetailor", "search", "--device", "pixel1", "--budget-ms", "100",
               "--strategy", "random", "--trials", "8", "--accuracy", "estimated", "--out", str(tmp_path / "out"),
               "--json"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=240) for worker in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
    complete = optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    total = len([t for t in complete.trials if t.state == optuna.trial.TrialState.COMPLETE])
    assert json.loads((tmp_path / "out" / "pareto.json").read_text())["trials"]["complete"] == total >= 8


# -- 10. the README's PostgreSQL URL -----------------------------------------------------------

def test_a_bare_postgresql_url_uses_psycopg2(monkeypatch):
    assert storage.engine_url("postgresql://user@host/db") == "postgresql+psycopg2://user@host/db"
    assert storage.engine_url("postgresql://u:p%40ss@host:5433/db?sslmode=require") == \
        "postgresql+psycopg2://u:p%40ss@host:5433/db?sslmode=require"
    for url in ("postgresql+psycopg2://u@h/db", "sqlite:////tmp/study.db", "mysql+pymysql://u@h/db"):
        assert storage.engine_url(url) == url
    import sqlalchemy

    assert sqlalchemy.create_engine(storage.engine_url("postgresql://user@host/db")).dialect.driver == "psycopg2"
    given = []

    class RDBStorage:
        def __init__(self, url, **kwargs):
            given.append(url)

    monkeypatch.setattr(optuna.storages, "RDBStorage", RDBStorage)
    storage.open_storage("postgresql://user:secret@host/db")
    assert given == ["postgresql+psycopg2://user:secret@host/db"]
