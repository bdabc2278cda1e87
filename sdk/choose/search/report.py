"""Search outputs: the Pareto front as JSON, a PNG plot, the best spec; all written atomically.

The plot draws every completed candidate and the front (accuracy vs predicted latency) with the
zoo models priced on the same device profile as reference points at their published ImageNet
top-1. When the search's accuracies are measured on another dataset they are not on the
ImageNet scale, so the zoo points get their own (right-hand) axis.

Several processes may run one study (``--storage`` shared, or the same OUT twice) and each writes
the report when its own run ends; ``write_study_report`` makes the report written last describe
the whole study (see its docstring for how).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from edgetailor.arch import zoo
from edgetailor._io import write_bytes, writing
from edgetailor.latency.profiles import DeviceProfile
from edgetailor.choose.search.engine import TOP1_METRIC, Search, SearchResult

IMAGENET_KINDS = ("published", "estimated")
LOCK_FILE = ".report.lock"  # in OUT; kept, as removing a lock file races with the next locker


def zoo_reference(profile: DeviceProfile) -> list[dict]:
    """Zoo models with a published top-1, priced on ``profile`` (1000-class classifier)."""
    points = []
    for entry in zoo.entries():
        if entry.published.top1 is None:
            continue
        latency = profile.predict(entry.spec).total_ms
        points.append({"name": entry.name, "top1": entry.published.top1, "latency_ms": round(latency, 3)})
    return sorted(points, key=lambda p: p["latency_ms"])


def plot_png(result: SearchResult) -> bytes:
    """The accuracy-latency plot as PNG bytes (matplotlib's Agg canvas; no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5.5), dpi=110)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot(1, 1, 1)
    c = result.config
    kinds = {trial.accuracy.kind for trial in result.trials}
    same_scale = bool(kinds) and kinds <= set(IMAGENET_KINDS)
    label = c.metric if not kinds else f"{c.metric}, {'/'.join(sorted(kinds))}"
    if result.trials:
        axis.scatter([x.latency_ms for x in result.trials], [x.accuracy.value for x in result.trials],
                     s=14, color="#9ab", label=f"candidates ({len(result.trials)})", zorder=2)
        axis.plot([x.latency_ms for x in result.front], [x.accuracy.value for x in result.front], "o-",
                  color="#d62", markersize=5, label=f"Pareto front ({len(result.front)})", zorder=3)
    if result.best is not None:
        axis.scatter([result.best.latency_ms], [result.best.accuracy.value], s=160, marker="*", color="#c12",
                     label=f"best: trial {result.best.trial}", zorder=4)
    if c.budget_ms is not None:
        axis.axvline(c.budget_ms, color="#555", linestyle="--", linewidth=1, label=f"budget {c.budget_ms:g} ms")
    axis.set_xlabel(f"predicted latency on {result.profile.name} (ms)")
    axis.set_ylabel(label)
    reference = result.zoo
    if result.trials:  # zoo points in the latency range of the search (and a bit beyond)
        high = max(max(x.latency_ms for x in result.trials), c.budget_ms or 0) * 1.3
        reference = [p for p in reference if p["latency_ms"] <= high]
    zoo_axis = axis if same_scale or not reference else axis.twinx()
    if reference:
        zoo_axis.scatter([p["latency_ms"] for p in reference], [p["top1"] for p in reference],
                         marker="s", s=16, color="#383", label="zoo, published ImageNet top-1", zorder=1)
        for p in reference:
            zoo_axis.annotate(p["name"], (p["latency_ms"], p["top1"]), fontsize=5, color="#383",
                              xytext=(2, 2), textcoords="offset points")
    if zoo_axis is not axis:
        zoo_axis.set_ylabel("zoo: published ImageNet top-1 (%)", color="#383")
    handles, labels = axis.get_legend_handles_labels()
    if zoo_axis is not axis:
        more = zoo_axis.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    axis.legend(handles, labels, fontsize=7, loc="lower right")
    axis.grid(alpha=0.3)
    axis.set_title(f"{c.strategy} search of {c.space} on {result.profile.name}: "
                   f"{result.counts.get('complete', 0)} trials, {result.config.resolved_objective} objective",
                   fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_outputs(result: SearchResult, out: Path) -> list[Path]:
    """pareto.json, pareto.png and (when there is a best) best.json + best_spec.txt in ``out``."""
    out = Path(out)
    if not result.zoo and result.config.metric == TOP1_METRIC:  # the zoo's figures are ImageNet top-1
        result.zoo = zoo_reference(result.profile)
    written = []
    document = result.to_dict()
    write_bytes(out / "pareto.json", (json.dumps(document, indent=1) + "\n").encode())
    written.append(out / "pareto.json")
    write_bytes(out / "pareto.png", plot_png(result))
    written.append(out / "pareto.png")
    if result.best is not None:
        best = result.best.to_dict()
        best.update(spec_json=result.best.candidate.spec.to_dict(), device=result.profile.name,
                    profile_version=result.profile.version, budget_ms=result.config.budget_ms,
                    objective=result.config.resolved_objective, why=result.best_note)
        write_bytes(out / "best.json", (json.dumps(best, indent=1) + "\n").encode())
        write_bytes(out / "best_spec.txt", (result.best.candidate.spec.encode() + "\n").encode())
        written += [out / "best.json", out / "best_spec.txt"]
    return written


def write_study_report(search: Search, result: SearchResult, out: Path) -> tuple[SearchResult, list[Path]]:
    """Re-read the study and write its report to ``out``, holding an exclusive lock on
    OUT/.report.lock; returns the result written (``result``'s run figures kept) and the files.

    Why a lock and a re-read: each process's ``result`` is the study as it was when that run
    ended, so without them a process that read the study earlier but wrote later would put an
    older view over a fuller one (atomic renames keep each file whole, not the four files of one
    view together). Under the lock, reads and writes take turns, and the report written last
    comes from the last read: every trial completed by then, the whole study once every worker
    is done. ``flock`` is released by the kernel when a process dies (kill -9 leaves no stale
    lock, unlike a lock file made with O_EXCL), and it locks a file of its own, not study.db:
    SQLite keeps its own POSIX locks on the database, which closing any other handle to the file
    would drop, and with ``--storage`` there is no study.db in OUT. POSIX only (``fcntl``).
    """
    import fcntl

    out = Path(out)
    with writing(out / LOCK_FILE):
        handle = open(out / LOCK_FILE, "a")
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        latest = search.result()
        latest.new_trials, latest.wall_seconds, latest.zoo = result.new_trials, result.wall_seconds, result.zoo
        return latest, write_outputs(latest, out)
