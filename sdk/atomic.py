"""Atomic file writes: a temporary file beside the target, then a rename; nothing half written."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def replace_atomically(path: str | Path, write: Callable[[Path], None], suffix: str = ".tmp") -> None:
    """Call ``write(temp_path)`` for a file beside ``path``, then rename it over ``path``.

    On any failure (Ctrl-C included) the temporary file is removed and ``path`` is untouched.
    ``suffix`` matters to writers that check it (Keras saves only to ``.keras``).
    """
    path = Path(path)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        write(Path(temp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def replace_folder_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(staged)`` for a folder path beside ``path`` (not yet created), then put it in
    place of ``path`` (an existing ``path`` is replaced). On failure nothing changes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        staged = temp / path.name
        write(staged)
        if path.exists():
            shutil.rmtree(path)
        os.replace(staged, path)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return path


def write_bytes(path: str | Path, data: bytes) -> None:
    def write(temp: Path) -> None:
        with temp.open("wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    replace_atomically(path, write)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, document) -> None:
    write_text(path, json.dumps(document, indent=1, allow_nan=False) + "\n")
