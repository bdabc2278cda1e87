"""Timings appended to a JSONL journal as they are made, so that a long measurement resumes where
it stopped (``host.read_journal`` and ``adapt.read`` read it back).

One line per measurement: ``{"key", "ms" (best-of, 5 decimals), "threads", "precision" (absent
for float32), and any extra fields}``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from edgetailor import _io

EMPTY_MODEL_KEY = "empty-model"  # the line of the per-inference constant: an empty model's invoke()


def line(key: str, ms: float, threads: int, precision: str = "float32", **extra) -> str:
    """One measurement as a journal line (newline included)."""
    tag = {} if precision == "float32" else {"precision": precision}
    return json.dumps({"key": key, "ms": round(float(ms), 5), "threads": threads, **tag, **extra}) + "\n"


def append(journal: Path, lines: list[str]) -> None:
    """Append ``lines`` to ``journal`` (made on the first write, never left half written)."""
    with _io.writing(journal), journal.open("a") as stream:
        stream.write("".join(lines))


def time_into(journal: Path, keys: list[str], model_for: Callable[[str], bytes], threads: int,
              precision: str = "float32", chunk: int | None = 64, progress: Callable[[int], None] | None = None,
              extra: Callable[[str], dict] | None = None, **timing) -> dict[str, float]:
    """Time the model of each key (``model_for(key)``, built a chunk at a time), ``chunk`` models
    interleaved at a time (all at once when None; ``timing.interleaved_best_ms`` with the
    ``timing`` options), appending each chunk to ``journal`` as soon as it is timed with
    ``extra(key)``'s fields; ``progress(n)`` after each chunk. Returns ms per key as journaled."""
    from edgetailor.profiling.timing import interleaved_best_ms

    out, size = {}, chunk or max(1, len(keys))
    for start in range(0, len(keys), size):
        part = keys[start:start + size]
        timed = interleaved_best_ms([model_for(key) for key in part], threads, **timing)
        for key, ms in zip(part, timed):
            out[key] = round(ms, 5)
        append(journal, [line(key, out[key], threads, precision, **(extra(key) if extra else {})) for key in part])
        if progress:
            progress(len(part))
    return out
