"""Searches in other processes: killed and interrupted workers resume; two workers share one
study on a real PostgreSQL server (a throwaway cluster this test starts and stops)."""
import glob
import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from edgetailor.choose.search import engine as search
from edgetailor.cli.search import search_command

pytestmark = pytest.mark.slow  # worker processes and a PostgreSQL cluster

# The worker stands for a search run from a terminal, where Ctrl-C raises KeyboardInterrupt. A
# test run started in the background by a shell inherits SIGINT ignored (and Python then installs
# no handler), so the worker puts Python's default handler back.
WORKER = '''
import json, os, signal, sys, time, zlib
signal.signal(signal.SIGINT, signal.default_int_handler)
from edgetailor.choose.search import engine as search
url, study, trials, delay, strategy, go, started = sys.argv[1:8]

def evaluate(spec):
    with open(started, "a") as log:  # one line per evaluation begun
        log.write(spec.encode() + "\\n")
    time.sleep(float(delay))
    return 50 + zlib.crc32(spec.encode().encode()) % 1000 / 100, "estimated", "toy"

deadline = time.time() + 120
while go != "-" and not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.05)
config = search.SearchConfig(space="mnasnet", device="pixel1", budget_ms=60.0, strategy=strategy,
                             trials=int(trials), seed=0, storage=url, study=study)
try:
    result = search.run_search(config, evaluate)
except search.SearchInterrupted as exc:
    print(exc, flush=True)
    sys.exit(130)
print(json.dumps({"new": result.new_trials, "complete": result.counts.get("complete", 0)}), flush=True)
'''


@pytest.fixture()
def worker(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)

    def start(url, trials, delay, strategy="random", study="search", go="-"):
        return subprocess.Popen([sys.executable, str(script), url, study, str(trials), str(delay), strategy, go,
                                 str(tmp_path / "evaluations.log")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return start


def _complete(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=10) as connection:
            return connection.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def _wait_for(db: Path, count: int, process: subprocess.Popen, limit_s: float = 90.0) -> None:
    deadline = time.time() + limit_s
    while _complete(db) < count:
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "worker too slow"
        time.sleep(0.05)


def toy(spec):
    import zlib

    return 50 + zlib.crc32(spec.encode().encode()) % 1000 / 100, "estimated", "toy"


def test_killed_worker_resumes_with_no_finished_trial_lost(tmp_path, worker):
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    process = worker(url, trials=8, delay=0.3)
    _wait_for(db, 3, process)
    process.kill()
    process.wait(timeout=30)
    before = optuna.load_study(study_name="search", storage=url)
    finished = {t.number: t.params for t in before.trials if t.state == TrialState.COMPLETE}
    assert len(finished) >= 3
    config = search.SearchConfig(space="mnasnet", device="pixel1", budget_ms=60.0, strategy="random",
                                 trials=8, seed=0, storage=url)
    result = search.run_search(config, toy)
    assert result.counts["complete"] == 8 and result.new_trials == 8 - len(finished)
    after = optuna.load_study(study_name="search", storage=url)
    for number, params in finished.items():
        assert after.trials[number].state == TrialState.COMPLETE and after.trials[number].params == params


def test_ctrl_c_in_a_worker_fails_its_trial_and_a_rerun_retries_it(tmp_path, worker):
    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    process = worker(url, trials=6, delay=1.0)
    _wait_for(db, 2, process)
    started = tmp_path / "evaluations.log"
    deadline = time.time() + 60
    while len(started.read_text().splitlines()) < 3:  # interrupt the third evaluation's 1 s
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.02)
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert re.fullmatch(r"interrupted: \d of 6 trials complete in study 'search' \(sqlite:///.*\); "
                        r"rerun the same command to resume\n", out), out
    assert "Traceback" not in err
    study = optuna.load_study(study_name="search", storage=url)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(failed) == 1 and len(waiting) == 1
    assert waiting[0].system_attrs["fixed_params"] == failed[0].params
    rerun = worker(url, trials=6, delay=0.0)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert json.loads(out)["complete"] == 6
    retried = optuna.load_study(study_name="search", storage=url).trials[waiting[0].number]
    assert retried.state == TrialState.COMPLETE and retried.params == failed[0].params


# -- PostgreSQL --------------------------------------------------------------------------------

def _postgres_binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(re.search(r"postgresql/(\d+)", p).group(1)))
    if not found:
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb); "
                    "install the Debian package postgresql (tools/postgres-for-tests.sh)")
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL cluster on a Unix socket in a private temporary folder."""
    bindir = _postgres_binaries()
    prefix = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as user postgres
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the test cluster")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser (util-linux) is missing")
        prefix = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="edgetailor-pg-"))
    if prefix:
        os.chown(base, account.pw_uid, account.pw_gid)
    data, log = base / "data", base / "server.log"

    def run(*args):
        return subprocess.run(prefix + [str(a) for a in args], cwd=base, capture_output=True, text=True,
                              timeout=120)

    try:
        step = run(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        assert step.returncode == 0, step.stderr
        step = run(bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o",
                   f"-k {base} -c listen_addresses='' -p 5432 -c fsync=off", "start")
        assert step.returncode == 0, step.stderr + (log.read_text() if log.exists() else "")
        yield f"postgresql+psycopg2://postgres@/postgres?host={base}&port=5432"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_two_workers_share_one_study_on_postgresql(tmp_path, worker, postgres_url):
    go = tmp_path / "go"
    workers = [worker(postgres_url, trials=16, delay=0.15, strategy="tpe", study="shared", go=str(go))
               for _ in range(2)]
    time.sleep(0.5)
    go.touch()
    outputs = [process.communicate(timeout=240) for process in workers]
    for process, (out, err) in zip(workers, outputs):
        assert process.returncode == 0, err
    reports = [json.loads(out) for out, _ in outputs]
    assert all(report["new"] >= 1 for report in reports), reports
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= 16
    pids = {t.user_attrs["candidate"]["worker"].rsplit(":", 1)[1] for t in complete}
    assert pids == {str(process.pid) for process in workers}
    assert len({t.number for t in study.trials}) == len(study.trials)
    # the CLI reads the shared study through the README's form of the URL (a bare postgresql://,
    # which SQLAlchemy 2 would give to psycopg 3): nothing left to run, outputs written
    out_dir = tmp_path / "out"
    bare = postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    result = CliRunner().invoke(search_command, [
        "--device", "pixel1", "--budget-ms", "60", "--strategy", "tpe", "--trials", "16",
        "--storage", bare, "--study", "shared", "--out", str(out_dir), "--json"],
        obj={"evaluator": toy})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["new_trials"] == 0 and summary["trials"]["complete"] == len(complete)
    assert (out_dir / "pareto.json").exists() and not (out_dir / "study.db").exists()
