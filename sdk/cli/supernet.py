"""``edgetailor supernet``: train a weight-sharing supernet (a group registered by ``edgetailor.cli.main``).

``supernet train`` runs progressive shrinking into a checkpoint folder, one progress bar per
phase on stderr; rerunning the same command resumes after the last completed epoch. At the end
it measures sub-networks on the held-out split (batch norm recalibrated) and fits the accuracy
predictor that ``specialize --supernet`` searches with; ``supernet predictor`` measures more and
refits. ``supernet import-ofa`` turns Once-for-All's published PyTorch supernets into such a
checkpoint (``edgetailor.supernet.ofa``). TensorFlow is imported only when a command runs.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from edgetailor.arch import spaces
from edgetailor.cli.common import Group, emit_json, fail, say

MEASURE = 40  # sub-networks measured for the accuracy predictor by default (Once-for-All measured 16,000)


@click.group("supernet", cls=Group)
def supernet_group() -> None:
    """Weight-sharing supernets (Once-for-All): train once, then every sub-network inherits the weights."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's first import, in every subcommand


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
              help="Search space the supernet covers (Once-for-All shaped: ofa_mbv3, or ofa_proxy, its "
                   "first two stages at a quarter width, which trains in minutes on a CPU).")
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
@click.option("--learning-rate", type=click.FloatRange(0, 100, min_open=True), default=0.4, show_default=True,
              help="SGD rate per 64 images of the first two phases (the later ones run at Once-for-All's "
                   "fractions of it); measured at proxy scale. Once-for-All's ImageNet-long runs use 0.03; "
                   "lower it if training diverges.")
@click.option("--images", type=click.IntRange(2, 10 ** 6), default=2000, show_default=True,
              help="shapes only: training images (a quarter as many more are held out).")
@click.option("--seed", type=int, default=0, show_default=True, help="Data split, weights and sub-network draws.")
@click.option("--measure", type=click.IntRange(0, 100000), default=MEASURE, show_default=True,
              help="Then measure this many sub-networks and fit the accuracy predictor that "
                   "specialize --supernet needs (0: later, with `supernet predictor`).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary on stdout.")
def train_command(space: str, dataset: str, out_dir: Path, epochs: int, resolutions: tuple[int, ...],
                  batch_size: int, learning_rate: float, images: int, seed: int, measure: int,
                  as_json: bool) -> None:
    """Train a supernet with progressive shrinking, then measure sub-networks and fit the accuracy
    predictor."""
    from edgetailor.supernet.train import TrainOptions, train

    if 0 < measure < 5:
        fail(f"--measure {measure}: the accuracy predictor needs at least 5 measured sub-networks (0: none)")
    options = TrainOptions(epochs=epochs, resolutions=resolutions, batch_size=batch_size,
                           learning_rate=learning_rate, images=images, seed=seed)
    bars = _PhaseBars()
    try:
        result = train(space, dataset, out_dir, options, progress=bars)
    finally:
        bars.close()
    summary = {"checkpoint": str(out_dir), "space": result.state.space, "dataset": result.source.name,
               "phase": result.state.phase_name, "epochs_done": result.state.epochs_done,
               "seconds_by_phase": result.seconds}
    if measure:
        summary.update(_measure_and_fit(out_dir, result.net, result.state, result.source, measure, seed))
    if as_json:
        emit_json(summary)
        return
    say(f"supernet checkpoint {out_dir} ({result.state.space}, {result.source.name})")
    for phase, seconds in result.seconds.items():
        click.echo(f"  {phase:10} {seconds:8.1f} s")
    if measure:
        _echo_predictor(summary)


@supernet_group.command("predictor")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--subnets", type=click.IntRange(5, 100000), default=MEASURE, show_default=True,
              help="Sub-networks measured in all (those measured already are kept).")
@click.option("--dataset", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The training dataset's folder, if it moved since training.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which random sub-networks.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary on stdout.")
def predictor_command(checkpoint: Path, subnets: int, dataset: Path | None, seed: int, as_json: bool) -> None:
    """Measure sub-networks of a trained supernet (held-out top-1 after batch-norm recalibration) and
    fit the accuracy predictor; rerun with more --subnets to add measurements."""
    from edgetailor.supernet import checkpoint as checkpoints

    net, state = checkpoints.load(checkpoint)
    source = checkpoints.open_data(state, checkpoint, dataset)
    summary = {"checkpoint": str(checkpoint), "space": state.space, "dataset": source.name,
               **_measure_and_fit(checkpoint, net, state, source, subnets, seed)}
    if as_json:
        emit_json(summary)
        return
    _echo_predictor(summary)


def _measure_and_fit(folder: Path, net, state, source, count: int, seed: int) -> dict:
    """Measure up to ``count`` sub-networks with a progress bar, fit the predictor; a summary."""
    from edgetailor.supernet import measured

    with click.progressbar(length=count, file=sys.stderr, label="measuring sub-networks",
                           item_show_func=lambda m: m and f"{m.subnet.resolution} px top-1 {m.top1:.1f}") as bar:
        def progress(done: int, total: int, measurement) -> None:
            if measurement is not None or done > bar.pos:
                bar.update(done - bar.pos, measurement)
        results = measured.measure(folder, net, state, source, count, seed, progress)
    predictor = measured.fit_predictor(folder, net.elastic, state, results, seed)
    top1 = [m.top1 for m in results]
    return {"measured": [{"subnet": m.subnet.describe(), "top1": m.top1, "val_images": m.val_images}
                         for m in results],
            "measured_top1": {"largest": top1[0], "smallest": top1[1] if len(top1) > 1 else None,
                              "min": min(top1), "max": max(top1), "mean": round(sum(top1) / len(top1), 2)},
            "predictor": {"path": str(folder / measured.PREDICTOR), "fitted_on": predictor.fitted_on,
                          "held_out": predictor.held_out.to_dict()}}


def _echo_predictor(summary: dict) -> None:
    top1, held = summary["measured_top1"], summary["predictor"]["held_out"]
    click.echo(f"  measured {len(summary['measured'])} sub-networks: top-1 largest {top1['largest']:.1f}%, "
               f"smallest {top1['smallest']:.1f}%, range {top1['min']:.1f}-{top1['max']:.1f}%")
    click.echo(f"  accuracy predictor: fitted on {summary['predictor']['fitted_on']}, held-out "
               f"{held['subnets']}: MAE {held['mae_pp']:.2f} pp (predicting the mean: "
               f"{held['baseline_mae_pp']:.2f})"
               + ("" if held["kendall_tau"] is None else f", Kendall tau {held['kendall_tau']:.2f}"))


@supernet_group.command("import-ofa")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Checkpoint folder to write (new or empty).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Class names, one per line in the classifier's order (ImageNet: the sorted synset "
                   "folder names) [default: class_0000 ...].")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary on stdout.")
def import_ofa_command(file: Path, out_dir: Path, labels: Path | None, as_json: bool) -> None:
    """Import Once-for-All's published MobileNetV3 supernet (ofa_mbv3_d234_e346_k357_w1.0 or _w1.2,
    a PyTorch .pth file, read without PyTorch and without running any code in it) as a checkpoint
    that specialize --supernet and `supernet predictor` read. Nothing is downloaded."""
    from edgetailor.supernet.ofa import import_ofa

    state = import_ofa(file, out_dir, labels, progress=say)
    summary = {"checkpoint": str(out_dir), "space": state.space, "classes": len(state.classes),
               "resolutions": list(state.resolutions), "source": state.source,
               "accuracy": "none measured: Once-for-All's ImageNet weights; measure sub-networks on an "
                           f"ImageNet-style folder with `edgetailor supernet predictor {out_dir} --dataset DIR`"}
    if as_json:
        emit_json(summary)
        return
    say(f"supernet checkpoint {out_dir} ({state.space}, {len(state.classes)} classes): {state.source}")
    click.echo(f"  no accuracy measured yet: `edgetailor supernet predictor {out_dir} --dataset DIR` measures "
               "sub-networks on an ImageNet-style folder (batch norm recalibrated) and fits the accuracy "
               "predictor that specialize --supernet needs")
