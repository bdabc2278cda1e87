"""Run the block benchmark: price and proxy-train each block type's random networks, resumably.

Every network is priced on the device profile at ``latency_resolution`` px (the deployed size)
and proxy-trained with ``edgetailor.tasks.classification.train`` at the recipe's resolution,
scored on the dataset's held-out split. After each network the results file in the output folder
(``results.json``) is rewritten atomically, so an interrupted run loses at most the network in
progress, and a rerun with the same settings skips every network already there. The summary
(``summary.json``, ``table.md`` and, where matplotlib is installed, ``pareto.png``) is rewritten
at the end. Networks are not timed on the host: ``--device`` may name a host profile made by
``edgetailor profile`` (priced like any other), but converting and timing each network would
cost more than training it at proxy scale.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgetailor import _io
from edgetailor.arch import layers
from edgetailor.choose import blocks_benchmark as bench
from edgetailor.errors import OutputError, SearchError
from edgetailor.latency.profiles import DeviceProfile
from edgetailor.tasks.classification.train import ProxyTrainer, Recipe

RESULTS = "results.json"


@dataclass(frozen=True)
class BenchmarkRequest:
    """Which block types, how many networks each, where latency comes from, how they train."""

    kinds: tuple[str, ...]
    networks: int
    profile: DeviceProfile
    recipe: Recipe
    out_dir: Path
    latency_resolution: int = 224  # px

    def settings(self) -> dict:
        """What must match for a rerun to resume (block types and counts may grow)."""
        return {"device": self.profile.name, "profile_version": self.profile.version,
                "latency_resolution": self.latency_resolution, "recipe": self.recipe.to_dict()}


def _load_results(request: BenchmarkRequest) -> list[dict]:
    path = request.out_dir / RESULTS
    if not path.exists():
        if request.out_dir.exists() and not request.out_dir.is_dir():
            raise OutputError(f"output {request.out_dir} is not a folder")
        _io.check_writable(path)
        return []
    try:
        document = json.loads(path.read_text())
        stored, networks = document["settings"], list(document["networks"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise OutputError(f"{path} is not a block benchmark's results file ({exc})") from None
    if stored != request.settings():
        raise OutputError(f"{path} holds a benchmark with other settings (device, resolution or recipe); "
                          "use another --out folder")
    return networks


def run(request: BenchmarkRequest, say: Callable[[str], None] = lambda line: None) -> dict:
    """Benchmark every (kind, network) not yet in the results file; return the summary."""
    bench.check_resolution(request.recipe.resolution)
    bench.check_resolution(request.latency_resolution)
    if request.networks < 1:
        raise SearchError(f"--networks must be >= 1 (got {request.networks})")
    trainer = ProxyTrainer(request.recipe)  # checks the dataset before any work
    records = _load_results(request)
    done = {(r["block"], r["index"]) for r in records}
    total = len(request.kinds) * request.networks
    for k, kind in enumerate(request.kinds):
        for index in range(request.networks):
            position = k * request.networks + index + 1
            if (kind, index) in done:
                say(f"[{position}/{total}] {kind} #{index}: done before, skipped")
                continue
            spec = bench.random_network(kind, index, request.recipe.seed, request.latency_resolution)
            latency_ms = request.profile.predict(spec, trainer.num_classes).total_ms
            params, macs = layers.count(spec, trainer.num_classes)
            accuracy, _, _ = trainer(spec)
            records.append({"block": kind, "index": index, "spec": spec.encode(),
                            "latency_ms": round(latency_ms, 4), "accuracy": accuracy,
                            "params": params, "macs": macs, "train_seconds": trainer.last["seconds"]})
            _io.write_json(request.out_dir / RESULTS, {"settings": request.settings(), "networks": records})
            say(f"[{position}/{total}] {kind} #{index}: {latency_ms:.2f} ms, top-1 {accuracy:.1f} %, "
                f"{macs / 1e6:.1f} M MACs ({trainer.last['seconds']:.1f} s)")
    chosen = {kind: [r for r in records if r["block"] == kind and r["index"] < request.networks]
              for kind in request.kinds}
    return write_summary(request, chosen, trainer.describe())


def write_summary(request: BenchmarkRequest, chosen: dict[str, list[dict]], accuracy_source: str) -> dict:
    """Write summary.json, table.md and the Pareto plot; return the summary document."""
    rows, reference = bench.summarise(chosen)
    text = bench.table(rows, reference)
    plotted = _plot(request.out_dir / "pareto.png", chosen, rows, request.profile.name)
    summary = {"device": request.profile.name, "latency_resolution": request.latency_resolution,
               "accuracy": accuracy_source, "reference": reference, "blocks": [r.to_dict() for r in rows],
               "table": text, "plot": str(request.out_dir / "pareto.png") if plotted else None,
               "results": str(request.out_dir / RESULTS)}
    _io.write_text(request.out_dir / "table.md", text)
    _io.write_json(request.out_dir / "summary.json", summary)
    return summary


def _plot(path: Path, chosen: dict[str, list[dict]], rows: list, device: str) -> bool:
    """Every network as a dot, each type's front as a step line; False when matplotlib is absent."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    for row in rows:
        records = chosen[row.kind]
        dots = axes.scatter([r["latency_ms"] for r in records], [r["accuracy"] for r in records], s=14, alpha=0.5)
        best = [records[i] for i in row.front]
        axes.step([r["latency_ms"] for r in best], [r["accuracy"] for r in best], where="post",
                  color=dots.get_facecolor()[0], label=f"{row.kind} (HV {row.hypervolume:.0f})")
    axes.set_xlabel(f"predicted latency on {device} (ms)")
    axes.set_ylabel("proxy top-1 (%)")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    _io.write_atomically(path, lambda staged: figure.savefig(staged, format="png", dpi=120))
    pyplot.close(figure)
    return True
