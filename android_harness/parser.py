"""Parse saved TFLite ``benchmark_model`` output (any logging generation) into a result.

The structured parts must be well formed (statistics lines, the timing summary, memory
lines, profiling tables); anything else is free text and skipped. A capture without a
timing summary, or with a malformed structured line, raises :class:`CaptureError` naming
the line. Format reference: the edgetailor conventions, section 1.
"""
from __future__ import annotations

import re
from pathlib import Path

from . import tables
from .errors import CaptureError
from .lines import Line, clean
from .results import NUMBER, BenchmarkResult, LogMessage, Profile, RunStats, number

_SUMMARY = "Inference timings in us:"
_LEGACY_SUMMARY = "Average inference timings in us:"
_ITEM = re.compile(rf"^(?P<key>[A-Za-z][A-Za-z ()]*): (?P<value>{NUMBER})$")
_PARAM = re.compile(r"^(?P<key>[^\s\[\]=:][^\[\]=]*?)\s*: \[(?P<value>.*)\]$")
_MEMORY = {  # prefix -> full pattern; a line with the prefix must match the pattern
    "Memory footprint delta from the start of the tool (MB):":
        re.compile(rf"^Memory footprint delta from the start of the tool \(MB\): "
                   rf"init=(?P<init>{NUMBER}) overall=(?P<overall>{NUMBER})$"),
    "Peak memory footprint (MB):":
        re.compile(rf"^Peak memory footprint \(MB\): init=(?P<init>{NUMBER}) "
                   rf"overall=(?P<overall>{NUMBER})$"),
    "Overall peak memory footprint (MB) via periodic monitoring:":
        re.compile(rf"^Overall peak memory footprint \(MB\) via periodic monitoring: "
                   rf"(?P<peak>{NUMBER})$"),
    "The input model file size (MB):":
        re.compile(rf"^The input model file size \(MB\): (?P<size>{NUMBER})$"),
}
# Evidence of the delegate that ran, strongest first within each kind.
_DELEGATE_LINES = (
    ("gpu", re.compile(r"Created TensorFlow Lite delegate for GPU"
                       r"|delegate \(TfLiteGpuDelegate")),
    ("nnapi", re.compile(r"Created TensorFlow Lite delegate for NNAPI"
                         r"|delegate \(TfLiteNnapiDelegate")),
    ("xnnpack", re.compile(r"Created TensorFlow Lite XNNPACK delegate"
                           r"|delegate \(TfLiteXNNPackDelegate")),
)
_DELEGATE_ROWS = (("gpu", "TfLiteGpuDelegate"), ("nnapi", "TfLiteNnapiDelegate"),
                  ("xnnpack", "TfLiteXNNPackDelegate"))


class _State:
    def __init__(self, source: str):
        self.source = source
        self.params: list[tuple[str, str]] = []
        self.stats: list[tuple[Line, RunStats]] = []
        self.summary: tuple[Line, dict[str, float | None], bool] | None = None
        self.memory: dict[str, float | None] = {}
        self.profiles: dict[str, Profile] = {}
        self.evidence: set[str] = set()
        self.startup_seen = False
        self.errors: list[LogMessage] = []
        self.warnings: list[LogMessage] = []

    def fail(self, message: str, line: Line):
        raise CaptureError(message, line.number, line.raw, self.source)


def parse(capture: str, source: str = "benchmark output") -> BenchmarkResult:
    """Parse one benchmark_model run (stdout+stderr, or a logcat capture)."""
    lines = clean(capture)
    state = _State(source)
    i = 0
    while i < len(lines):
        line = lines[i]
        stage = tables.starts_profile(line)
        if stage is not None:
            profile, end = tables.read_profile(lines, i, source)
            if profile.stage in state.profiles:
                state.fail(f"a second {profile.stage} profile in one capture", line)
            if profile.blocks:
                state.profiles[profile.stage] = profile
            i = max(end, i + 1)
            continue
        _read_line(state, line)
        i += 1
    return _result(state, lines)


def parse_file(path: str | Path) -> BenchmarkResult:
    """Parse a saved capture; errors name the file and line."""
    path = Path(path)
    return parse(decode(path.read_bytes()), source=path.name)


def decode(data: bytes) -> str:
    """Capture bytes as text: UTF-8, or UTF-16 when a BOM says so (PowerShell's ``>``)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


def parse_profile(text: str, source: str = "profile") -> dict[str, Profile]:
    """Op profiles (``{'init': ..., 'run': ...}``) from a ``--profiling_output_csv_file``
    file or any text holding the tables; raises if there are none."""
    lines = clean(text)
    profiles: dict[str, Profile] = {}
    i = 0
    while i < len(lines):
        if tables.starts_profile(lines[i]) is None:
            i += 1
            continue
        profile, end = tables.read_profile(lines, i, source)
        if profile.blocks:
            profiles[profile.stage] = profile
        i = max(end, i + 1)
    if not profiles:
        raise CaptureError("no op-profiling tables found", source=source)
    return profiles


def _read_line(state: _State, line: Line) -> None:
    text = line.text.strip()
    if line.level in ("ERROR", "FATAL"):
        state.errors.append(LogMessage(line.number, line.level, text))
    elif line.level == "WARN":
        state.warnings.append(LogMessage(line.number, line.level, text))
    if text.startswith("count="):
        state.stats.append((line, RunStats.parse(text, line.number, state.source, line.raw)))
    elif text.startswith(_SUMMARY) or text.startswith(_LEGACY_SUMMARY):
        if state.summary is not None:
            state.fail("a second timing summary: the capture holds several runs; split it",
                       line)
        legacy = text.startswith(_LEGACY_SUMMARY)
        state.summary = (line, _summary_items(state, line, text), legacy)
    elif prefix := next((p for p in _MEMORY if text.startswith(p)), None):
        match = _MEMORY[prefix].match(text)
        if not match:
            state.fail("malformed memory line", line)
        state.memory.update({k: number(v) for k, v in match.groupdict().items()})
    elif match := _PARAM.match(text):
        state.params.append((match["key"].strip(), match["value"]))
    if text.startswith("Loaded model") or text.startswith("Initialized session"):
        state.startup_seen = True
    for delegate, pattern in _DELEGATE_LINES:
        if pattern.search(text):
            state.evidence.add(delegate)


def _summary_items(state: _State, line: Line, text: str) -> dict[str, float | None]:
    items = {}
    for item in text.split(":", 1)[1].split(","):
        match = _ITEM.match(item.strip())
        if not match:
            state.fail(f"malformed timing summary item {item.strip()!r}", line)
        items[match["key"]] = number(match["value"])
    return items


def _result(state: _State, lines: list[Line]) -> BenchmarkResult:
    if state.summary is None:
        _no_summary(state, lines)
    line, items, legacy = state.summary
    if legacy:  # "Warmup: <avg>, Init: <us>, Inference: <avg>" (one 2018 build said "no stats")
        inference_key = "Inference" if "Inference" in items else "no stats"
        init, first, warmup_avg = items.get("Init"), None, items.get("Warmup")
    else:
        inference_key = "Inference (avg)"
        init, first = items.get("Init"), items.get("First inference")
        warmup_avg = items.get("Warmup (avg)")
    inference_avg = items.get(inference_key)
    if inference_avg is None:
        state.fail("timing summary without an inference average", line)
    before = [stats for stat_line, stats in state.stats if stat_line.number < line.number]
    if len(before) > 2:
        extra = [stat_line for stat_line, _ in state.stats][2]
        state.fail("more than two 'count=' lines before the summary: several runs in one "
                   "capture?", extra)
    warmup, inference = ([None] * (2 - len(before)) + before)
    if legacy and first is None and warmup is not None:
        first = warmup.first_us
    log_format = ("logcat" if any(ln.logcat for ln in lines)
                  else "prefixed" if any(ln.prefixed for ln in lines) else "unprefixed")
    return BenchmarkResult(
        log_format=log_format, summary_format="legacy" if legacy else "current",
        params=tuple(state.params), inference_avg_us=inference_avg, init_us=init,
        first_us=first, warmup_avg_us=warmup_avg, warmup=warmup, inference=inference,
        model_size_mb=state.memory.get("size"), memory_init_mb=state.memory.get("init"),
        memory_overall_mb=state.memory.get("overall"), peak_memory_mb=state.memory.get("peak"),
        delegate=_delegate(state), init_profile=state.profiles.get("init"),
        run_profile=state.profiles.get("run"), errors=tuple(state.errors),
        warnings=tuple(state.warnings))


def _no_summary(state: _State, lines: list[Line]):
    if state.errors:
        first = next(ln for ln in lines if ln.number == state.errors[0].line_no)
        raise CaptureError("no timing summary; benchmark_model reported an error",
                           first.number, first.raw, state.source)
    if "run" in state.profiles:
        raise CaptureError("no timing summary, only op-profiling tables (a "
                           "--profiling_output_csv_file file? pass it as --profile-csv)",
                           source=state.source)
    last = next((ln for ln in reversed(lines) if ln.text.strip()), None)
    if last is None:
        raise CaptureError("empty capture: no benchmark_model output", source=state.source)
    raise CaptureError(f"no timing summary ('{_SUMMARY} ...') found; the capture ends with",
                       last.number, last.raw, state.source)


def _delegate(state: _State) -> str | None:
    params = {k.lower(): v.strip() for k, v in state.params}
    if params.get("use gpu") == "1":
        return "gpu"
    if params.get("use nnapi") == "1":
        return "nnapi"
    run = state.profiles.get("run")
    primary = run.primary if run else None
    row_types = {row.node_type for row in primary.run_order} if primary else set()
    for delegate, prefix in _DELEGATE_ROWS:
        if delegate in state.evidence or any(t.startswith(prefix) for t in row_types):
            return delegate
    if params.get("use xnnpack") == "1":
        return "xnnpack"
    if params.get("use xnnpack") == "0" or state.startup_seen or params:
        return "cpu"  # nothing was delegated: TFLite's own CPU kernels ran
    return None
