"""Typed, frozen results of parsing benchmark_model output. Units are in the names."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import CaptureError

# C++ default stream output of a double: "33209.4", "2.95034e+06", "nan", "-nan", "inf".
NUMBER = r"[-+]?(?:nan|inf|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_STAT = re.compile(
    rf"^count=(?P<count>\d+)"
    rf"(?: first=(?P<first>{NUMBER}) curr=(?P<curr>{NUMBER}) min=(?P<min>{NUMBER})"
    rf" max=(?P<max>{NUMBER}) avg=(?P<avg>{NUMBER}) std=(?P<std>{NUMBER})"
    rf"| curr=(?P<same>{NUMBER})\s*(?:\(all same\))?)?\s*$")


def number(text: str) -> float | None:
    """A C++-printed number; NaN (an average over nothing) and infinities become None."""
    value = float(text)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class RunStats:
    """One ``count=... first=... curr=... min=... max=... avg=... std=...`` line, microseconds.

    ``count=N curr=C`` (all runs equal) fills every field with C and std 0;
    ``count=0`` leaves them None.
    """

    count: int
    first_us: float | None = None
    curr_us: float | None = None
    min_us: float | None = None
    max_us: float | None = None
    avg_us: float | None = None
    std_us: float | None = None

    @classmethod
    def parse(cls, text: str, line_no: int | None = None, source: str = "benchmark output",
              raw: str | None = None) -> "RunStats":
        match = _STAT.match(text.strip())
        if not match:
            raise CaptureError("malformed statistics line", line_no,
                               text if raw is None else raw, source)
        count = int(match["count"])
        if match["same"] is not None:
            value = number(match["same"])
            return cls(count, value, value, value, value, value, 0.0)
        if match["first"] is None:
            return cls(count)
        return cls(count, *(number(match[k]) for k in ("first", "curr", "min", "max", "avg",
                                                        "std")))


@dataclass(frozen=True)
class OpRow:
    """A row of an op table (Run Order, Top by Computation Time, ...); times per call."""

    node_type: str
    name: str
    first_ms: float | None
    avg_ms: float | None
    percent: float | None
    cdf_percent: float | None
    mem_kb: float | None
    calls: int  # times called per run
    start_ms: float | None = None  # only TF <= 2.8 prints a [start] column


@dataclass(frozen=True)
class TypeRow:
    """A row of ``Summary by node type``; ``avg_ms`` is per run, all calls of the type."""

    node_type: str
    count: int
    avg_ms: float | None
    percent: float | None
    cdf_percent: float | None
    mem_kb: float | None
    calls: int


@dataclass(frozen=True)
class OpTable:
    title: str
    rows: tuple[OpRow, ...]


@dataclass(frozen=True)
class ProfileBlock:
    """The tables of one subgraph (``kind='subgraph'``) or of ``Delegate internal``."""

    kind: str  # "subgraph" | "delegate"
    subgraph_index: int | None  # 0 = primary graph; None for delegate-internal blocks
    subgraph_name: str | None
    tables: tuple[OpTable, ...]
    by_type: tuple[TypeRow, ...]
    nodes_executed: int | None
    timings: RunStats | None  # "Timings (microseconds): ..." (sum of ops per run)

    def table(self, title: str) -> tuple[OpRow, ...]:
        return next((t.rows for t in self.tables if t.title == title), ())

    @property
    def run_order(self) -> tuple[OpRow, ...]:
        return self.table("Run Order")


@dataclass(frozen=True)
class Profile:
    """One op profile: initialization (``stage='init'``) or the regular runs (``'run'``)."""

    stage: str
    blocks: tuple[ProfileBlock, ...]
    csv: bool  # written by the CSV formatter (--profiling_output_csv_file)

    @property
    def primary(self) -> ProfileBlock | None:
        return next((b for b in self.blocks if b.kind == "subgraph" and b.subgraph_index == 0),
                    None)

    @property
    def delegate_internal(self) -> ProfileBlock | None:
        return next((b for b in self.blocks if b.kind == "delegate"), None)


@dataclass(frozen=True)
class LogMessage:
    line_no: int
    level: str
    text: str


@dataclass(frozen=True)
class BenchmarkResult:
    """Everything read from one benchmark_model run. Times in µs as printed, sizes in MB."""

    log_format: str  # "prefixed" (INFO: ...), "unprefixed", or "logcat"
    summary_format: str  # "current" (Inference timings in us) or "legacy" (Average ...)
    params: tuple[tuple[str, str], ...]  # "Num threads: [4]" -> ("Num threads", "4")
    inference_avg_us: float
    init_us: float | None
    first_us: float | None
    warmup_avg_us: float | None
    warmup: RunStats | None
    inference: RunStats | None
    model_size_mb: float | None
    memory_init_mb: float | None
    memory_overall_mb: float | None
    peak_memory_mb: float | None
    delegate: str | None  # "xnnpack", "gpu", "nnapi", "cpu" or None when unknown
    init_profile: Profile | None
    run_profile: Profile | None
    errors: tuple[LogMessage, ...]
    warnings: tuple[LogMessage, ...]

    def param(self, *names: str) -> str | None:
        """The first of ``names`` that the capture logged (case-insensitive)."""
        found = {key.lower(): value for key, value in self.params}
        return next((found[n.lower()] for n in names if n.lower() in found), None)

    @property
    def graph(self) -> str | None:
        return self.param("Graph")

    @property
    def num_threads(self) -> int | None:
        """Threads used: the effective count when logged, else the flag when positive."""
        for name in ("#threads used for CPU inference", "Num threads"):
            value = self.param(name)
            if value is not None and value.lstrip("-").isdigit() and int(value) > 0:
                return int(value)
        return None

    @property
    def latency_ms(self) -> float:
        return self.inference_avg_us / 1000.0

    @property
    def ops(self) -> tuple[OpRow, ...]:
        """Primary-graph ops in run order from the regular-run profile (empty without one)."""
        primary = self.run_profile.primary if self.run_profile else None
        return primary.run_order if primary else ()
