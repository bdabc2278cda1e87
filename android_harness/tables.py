"""The op-profiling tables of benchmark_model (``--enable_op_profiling=true``).

Layout (``stats_calculator.cc``, ``profile_summary_formatter.cc``): optional stage header
(``Profiling Info for Benchmark Initialization:`` / ``Operator-wise Profiling Info for
Regular Benchmark Runs:``), then per subgraph an optional block header (``Primary graph
profile:``, ``Subgraph (index: N) profile:``, newer ``(name: X)`` variants), then
``=== Title ===`` sections, each a column header and rows, a blank line after each;
``Number of nodes executed: N``; the short summary ``Timings (microseconds): ...``,
``Memory (bytes): ...``, ``N nodes observed``; a ``Delegate internal:`` block may follow.

Tab rows: every field is ``"\\t" + right-aligned``; the name comes last and may hold
``;`` and ``, ``. TF <= 2.8 adds a ``[start]`` column, read from the header. CSV rows
(``--profiling_output_csv_file``) are ``type, first, avg, pct%, cdf%, mem, calls, name``;
node types such as ``Convolution (NHWC, F32) IGEMM`` contain ``, `` too, so CSV rows are
matched against their numeric columns rather than split, and newer builds' tabs inside
the name (standing for commas) are turned back into commas.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import CaptureError
from .lines import Line
from .results import (NUMBER, OpRow, OpTable, Profile, ProfileBlock, RunStats, TypeRow,
                      number)

STAGES = {
    "Profiling Info for Benchmark Initialization:": "init",
    "Operator-wise Profiling Info for Regular Benchmark Runs:": "run",
}
TITLE = re.compile(r"^=+ (.+?) =+$")
BY_TYPE = "Summary by node type"
# 2018 builds print the tables with no stage header; only these titles start a profile
# there, so that an unrelated "=== x ===" line in a capture is just text.
KNOWN_TITLES = ("Run Order", "Top by Computation Time", "Top by Memory Use", BY_TYPE)
_PRIMARY = re.compile(r"^Primary graph(?: \(name: (?P<name>.*)\))? (?:profile|summary):$")
_SUBGRAPH = re.compile(
    r"^Subgraph \(index: (?P<index>\d+)(?:, name: (?P<name>.*))?\) (?:profile|summary):$")
_DELEGATE = re.compile(r"^Delegate internal:\s*$")
_NODES = re.compile(r"^Number of nodes executed: (\d+)$")
_TIMINGS = re.compile(r"^(?:Subgraph \(index: (?P<index>\d+)(?:, name: .*)?\) )?"
                      r"Timings \(microseconds\): (?P<stat>.*)$")
_MEMORY = re.compile(r"^Memory \(bytes\): (?P<stat>.*)$")
_OBSERVED = re.compile(r"^\d+ nodes observed$")
_N = f"({NUMBER})"
_CSV_OPS = r"^(.+?), " + r"{start}" + rf"{_N}, {_N}, {_N}%, {_N}%, {_N}, (\d+), (.*)$"
_CSV_OP = re.compile(_CSV_OPS.format(start=""))
_CSV_OP_START = re.compile(_CSV_OPS.format(start=rf"{_N}, "))
_CSV_TYPE = re.compile(rf"^(.+?), (\d+), {_N}, {_N}%, {_N}%, {_N}, (\d+)$")


def starts_profile(line: Line) -> str | None:
    """The stage a profile starting at ``line`` belongs to, or None if none starts there."""
    text = line.text.strip()
    if text in STAGES:
        return STAGES[text]
    title = TITLE.match(text)
    if title and title.group(1) in KNOWN_TITLES and not line.text.startswith("\t"):
        return "run"
    return None


@dataclass
class _Block:
    kind: str
    index: int | None
    name: str | None
    tables: list = field(default_factory=list)
    by_type: tuple = ()
    nodes: int | None = None
    timings: RunStats | None = None

    def freeze(self) -> ProfileBlock:
        return ProfileBlock(self.kind, self.index, self.name, tuple(self.tables), self.by_type,
                            self.nodes, self.timings)


class _Reader:
    def __init__(self, lines: Sequence[Line], source: str):
        self.lines, self.source = lines, source
        self.csv = False

    def fail(self, message: str, line: Line):
        hint = ""
        if line.logcat:
            hint = " (logcat cuts long messages at about 4 KB; capture stdout instead)"
        raise CaptureError(message + hint, line.number, line.raw, self.source)

    def number(self, text: str, line: Line, what: str) -> float | None:
        try:
            return number(text.strip().rstrip("%"))
        except ValueError:
            self.fail(f"malformed {what} {text.strip()!r} in profiling row", line)

    def count(self, text: str, line: Line, what: str) -> int:
        text = text.strip()
        if not text.isdigit():
            self.fail(f"malformed {what} {text!r} in profiling row", line)
        return int(text)

    def table(self, i: int, title: str) -> tuple[tuple, int]:
        """Rows of the table whose title is at ``i``; returns (rows, next index)."""
        if i + 1 >= len(self.lines):
            self.fail(f"table '{title}' ends before its column header", self.lines[i])
        header = self.lines[i + 1]
        text = header.text.strip()
        if text.startswith("[node type]") or text.startswith("[Node type]"):
            csv, columns = False, [c.strip() for c in text.split("\t")]
        elif text.lower().startswith("node type,"):
            csv, columns = True, [c.strip() for c in text.split(",")]
        else:
            self.fail(f"expected the column header of table '{title}'", header)
        self.csv = self.csv or csv
        start = "[start]" in columns or "start" in columns
        rows, j = [], i + 2
        while j < len(self.lines):
            line = self.lines[j]
            ends = not line.text.strip() or line.prefixed
            if ends or (not csv and not line.text.startswith("\t")):
                break
            if title == BY_TYPE:
                rows.append(self.csv_type_row(line) if csv else self.tab_type_row(line))
            else:
                rows.append(self.csv_op_row(line, start) if csv else self.tab_op_row(line, start))
            j += 1
        return tuple(rows), j

    def tab_fields(self, line: Line, expected: int, last_is_name: bool) -> list[str]:
        fields = line.text.split("\t")[1:]
        if len(fields) < expected or (not last_is_name and len(fields) > expected):
            self.fail(f"malformed profiling row (expected {expected} tab-separated fields, "
                      f"found {len(fields)})", line)
        if last_is_name:
            fields[expected - 1:] = ["\t".join(fields[expected - 1:])]
        return fields

    def tab_op_row(self, line: Line, start: bool) -> OpRow:
        f = self.tab_fields(line, 9 if start else 8, last_is_name=True)
        start_ms = self.number(f.pop(1), line, "start") if start else None
        return OpRow(f[0].strip(), f[7], self.number(f[1], line, "first"),
                     self.number(f[2], line, "avg ms"), self.number(f[3], line, "%"),
                     self.number(f[4], line, "cdf%"), self.number(f[5], line, "mem KB"),
                     self.count(f[6], line, "times called"), start_ms)

    def tab_type_row(self, line: Line) -> TypeRow:
        f = self.tab_fields(line, 7, last_is_name=False)
        return TypeRow(f[0].strip(), self.count(f[1], line, "count"),
                       self.number(f[2], line, "avg ms"), self.number(f[3], line, "avg %"),
                       self.number(f[4], line, "cdf %"), self.number(f[5], line, "mem KB"),
                       self.count(f[6], line, "times called"))

    def csv_op_row(self, line: Line, start: bool) -> OpRow:
        match = (_CSV_OP_START if start else _CSV_OP).match(line.text.rstrip(" "))
        if not match:
            self.fail("malformed CSV profiling row", line)
        g = list(match.groups())
        start_ms = number(g.pop(1)) if start else None
        return OpRow(g[0], g[7].replace("\t", ","), number(g[1]), number(g[2]), number(g[3]),
                     number(g[4]), number(g[5]), int(g[6]), start_ms)

    def csv_type_row(self, line: Line) -> TypeRow:
        match = _CSV_TYPE.match(line.text.strip())
        if not match:
            self.fail("malformed CSV node-type row", line)
        g = match.groups()
        return TypeRow(g[0], int(g[1]), number(g[2]), number(g[3]), number(g[4]), number(g[5]),
                       int(g[6]))


def read_profile(lines: Sequence[Line], i: int, source: str = "benchmark output"
                 ) -> tuple[Profile, int]:
    """Read the profile starting at ``lines[i]``; returns it and the index after it."""
    reader = _Reader(lines, source)
    stage = starts_profile(lines[i])
    if lines[i].text.strip() in STAGES:
        i += 1
    blocks: list[_Block] = []

    def current() -> _Block:
        if not blocks:
            blocks.append(_Block("subgraph", 0, None))
        return blocks[-1]

    while i < len(lines):
        line = lines[i]
        text = line.text.strip()
        if line.prefixed and not TITLE.match(text):
            break  # a new log message: the profile (one multi-line message) is over
        if not text:
            i += 1
            continue
        if text in STAGES:
            break
        title = TITLE.match(text) if not line.text.startswith("\t") else None
        if title:
            rows, i = reader.table(i, title.group(1))
            if title.group(1) == BY_TYPE:
                current().by_type = rows
            else:
                current().tables.append(OpTable(title.group(1), rows))
            continue
        if match := _PRIMARY.match(text):
            blocks.append(_Block("subgraph", 0, match["name"]))
        elif match := _SUBGRAPH.match(text):
            blocks.append(_Block("subgraph", int(match["index"]), match["name"]))
        elif _DELEGATE.match(text):
            blocks.append(_Block("delegate", None, None))
        elif match := _NODES.match(text):
            current().nodes = int(match.group(1))
        elif match := _TIMINGS.match(text):
            current().timings = RunStats.parse(match["stat"], line.number, source, line.raw)
        elif match := _MEMORY.match(text):
            RunStats.parse(match["stat"], line.number, source, line.raw)  # validated, unused
        elif not _OBSERVED.match(text):
            break
        i += 1
    return Profile(stage, tuple(b.freeze() for b in blocks), reader.csv), i
