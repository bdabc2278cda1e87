"""``edgetailor supernet``: train a weight-sharing supernet (a group registered by ``edgetailor.cli.main``).

``supernet train`` runs progressive shrinking into a checkpoint folder, one progress bar per
phase on stderr; rerunning the same command resumes after the last completed epoch. At the end
the largest and the smallest sub-networks are scored on the held-out split (batch norm
recalibrated). TensorFlow is imported only when the command runs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from edgetailor.arch import spaces
from edgetailor.cli.common import Group, emit_json, say


@click.group("supernet", cls=Group)
def supernet_group() -> None:
    """Weight-sharing supernets (Once-for-All): train once, then every sub-network inherits the weights."""


class _PhaseBars:
    """One click progress bar per phase, fed by ``train``'s progress callback."""

    def __init__(self) -> None:
        self.bar, self.phase = None, None

    def __call__(self, event) -> None:
        if event.phase != self.phase:
            self.close()
            self.phase = event.phase
            self.bar = click.progressbar(
                length=event.epochs * event.steps, file=sys.stderr,
                label=f"phase {event.phase_index + 1}/{event.phases} {event.phase}",
                item_show_func=lambda e: e and f"epoch {e.epoch + 1}/{e.epochs} loss {e.loss:.3f}")
            self.bar.__enter__()
        self.bar.update(event.epoch * event.steps + event.step + 1 - self.bar.pos, event)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@supernet_group.command("train")
@click.option("--space", default="ofa_mbv3", show_default=True, type=click.Choice(sorted(spaces.SPACES)),
              help="Search space the supernet covers (Once-for-All shaped: ofa_mbv3).")
@click.option("--dataset", required=True, help="Folder with one sub-folder per class, or 'shapes' (built in).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Checkpoint folder (created; rerun the same command to resume).")
@click.option("--epochs", type=click.IntRange(1, 10000), default=5, show_default=True,
              help="Epochs per phase (six phases: largest, kernel, depth x2, expand x2).")
@click.option("--resolution", "resolutions", type=click.IntRange(32, 224), multiple=True,
              help="Training resolution in px, a multiple of 8; repeat for several "
                   "[default: the space's resolutions].")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="Images per step, over all devices.")
@click.option("--learning-rate", type=click.FloatRange(0, 100, min_open=True), default=0.03, show_default=True,
              help="SGD rate per 64 images of the first two phases (the later ones run at Once-for-All's "
                   "fractions of it); 0.03 is Once-for-All's, sized for ImageNet-long runs.")
@click.option("--images", type=click.IntRange(2, 10 ** 6), default=2000, show_default=True,
              help="shapes only: training images (a quarter as many more are held out).")
@click.option("--seed", type=int, default=0, show_default=True, help="Data split, weights and sub-network draws.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary on stdout.")
def train_command(space: str, dataset: str, out_dir: Path, epochs: int, resolutions: tuple[int, ...],
                  batch_size: int, learning_rate: float, images: int, seed: int, as_json: bool) -> None:
    """Train a supernet with progressive shrinking; score its largest and smallest sub-networks."""
    from edgetailor.supernet.evaluate import evaluate
    from edgetailor.supernet.train import TrainOptions, train

    options = TrainOptions(epochs=epochs, resolutions=resolutions, batch_size=batch_size,
                           learning_rate=learning_rate, images=images, seed=seed)
    bars = _PhaseBars()
    try:
        result = train(space, dataset, out_dir, options, progress=bars)
    finally:
        bars.close()
    low, high = min(result.state.resolutions), max(result.state.resolutions)
    scored = [evaluate(result.net, subnet, result.source)
              for subnet in (result.net.elastic.largest(high), result.net.elastic.smallest(low))]
    summary = {"checkpoint": str(out_dir), "space": result.state.space, "dataset": result.source.name,
               "phase": result.state.phase_name, "epochs_done": result.state.epochs_done,
               "seconds_by_phase": result.seconds,
               "subnets": [{"name": name, "subnet": e.subnet.describe(), "top1": e.top1,
                            "val_images": e.val_images} for name, e in zip(("largest", "smallest"), scored)]}
    if as_json:
        emit_json(summary)
        return
    say(f"supernet checkpoint {out_dir} ({result.state.space}, {result.source.name})")
    for phase, seconds in result.seconds.items():
        click.echo(f"  {phase:10} {seconds:8.1f} s")
    for row in summary["subnets"]:
        click.echo(f"  {row['name']:10} top-1 {row['top1']:5.1f}%  ({row['subnet']})")
