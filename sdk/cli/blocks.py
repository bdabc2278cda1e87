"""``edgetailor blocks benchmark``: compare block types by the Pareto fronts of random networks."""
from __future__ import annotations

import os
from pathlib import Path

import click

from edgetailor.cli.common import Group, emit_json, load_profile, say


@click.group("blocks", cls=Group)
def blocks_group() -> None:
    """Block-level studies."""


@blocks_group.command("benchmark")
@click.option("--blocks", "kinds", required=True,
              help="Block types, comma separated: ir, fused, ds, ghost, shuffle, xblock, edgenext, "
                   "efficientformerv2.")
@click.option("--device", required=True, help="Device profile that prices each network (a name or a JSON file).")
@click.option("--dataset", required=True, help="'shapes' or a folder with one sub-folder per class.")
@click.option("--networks", type=click.IntRange(1, 1000), default=8, show_default=True,
              help="Random networks per block type.")
@click.option("--epochs", type=click.IntRange(1, 100), default=2, show_default=True, help="Proxy-training epochs.")
@click.option("--resolution", type=click.IntRange(32, 1024), default=64, show_default=True,
              help="Proxy-training resolution (px, a multiple of 32).")
@click.option("--latency-resolution", type=click.IntRange(32, 1024), default=224, show_default=True,
              help="Resolution the latency is priced at (px, a multiple of 32).")
@click.option("--train-images", type=click.IntRange(1), default=1000, show_default=True,
              help="Training images at most (shapes: exactly).")
@click.option("--val-images", type=click.IntRange(1), default=400, show_default=True,
              help="Held-out images at most (shapes: exactly).")
@click.option("--seed", type=int, default=0, show_default=True, help="Draws the networks, the split and the training.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for results.json (resumed on a rerun), summary.json, table.md, pareto.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def benchmark(kinds: str, device: str, dataset: str, networks: int, epochs: int, resolution: int,
              latency_resolution: int, train_images: int, val_images: int, seed: int, out_dir: Path,
              as_json: bool) -> None:
    """Build NETWORKS random networks of each block type under one shared macro-structure, price
    each on DEVICE, proxy-train it on DATASET, and report each type's Pareto front and hypervolume.

    \b
    Example:
      edgetailor blocks benchmark --blocks ir,ghost,shuffle --device pixel1 --dataset shapes --out out/blocks
    """
    from edgetailor.choose import blocks_benchmark as bench
    from edgetailor.tasks.classification.train import Recipe

    request_kinds = bench.parse_kinds(kinds)
    profile = load_profile(device)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgetailor.tasks.classification import blocks_benchmark as runner

    recipe = Recipe(dataset=dataset, resolution=resolution, epochs=epochs, train_images=train_images,
                    val_images=val_images, seed=seed)
    request = runner.BenchmarkRequest(request_kinds, networks, profile, recipe, out_dir, latency_resolution)
    summary = runner.run(request, say)
    if as_json:
        emit_json(summary)
        return
    click.echo(summary["table"], nl=False)
    click.echo(f"wrote {out_dir}/table.md, summary.json, results.json")
    if summary["plot"] is None:
        click.echo("no plot: matplotlib is not installed", err=True)
