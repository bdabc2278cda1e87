"""``edgetailor quantize-mix``: per-layer int8 / float32 for a trained classifier under a budget."""
from __future__ import annotations

import os
from pathlib import Path

import click

from edgetailor.cli.common import Command, FiniteFloatRange, emit_json, fail, lasting_progress, load_profile


@click.command("quantize-mix", cls=Command)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--dataset", required=True, type=click.Path(path_type=Path),
              help="Class folders the model was trained on (its held-out split scores each candidate).")
@click.option("--device", required=True,
              help="host (every layer timed here) or a phone with a float32 and an int8 profile (pixel3, ...).")
@click.option("--budget-ms", required=True, type=FiniteFloatRange(0, min_open=True), help="Latency budget (ms).")
@click.option("--max-trials", type=click.IntRange(1, 200), default=8, show_default=True,
              help="Candidates exported and scored at most.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Bundle folder to create (must not exist or be empty).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest.")
def quantize_mix(model: Path, dataset: Path, device: str, budget_ms: float, max_trials: int, out_dir: Path,
                 as_json: bool) -> None:
    """Search which layers of a trained Keras classifier (.keras/.h5) stay float32 in an int8 TFLite
    model, under a latency budget, scored on the dataset's held-out images; write a bundle.

    \b
    Example:
      edgetailor quantize-mix m.keras --dataset photos/ --device host --budget-ms 0.5 --out out/mix
    """
    from edgetailor._io import check_output_folder

    if (model / "manifest.json").exists():
        fail(f"{model} is a bundle: it holds converted models only; pass the Keras model it was made from")
    if not model.is_file() or model.suffix.lower() not in (".keras", ".h5"):
        fail(f"MODEL must be a saved Keras classifier (.keras or .h5); got {model}")
    if not dataset.is_dir():
        fail(f"--dataset {dataset} is not a folder of class folders")
    check_output_folder(out_dir)
    if device != "host":  # a phone without an int8 profile: one line before the model loads (~20 s)
        from edgetailor.tasks.mixed_precision_latency import int8_partner

        int8_partner(load_profile(device))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgetailor.bundle.manifest import file_sha256
    from edgetailor.converters.inputs import load_keras
    from edgetailor.tasks import mixed_precision_bundle as bundle
    from edgetailor.tasks.mixed_precision import MixRequest

    keras_model = load_keras(model)
    say = lasting_progress("edgetailor: ")  # the bundle writer converts inside its stderr capture
    manifest = bundle.run(keras_model, dataset, device, MixRequest(budget_ms, max_trials), out_dir, say,
                          {"name": model.name, "sha256": file_sha256(model)})
    if as_json:
        emit_json(manifest)
        return
    mix = manifest["mixed_precision"]
    acc, ms = mix["accuracy"], mix["latency"]["predicted_ms"]
    click.echo(f"wrote bundle {out_dir}: {len(mix['float_layers'])} of {len(mix['layers'])} layers float32")
    click.echo(f"{mix['metric']}: float32 {acc['float32']:g}, int8 {acc['int8']:g}, mixed {acc['mixed']:g}")
    click.echo(f"predicted ms on {manifest['device']['profile']}: float32 {ms['float32']:.3f}, int8 "
               f"{ms['int8']:.3f}, mixed {ms['mixed']:.3f} (budget {budget_ms:g})")
    for layer in mix["float_layers"]:
        click.echo(f"  float32: {layer['op']} {layer['layer'][:60]} (rmse/scale {layer['rmse_over_scale']:g})")
    click.echo(f"warning: {mix['warning']}", err=True)
