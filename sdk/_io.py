"""The one atomic writer: stage the output beside its target, then rename; nothing half written.

Every file or folder the project writes for a user (bundles, artifacts, profiles, reports,
datasets, Keras models) goes through ``write_atomically``. Missing parent folders are made first
(as ``mkdir -p`` would) and removed again if the write fails. On any failure, Ctrl-C included,
the staged copy is removed and the target is untouched; a full disk, a read-only file system or
a permission problem is one ``OutputError`` line naming the path and the reason.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from edgetailor.errors import OutputError

# errors of the file system that the user fixes (space, permissions, mounts, names); any other
# OSError while writing stays a bug with its traceback
USER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                         errno.EIO, errno.ENAMETOOLONG})


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


@contextlib.contextmanager
def writing(path: str | Path):
    """Turn a user-fixable ``OSError`` (``USER_ERRNOS``) raised while writing ``path`` into an
    ``OutputError`` that names ``path`` and the reason."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in USER_ERRNOS:
            raise
        raise OutputError(f"cannot write {path}: {_reason(exc)}") from exc


def check_writable(path: str | Path) -> None:
    """Fail now, not after the work: ``path``'s nearest existing ancestor must be a folder in which
    a one-byte file can be made (and is removed at once); a full disk fails the byte."""
    path = Path(path)
    ancestor = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    if not ancestor.is_dir():
        raise OutputError(f"cannot create {path}: {ancestor} is not a folder")
    with writing(path):
        handle, probe = tempfile.mkstemp(prefix=".edgetailor-probe-", dir=ancestor)
        try:
            os.write(handle, b"\0")
        finally:
            os.close(handle)
            os.unlink(probe)


def check_output_folder(out_dir: str | Path) -> None:
    """An output folder must be new or empty, and writable (its missing parents are made later)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputError(f"output {out_dir} already exists and is not empty")
    check_writable(out_dir)


def check_output_file(path: str | Path, *, replace: bool = False) -> None:
    """An output file must be new (or, with ``replace``, a file) and writable."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"output {path} is a folder")
    if path.exists() and not replace:
        raise OutputError(f"output {path} already exists")
    check_writable(path)


def make_folders(folder: str | Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it made, outermost first, for ``remove_folders``."""
    folder = Path(folder)
    missing: list[Path] = []
    for each in (folder, *folder.parents):
        if each.exists():
            if not each.is_dir():
                raise OutputError(f"cannot create folder {missing[-1] if missing else folder}: "
                                  f"{each} is not a folder")
            break
        missing.append(each)
    created: list[Path] = []
    for each in reversed(missing):
        try:
            each.mkdir()
        except FileExistsError:  # another process made it meanwhile; it is not ours to remove
            continue
        except OSError as exc:
            remove_folders(created)
            raise OutputError(f"cannot create folder {each}: {_reason(exc)}") from exc
        created.append(each)
    return created


def remove_folders(created: list[Path]) -> None:
    """Undo ``make_folders``: remove the folders it made, innermost first, while they are empty
    (one that holds another process's files stays)."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            return


def write_atomically(path: str | Path, write: Callable[[Path], None], *, replace: bool = False) -> Path:
    """Call ``write(staged)``, then rename ``staged`` to ``path``; returns ``path``.

    ``staged`` is a path (not yet created) with ``path``'s name inside a hidden temporary folder
    beside it, so a writer that checks the suffix (Keras saves only ``.keras``) is satisfied and
    ``write`` may make a file or a folder. An existing file is replaced; an existing folder only
    when it is empty or ``replace`` is set. Missing parents are made, and removed on failure.
    """
    path = Path(path)
    created = make_folders(path.parent)
    try:
        with writing(path):
            temp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
            try:
                staged = temp / path.name
                write(staged)
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(staged, (0o777 if staged.is_dir() else 0o666) & ~umask)  # mkdtemp makes 0700
                if path.is_dir() and (replace or not any(path.iterdir())):
                    shutil.rmtree(path)
                os.replace(staged, path)
            finally:
                shutil.rmtree(temp, ignore_errors=True)
    except BaseException:
        remove_folders(created)
        raise
    return path


def write_bytes(path: str | Path, data: bytes) -> None:
    """``data`` to the file ``path``, synced to disk before the rename."""
    def write(staged: Path) -> None:
        with staged.open("wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    write_atomically(path, write)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, document) -> None:
    """Strict JSON (a NaN is an error, not ``NaN``), one space indent, trailing newline."""
    write_text(path, json.dumps(document, indent=1, allow_nan=False) + "\n")
