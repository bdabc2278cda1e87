"""``edgetailor search --task detection``: the detection-backbone search (NSGA-II, weight mapping).

Every setting is checked (space, head, features, dataset, budget) before ``--out`` is made. In OUT:
study.db (or ``--storage``), parent/ (the trained parent, reused by a rerun), pareto.json,
pareto.png and, with ``--budget-ms``, best.json and best_spec.txt. One line per finished trial
goes to stderr; rerunning the same command resumes the study.
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from edgetailor.cli.common import emit_json, fail, load_profile


def run_detection_search(space: str, device: str, budget_ms: float | None, head: str, dataset: Path | None,
                         trials: int, epochs: int, parent_epochs: int, resolution: int, width: float,
                         storage: str | None, study_name: str, seed: int, out_dir: Path, as_json: bool) -> None:
    """The command's body (``search_command`` routes ``--task detection`` here)."""
    from edgetailor import _io
    from edgetailor.choose.search import engine, report, storage as search_storage
    from edgetailor.supernet.detection_search import ParentMapped, Recipe
    from edgetailor.tasks.detection.search_space import METRIC, DetectionSearch, head_config

    if dataset is None:
        fail("--task detection needs --dataset COCO_DIR (images/ + labels.json): candidates are scored "
             "by mAP on its held-out images")
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out is not a folder: {out_dir}")
    _io.check_writable(out_dir / "pareto.json")
    head_config(head, 1)  # a head that is not known: one line before the dataset is read
    profile = load_profile(device)
    recipe = Recipe(dataset=str(dataset.resolve()), space=space, head=head, resolution=resolution, width=width,
                    parent_epochs=parent_epochs, epochs=epochs, seed=seed)
    evaluator = ParentMapped(recipe)
    url = storage or f"sqlite:///{(out_dir / 'study.db').resolve()}"
    config = engine.SearchConfig(space=space, device=device, budget_ms=budget_ms, objective="pareto",
                                 strategy="nsga2", trials=trials, seed=seed, storage=url, study=study_name,
                                 metric=METRIC)
    runner = DetectionSearch(config, evaluator, head, profile=profile, open_study=False)
    created = _io.make_folders(out_dir)
    try:
        runner.open()
    except BaseException:
        _io.remove_folders(created)  # only while empty: another worker may use a study.db in it
        raise
    say = lambda line: click.echo(line, err=True)  # noqa: E731
    try:
        evaluator.prepare(out_dir / "parent", say)
        done = len(runner.completed())
        if done:
            say(f"resuming study {study_name!r}: {done} of {trials} trials complete")
        started = time.perf_counter()
        result = runner.run(on_trial=lambda trial: say(trial_line(trial, started)))
        result, written = report.write_study_report(runner, result, out_dir)
    finally:
        runner.close()
    summary = result.to_dict()
    summary.update(storage=search_storage.mask_url(url), files=[str(p) for p in written], head=head,
                   parent=evaluator.parent_info and {k: v for k, v in evaluator.parent_info.items() if k != "history"})
    summary.pop("zoo_reference")
    if as_json:
        emit_json(summary)
    else:
        print_summary(result, head, written, summary["storage"])
    if result.best is None and budget_ms is not None:
        fail(result.best_note)


def trial_line(trial, started: float) -> str:
    """A finished trial: number, whole detector latency, held-out mAP, time since the start."""
    from edgetailor.choose.search.engine import CANDIDATE_ATTR

    elapsed = f"{time.perf_counter() - started:.1f} s elapsed"
    candidate = trial.user_attrs.get(CANDIDATE_ATTR)
    if candidate is None:
        return f"trial {trial.number} failed ({trial.user_attrs.get('error', 'no result')}); {elapsed}"
    return (f"trial {trial.number}: {candidate['latency_ms']:.1f} ms (backbone + head), mAP "
            f"{candidate['accuracy']:.2f}%; {elapsed}")


def print_summary(result, head: str, written: list[Path], storage: str) -> None:
    c = result.config
    budget = f", budget {c.budget_ms:g} ms" if c.budget_ms is not None else ""
    click.echo(f"NSGA-II detection-backbone search of {c.space} with a {head} head on {result.profile.name}"
               f"{budget}: {result.counts.get('complete', 0)} trials complete, {result.new_trials} run now in "
               f"{result.wall_seconds:.1f} s")
    if result.best is not None:
        b = result.best
        click.echo(f"best (trial {b.trial}, {result.best_note}): mAP {b.accuracy.value:.2f}% at {b.latency_ms:.1f} ms")
        click.echo(f"  {b.candidate.spec.encode()}")
    elif c.budget_ms is not None:
        click.echo(result.best_note)
    click.echo(f"Pareto front ({len(result.front)}):")
    click.echo(f"  {'trial':>5} {'mAP %':>7} {'ms':>8}")
    for trial in result.front:
        click.echo(f"  {trial.trial:>5} {trial.accuracy.value:>7.2f} {trial.latency_ms:>8.1f}")
    click.echo(f"wrote {', '.join(str(path) for path in written)}; study in {storage}")
