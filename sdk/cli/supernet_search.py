"""``edgetailor search --strategy fbnet|proxyless|lightnas|...``: the weight-sharing searches.

``search`` hands every strategy registered in ``edgetailor.supernet.searches`` to ``run_search``
here; the Optuna strategies (random, nsga2, tpe, rl) stay in ``cli.search``. One line per epoch
goes to stderr; rerunning the same command continues from the checkpoint in ``--out``.
TensorFlow is imported only when the search runs.
"""
from __future__ import annotations

from pathlib import Path

import click

from edgetailor.cli.common import emit_json, fail, load_profile


def is_weight_sharing(strategy: str) -> bool:
    from edgetailor.supernet import searches

    return strategy in searches.STRATEGIES


def run_search(strategy: str, space: str, device: str, budget_ms: float | None, dataset: Path | None,
               epochs: int, resolution: int, images: int, seed: int, out_dir: Path, settings: dict,
               as_json: bool) -> None:
    from edgetailor.supernet import searches

    searches.get(strategy, space)  # an unknown pairing fails before anything loads
    if budget_ms is None:
        fail(f"--strategy {strategy} needs --budget-ms (its loss prices the architecture against it)")
    if dataset is not None and not dataset.is_dir():
        fail(f"--dataset is not a folder: {dataset}")
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out is not a folder: {out_dir}")
    request = searches.Request(strategy, space, load_profile(device), budget_ms,
                               str(dataset) if dataset else "shapes", out_dir, epochs=epochs,
                               resolution=resolution, images=images, seed=seed, settings=settings,
                               progress=lambda report: click.echo(report.line(), err=True))
    result = searches.run(request)
    summary = {"strategy": result.strategy, "space": result.space, "device": result.device,
               "budget_ms": result.budget_ms, "predicted_ms": result.predicted_ms, "spec": result.spec.encode(),
               "choice": list(result.choice), "seconds": result.seconds, "epochs": len(result.history),
               "weights": str(result.weights), "result": str(out_dir / searches.RESULT), "notes": list(result.notes)}
    if as_json:
        emit_json(summary)
        return
    over = " (over the budget)" if result.predicted_ms > result.budget_ms else ""
    click.echo(f"{strategy} search of {space} on {result.device}: {result.predicted_ms:.2f} ms predicted, budget "
               f"{result.budget_ms:g} ms{over}; {len(result.history)} epochs, {result.seconds:.1f} s")
    click.echo(f"  {result.spec.encode()}")
    for note in result.notes:
        click.echo(f"  note: {note}")
    click.echo(f"wrote {summary['result']} and {summary['weights']}; "
               + bundle_hint(strategy, space, device, result.budget_ms, dataset, out_dir))


def bundle_hint(strategy: str, space: str, device: str, budget_ms: float, dataset: Path | None,
                out_dir: Path) -> str:
    """The `specialize` command that bundles a finished search. It reads the class folders again
    (the labels, batch norm recalibration), so a search on the built-in shapes data cannot be bundled."""
    if dataset is None:
        return ("to bundle one, search on a class folder: `edgetailor shapes --out data/shapes`, then "
                "--dataset data/shapes")
    return (f"`edgetailor specialize --search {space} --strategy {strategy} --supernet {out_dir} --dataset {dataset} "
            f"--device {device} --budget-ms {budget_ms:g} --out OUT` bundles it")
