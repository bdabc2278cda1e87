"""Split a benchmark_model capture into clean message lines.

Three generations of ``tensorflow/lite/tools/logging.h`` write the same messages
differently: (a) 2018 ``contrib/lite`` sends everything to stderr with no prefix,
(b) ~2020-22 sends INFO/WARN to stdout with no prefix, (c) current builds prefix
``INFO: ``/``WARN: ``/``ERROR: `` (only on the first line of a multi-line message) and on
Android also copy each message to logcat under the tag ``tflite``. TFLite's minimal
logging adds ``WARNING: ``/``VERBOSE: `` lines. Captures also carry terminal junk
(``^[[A`` typed while waiting, real ANSI escapes, ``\\r`` from old ``adb shell`` ptys) and
logcat lines from other tags. This module removes all of that and keeps the message text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# Real ANSI escapes, their caret spelling as pasted from a terminal, other control bytes
# (tab excluded: it separates the profiling columns).
_JUNK = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\^\[\[[0-9;?]*[A-Za-z]|\x1b[=>]?"
                   r"|[\x00-\x08\x0b-\x1f\x7f]")
# The prefixes are searched for, not anchored, but only this close to the line start, so
# that a message that merely mentions "ERROR: " is not cut.
_MAX_LEAD = 24
_LEVEL = re.compile(r"(INFO|WARN|WARNING|ERROR|FATAL|VERBOSE|DEBUG): ")
# `adb logcat -v threadtime`: "11-27 10:00:00.123  1234  1234 I tflite  : message"
_LOGCAT_THREADTIME = re.compile(
    r"\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\s+\d+\s+\d+\s+([VDIWEFA]) (.*?)\s*: ")
# `adb logcat -v brief` (the old default): "I/tflite  ( 1234): message"
_LOGCAT_BRIEF = re.compile(r"([VDIWEFA])/(.*?)\s*\(\s*\d+\): ")
_LOGCAT_LEVELS = {"V": "VERBOSE", "D": "DEBUG", "I": "INFO", "W": "WARN", "E": "ERROR",
                  "F": "FATAL", "A": "FATAL"}


@dataclass(frozen=True)
class Line:
    """One message line: ``text`` without prefixes or junk, ``raw`` as captured."""

    number: int  # 1-based line number in the capture
    text: str
    raw: str
    level: str | None  # INFO, WARN, ERROR, FATAL, VERBOSE, DEBUG; None when unknown
    prefixed: bool  # carried an explicit "INFO: "-style prefix: a new log message starts
    logcat: bool


def _strip_logcat(text: str) -> tuple[str, str | None, str | None]:
    """(message, level, tag) for a logcat line, else (text, None, None)."""
    for pattern in (_LOGCAT_THREADTIME, _LOGCAT_BRIEF):
        match = pattern.search(text)
        if match and match.start() <= _MAX_LEAD:
            return text[match.end():], _LOGCAT_LEVELS[match.group(1)], match.group(2).strip()
    return text, None, None


def clean(capture: str) -> list[Line]:
    """Message lines of ``capture``; logcat lines of tags other than ``tflite*`` are dropped."""
    out = []
    for number, raw in enumerate(capture.split("\n"), start=1):
        text = raw.rstrip("\r")
        if "\r" in text:  # a progress line overwritten in place: the visible part is the last
            text = text[text.rindex("\r") + 1:]
        text = _JUNK.sub("", text)
        text, level, tag = _strip_logcat(text)
        if tag is not None and not tag.lower().startswith("tflite"):
            continue
        prefixed = False
        if not text.startswith("\t"):  # table rows never carry a prefix
            match = _LEVEL.search(text)
            if match and match.start() <= _MAX_LEAD:
                level = "WARN" if match.group(1) == "WARNING" else match.group(1)
                text, prefixed = text[match.end():], True
        out.append(Line(number, text, raw.rstrip("\r"), level, prefixed, tag is not None))
    return out
