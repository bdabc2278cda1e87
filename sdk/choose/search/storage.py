"""Optuna storage for searches: an RDB URL (SQLite file, PostgreSQL, ...) opened with heartbeats,
SQLite tuned for Optuna's many small commits, and one-line errors that never show a password,
also when the storage fails in the middle of a search (a full disk, a lost server).
"""
from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
import warnings

import optuna

from edgetailor.errors import SearchError

HEARTBEAT_S, GRACE_S = 5, 20  # a killed worker's running trial is failed (and queued again) after GRACE_S


class StorageError(SearchError):
    """A storage URL that cannot be parsed or reached."""


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show it as given
        return url


def first_line(exc: BaseException) -> str:
    """The first line of an error (of the database driver's error, when SQLAlchemy wraps one)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


def engine_url(url: str) -> str:
    """The URL SQLAlchemy is given for ``url``: a bare ``postgresql://`` names psycopg2 (a
    dependency), as SQLAlchemy 2 would pick psycopg 3, which is not installed."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def _sqlite_connection(path: str) -> sqlite3.Connection:
    """A SQLite connection in WAL mode with ``synchronous=NORMAL``: a commit no longer waits for
    fsync (Optuna commits every suggested parameter), and a killed process still loses nothing
    that was committed (only a power cut can drop the last transactions; the file stays valid)."""
    connection = sqlite3.connect(path, timeout=30, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def open_storage(url: str | None) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url`` (None: in memory) with heartbeats; clear errors."""
    if url is None:
        return optuna.storages.InMemoryStorage()
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(f"not a storage URL: {url!r} (expected e.g. sqlite:///study.db or "
                           "postgresql://user@host/db)") from None
    engine_kwargs: dict = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = os.path.dirname(os.path.abspath(parsed.database))
            if not os.path.isdir(folder):
                raise StorageError(f"cannot open study storage {mask_url(url)}: folder {folder} does not exist")
            engine_kwargs["creator"] = functools.partial(_sqlite_connection, parsed.database)
    elif parsed.get_backend_name() in ("postgresql", "mysql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    last: BaseException | None = None
    for _attempt in range(3):  # two workers creating the tables at once may collide; retry twice
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
                return optuna.storages.RDBStorage(
                    engine_url(url), engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=callback)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # driver missing, refused, auth, schema...: one line for the user
            last = exc
            # PostgreSQL reports the collision as one of these; SQLite as "table ... already exists"
            if (type(exc).__name__ not in ("IntegrityError", "ProgrammingError")
                    and "already exists" not in first_line(exc)):
                break
            time.sleep(0.5)
    raise StorageError(f"cannot open study storage {mask_url(url)}: {first_line(last)}")


def _database_error(exc: BaseException) -> BaseException | None:
    """The SQLAlchemy or driver error behind ``exc`` (itself, its cause or its context), if any."""
    from sqlalchemy.exc import SQLAlchemyError

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (SQLAlchemyError, sqlite3.Error)):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def storage_errors(url: str):
    """A study storage failing mid-search (a full disk, a lost server) as one ``StorageError``.

    Optuna hides the driver's error: when it cannot record a trial's end, ``optimize`` finds the
    trial in no state it expects and raises ``AssertionError: Should not reach.``, with the
    database error as its context; that context is what the user needs to see. Optuna's
    heartbeat thread meets the same failure and would print its traceback; while this context is
    open, a thread that dies of a database error dies quietly (the search reports it once)."""
    previous = threading.excepthook

    def excepthook(args) -> None:
        if _database_error(args.exc_value) is None:
            previous(args)

    threading.excepthook = excepthook
    try:
        yield
    except SearchError:
        raise
    except Exception as exc:
        cause = _database_error(exc)
        if cause is None:
            raise
        raise StorageError(f"study storage {mask_url(url)} failed: {first_line(cause)}; finished "
                           "trials are kept, rerun the same command to resume once it is fixed") from exc
    finally:
        threading.excepthook = previous


@contextlib.contextmanager
def quiet_optuna():
    """Optuna's info log and experimental-feature warnings off for a while (failures are
    recorded in the trials and reported by the search; the log would repeat them)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
