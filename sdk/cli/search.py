"""``edgetailor search`` and ``edgetailor scale``: click commands registered by ``edgetailor.cli.main``.

``search`` runs an Optuna study (SQLite file in ``--out`` unless ``--storage`` names another RDB)
and writes the Pareto front, its plot and the best spec there. Rerunning the same command
resumes the study; several machines given the same ``--storage`` URL and ``--study`` share it.
Every setting is checked before ``--out`` is created; one line per finished trial goes to
stderr. TensorFlow is imported only when proxy training runs.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import click

from edgetailor.arch import layers, scaling
from edgetailor.cli.common import Command, FiniteFloatRange, emit_json, fail, load_profile, resolve_arch


MIN_VALIDATION_IMAGES = 50  # below this, one image moves top-1 by more than 2 points


def _evaluator(accuracy: str, dataset: Path | None, epochs: int, resolution: int, images: int,
               proxy_width: float, seed: int):
    if accuracy == "estimated":
        if dataset is not None:
            fail("--dataset needs --accuracy proxy (estimated accuracy is ImageNet top-1 from MACs)")
        from edgetailor.choose.accuracy import generic_estimator

        return generic_estimator()
    from edgetailor.data import shapes
    from edgetailor.tasks.classification import train as proxy_train

    if dataset is None and not shapes.MIN_SIZE <= resolution <= shapes.MAX_SIZE:  # else every trial fails
        fail(f"--resolution must be {shapes.MIN_SIZE}..{shapes.MAX_SIZE} px with the built-in shapes dataset "
             f"(got {resolution})")
    recipe = proxy_train.Recipe(dataset=str(dataset) if dataset else "shapes", resolution=resolution,
                                epochs=epochs, train_images=images, val_images=max(1, images // 4),
                                width=proxy_width, seed=seed)
    return proxy_train.ProxyTrainer(recipe)


@click.command("search", cls=Command)
@click.option("--space", default="mnasnet", show_default=True,
              help="Search space: mnasnet, proxyless, fbnet or ofa_mbv3.")
@click.option("--device", required=True, help="Profile name (see `edgetailor devices`) or file.")
@click.option("--budget-ms", type=FiniteFloatRange(), help="Latency budget on the device (ms).")
@click.option("--strategy", default="nsga2", show_default=True,
              help="random, nsga2, tpe or rl (Optuna; one trained candidate per trial), or a weight-sharing "
              "search: fbnet, proxyless, lightnas (one supernet; --epochs are its search epochs).")
@click.option("--loss", "dnas_loss", help="With --strategy proxyless: mul#log (default) or add#linear.")
@click.option("--objective", help="soft, hard or pareto [default: soft with --budget-ms, else pareto].")
@click.option("--trials", type=click.IntRange(1, 100000), default=20, show_default=True,
              help="Completed trials the study should hold (a rerun finishes the rest).")
@click.option("--accuracy", "accuracy_source", type=click.Choice(["proxy", "estimated"]), default="proxy",
              show_default=True, help="proxy: train each candidate briefly (measured); estimated: "
              "ImageNet top-1 from MACs (no training).")
@click.option("--dataset", type=click.Path(path_type=Path),
              help="Folder with one sub-folder per class [default: the built-in shapes dataset].")
@click.option("--epochs", type=click.IntRange(1, 1000), default=3, show_default=True, help="Proxy epochs.")
@click.option("--resolution", type=click.IntRange(16, 1024), default=32, show_default=True,
              help="Proxy training resolution (px); latency is predicted at the space's own.")
@click.option("--images", type=click.IntRange(8, 10 ** 7), default=2000, show_default=True,
              help="Proxy training images (validation: a quarter as many).")
@click.option("--proxy-width", type=FiniteFloatRange(0.05, 4.0), default=1.0, show_default=True,
              help="Width multiplier applied to candidates while proxy training.")
@click.option("--storage", help="Optuna RDB URL shared by workers [default: sqlite:///OUT/study.db].")
@click.option("--study", "study_name", default="search", show_default=True, help="Study name in the storage.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (created with any missing parents; a rerun resumes in it).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
@click.option("--task", default="classification", show_default=True,
              help="classification, or detection: NSGA-II over backbones with a detection head priced whole, "
              "candidates weight-mapped from a parent trained once on --dataset (a COCO folder) and scored by "
              "held-out mAP (defaults then: --resolution 128, --proxy-width 0.5).")
@click.option("--head", help="With --task detection: ssdlite (default) or yolox.")
@click.option("--parent-epochs", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="With --task detection: epochs the parent is trained (once; reused by a rerun).")
@click.pass_context
def search_command(ctx: click.Context, space: str, device: str, budget_ms: float | None, strategy: str,
                   objective: str | None, trials: int, accuracy_source: str, dataset: Path | None,
                   epochs: int, resolution: int, images: int, proxy_width: float, storage: str | None,
                   study_name: str, seed: int, out_dir: Path, as_json: bool, dnas_loss: str | None = None,
                   task: str = "classification", head: str | None = None, parent_epochs: int = 10) -> None:
    """Search a space for the most accurate model under a latency budget (or the Pareto front).

    Writes OUT/pareto.json, OUT/pareto.png, OUT/best.json and OUT/best_spec.txt; the study lives
    in OUT/study.db (or --storage). Ctrl-C keeps the study; rerun the command to resume.

    \b
    Examples:
      edgetailor search --space mnasnet --device pixel1 --budget-ms 40 --trials 20 --out out/search
      edgetailor search --device pixel1 --objective pareto --accuracy estimated --trials 200 \\
          --out out/front
      edgetailor search --device pixel1 --budget-ms 40 --storage sqlite:///shared.db \\
          --study team --out out/worker2
      edgetailor search --task detection --space mnasnet --head ssdlite --device pixel1 \\
          --budget-ms 120 --dataset coco_dir --trials 10 --out out/det
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's first import (proxy training)
    from edgetailor.cli.supernet_search import is_weight_sharing, run_search

    if task == "detection":
        _search_detection(ctx, space, device, budget_ms, head, dataset, trials, epochs, parent_epochs, resolution,
                          proxy_width, storage, study_name, seed, out_dir, as_json)
        return
    if task != "classification":
        fail(f"unknown task {task!r}; tasks: classification, detection")
    if head is not None or ctx.get_parameter_source("parent_epochs") != click.core.ParameterSource.DEFAULT:
        fail("--head and --parent-epochs apply to --task detection")
    if is_weight_sharing(strategy):  # FBNet, ProxylessNAS, LightNAS, ...: edgetailor.supernet.searches
        run_search(strategy, space, device, budget_ms, dataset, epochs, resolution, images, seed, out_dir,
                   {"loss": dnas_loss} if dnas_loss else {}, as_json)
        return
    if dnas_loss:
        fail("--loss applies to the weight-sharing searches (--strategy proxyless)")
    from edgetailor import _io
    from edgetailor.choose.search import engine as search, report as search_report, storage as search_storage

    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out is not a folder: {out_dir}")
    _io.check_writable(out_dir / "pareto.json")
    profile = load_profile(device)
    evaluator = (ctx.obj or {}).get("evaluator") or _evaluator(
        accuracy_source, dataset, epochs, resolution, images, proxy_width, seed)
    url = storage or f"sqlite:///{(out_dir / 'study.db').resolve()}"
    config = search.SearchConfig(space=space, device=device, budget_ms=budget_ms, objective=objective,
                                 strategy=strategy, trials=trials, seed=seed, storage=url, study=study_name)
    runner = search.Search(config, evaluator, profile=profile, open_study=False)  # every check, nothing made
    _warn_if_few_validation_images(evaluator)
    created = _io.make_folders(out_dir)
    try:
        runner.open()
    except BaseException:
        # only while empty: another worker may already be using a study.db in it
        _io.remove_folders(created)
        raise
    try:
        done = len(runner.completed())
        if done:
            click.echo(f"resuming study {study_name!r}: {done} of {trials} trials complete", err=True)
        started = time.perf_counter()
        result = runner.run(on_trial=lambda trial: click.echo(_trial_line(trial, started), err=True))
        result.zoo = search_report.zoo_reference(profile)
        result, written = search_report.write_study_report(runner, result, out_dir)
    finally:
        runner.close()
    summary = result.to_dict()
    summary["storage"] = search_storage.mask_url(url)
    summary["files"] = [str(path) for path in written]
    summary.pop("zoo_reference")
    if as_json:
        emit_json(summary)
    else:
        _print_summary(result, written, summary["storage"])
    if result.best is None and config.budget_ms is not None:
        fail(result.best_note)


def _search_detection(ctx: click.Context, space, device, budget_ms, head, dataset, trials, epochs, parent_epochs,
                      resolution, proxy_width, storage, study_name, seed, out_dir, as_json) -> None:
    """``--task detection``: refuse the classification-only options, default its proxy scale, run."""
    from edgetailor.cli.detection_search import run_detection_search

    given = lambda name: ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT  # noqa: E731
    allowed = {"strategy": "nsga2", "objective": "pareto"}
    options = {"strategy": "--strategy", "objective": "--objective", "accuracy_source": "--accuracy",
               "images": "--images", "dnas_loss": "--loss"}
    only = [flag for name, flag in options.items() if given(name) and ctx.params[name] != allowed.get(name)]
    if only:
        fail(f"{', '.join(only)} do not apply to --task detection (NSGA-II on held-out mAP and latency)")
    run_detection_search(space, device, budget_ms, head or "ssdlite", dataset, trials, epochs, parent_epochs,
                         resolution if given("resolution") else 128, proxy_width if given("proxy_width") else 0.5,
                         storage, study_name, seed, out_dir, as_json)


def _trial_line(trial, started: float) -> str:
    """A finished trial for stderr: its number, predicted latency, accuracy, time since the start."""
    from edgetailor.choose.search.engine import CANDIDATE_ATTR

    elapsed = f"{time.perf_counter() - started:.1f} s elapsed"
    candidate = trial.user_attrs.get(CANDIDATE_ATTR)
    if candidate is None:  # its evaluation failed; the search goes on
        return f"trial {trial.number} failed ({trial.user_attrs.get('error', 'no result')}); {elapsed}"
    return (f"trial {trial.number}: {candidate['latency_ms']:.1f} ms, top-1 {candidate['accuracy']:.2f}% "
            f"({candidate['accuracy_kind']}); {elapsed}")


def _warn_if_few_validation_images(evaluator) -> None:
    """Proxy accuracy from a handful of validation images moves in steps of 100/n %: say so."""
    from edgetailor.tasks.classification import train as proxy_train

    recipe = getattr(evaluator, "recipe", None)
    if not isinstance(recipe, proxy_train.Recipe):
        return
    n = recipe.val_images
    if recipe.dataset != "shapes":
        n = min(n, len(proxy_train.split_folder(recipe.dataset, recipe.val_fraction, recipe.seed)[1]))
    if n < MIN_VALIDATION_IMAGES:
        click.echo(f"warning: proxy accuracy is measured on {n} validation image{'s' * (n != 1)}, so it moves "
                   f"in steps of {100 / n:.2f}%; {MIN_VALIDATION_IMAGES} or more are needed to tell candidates "
                   f"apart (--images {4 * MIN_VALIDATION_IMAGES}, or a larger --dataset)", err=True)


def _print_summary(result, written: list[Path], storage: str) -> None:
    c = result.config
    budget = f", budget {c.budget_ms:g} ms" if c.budget_ms is not None else ""
    click.echo(f"{c.strategy} search of {c.space} on {result.profile.name} ({c.resolved_objective} "
               f"objective{budget}): {result.counts.get('complete', 0)} trials complete, "
               f"{result.new_trials} run now in {result.wall_seconds:.1f} s")
    if result.best is not None:
        b = result.best
        reward = f", reward {b.reward:.3f}" if b.reward is not None else ""
        click.echo(f"best (trial {b.trial}, {result.best_note}): {b.accuracy.value:.2f}% {b.accuracy.kind} at "
                   f"{b.latency_ms:.1f} ms{reward}")
        click.echo(f"  {b.candidate.spec.encode()}")
    click.echo(f"Pareto front ({len(result.front)}), hypervolume {result.hypervolume:.1f}:")
    click.echo(f"  {'trial':>5} {'top-1 %':>8} {'ms':>8}")
    for trial in result.front:
        click.echo(f"  {trial.trial:>5} {trial.accuracy.value:>8.2f} {trial.latency_ms:>8.1f}")
    click.echo(f"wrote {', '.join(str(path) for path in written)}; study in {storage}")


@click.command("scale", cls=Command)
@click.argument("arch")
@click.option("--phi", type=click.IntRange(0, 8), required=True, help="Largest compound coefficient.")
@click.option("--device", help="Add predicted latency on this device (profile name or file).")
@click.option("--num-classes", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def scale_command(arch: str, phi: int, device: str | None, num_classes: int, as_json: bool) -> None:
    """EfficientNet compound scaling of ARCH for phi = 0..PHI: params, MACs, latency.

    Depth x1.2^phi, width x1.1^phi, resolution x1.15^phi from ARCH's own (Tan & Le 2019, Sec.
    3.3), with the family's channel rounding rule. ARCH is a zoo name, family or spec string.
    """
    resolved = resolve_arch(arch)
    rule = resolved.family.rule if resolved.family else scaling.DEFAULT_RULE
    profile = load_profile(device) if device else None
    rows = []
    for k in range(phi + 1):
        width, depth, resolution = scaling.compound_coefficients(k, resolved.spec.resolution)
        spec = scaling.compound_scale(resolved.spec, k, rule)
        params, macs = layers.count(spec, num_classes)
        latency = profile.predict(spec, num_classes).total_ms if profile else None
        rows.append({"phi": k, "width": round(width, 4), "depth": round(depth, 4), "resolution": spec.resolution,
                     "params": params, "macs": macs, "spec": spec.encode(),
                     **({"latency_ms": round(latency, 3)} if profile else {})})
    if as_json:
        emit_json({"name": resolved.name, "device": profile.name if profile else None,
                   "expected_error_pct": profile.expected_error_pct if profile else None,
                   "rows": rows})
        return
    lat = f" {'ms on ' + profile.name:>28}" if profile else ""
    click.echo(f"{resolved.name}: compound scaling (depth 1.2^phi, width 1.1^phi, resolution 1.15^phi)")
    click.echo(f"{'phi':>3} {'width':>6} {'depth':>6} {'res':>5} {'params M':>9} {'MACs M':>9}{lat}")
    for r in rows:
        lat = f" {r['latency_ms']:>28.1f}" if profile else ""
        click.echo(f"{r['phi']:>3} {r['width']:>6.3f} {r['depth']:>6.3f} {r['resolution']:>5} "
                   f"{r['params'] / 1e6:>9.2f} {r['macs'] / 1e6:>9.1f}{lat}")
