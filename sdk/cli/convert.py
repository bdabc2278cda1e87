"""``edgetailor convert``, ``package`` and ``inspect``: artifacts and bundles for apps.

A thin click shell over ``edgetailor.converters`` and ``edgetailor.bundle.writer``. MODEL is a saved
Keras model (.keras/.h5) or a zoo name / family / inline spec, built with random weights (and
marked so). Progress goes to stderr, results to stdout (``--json`` for pipelines); every user
mistake is one ``Error:`` line with a non-zero exit and nothing written at the output path.
TensorFlow and coremltools are imported only inside the commands.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from edgetailor.arch import zoo
from edgetailor.cli.common import (PRETRAINED, Command, FiniteFloatRange, emit_json, fail, load_profile,
                                   resolve_arch, say)
from edgetailor.converters.base import (COMPRESSIONS, IO_TYPES, PRECISIONS, QUANTIZE_MODES,
                                        suffix, targets)

_MODEL_SUFFIXES = (".keras", ".h5")


@dataclass
class _Loaded:
    """The model a MODEL argument stands for, and what is known about it."""

    model: Any  # tf.keras.Model
    resolved: zoo.Resolved | None
    weights: str  # "random" or "saved model"
    source_model: dict | None  # name and sha256 of a saved model file


def _looks_like_file(text: str) -> bool:
    return Path(text).suffix.lower() in _MODEL_SUFFIXES or os.sep in text and "|" not in text


def _load(model_arg: str, width: float | None, resolution: int | None, num_classes: int,
          arch: str | None = None, pretrained: str | None = None) -> _Loaded:
    """Load a saved Keras model, or build a zoo name / spec with random weights (``pretrained``:
    a family point from published weights, ``builder.pretrained``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's first import
    if _looks_like_file(model_arg) or Path(model_arg).exists():
        if resolution is not None or width is not None:
            fail("--resolution and --width apply to zoo names and specs; a saved model is fixed")
        if pretrained:
            fail("--pretrained builds MODEL from published weights; a saved model has its own")
        from edgetailor.bundle.manifest import file_sha256
        from edgetailor.bundle.writer import identify_arch
        from edgetailor.converters.inputs import load_keras

        say(f"loading {model_arg}")
        model = load_keras(model_arg)
        resolved = identify_arch(model, arch)
        source = {"name": Path(model_arg).name, "sha256": file_sha256(Path(model_arg))}
        return _Loaded(model, resolved, "saved model", source)
    if arch:
        fail("--arch describes a saved model file; MODEL is already an architecture")
    resolved = resolve_arch(model_arg, width, resolution)
    if pretrained:
        if resolved.family is None:
            fail("--pretrained needs a family or zoo name (an inline spec has no published weights)")
        from edgetailor.builder.pretrained import build_pretrained

        model, start = build_pretrained(resolved.spec, resolved.family.name, pretrained, num_classes=num_classes,
                                        name=resolved.name)
        head = "" if start.head_copied else \
            "; the classifier is new (untrained): fine-tune it with specialize --dataset --pretrained"
        say(f"built {resolved.name} from {start.describe()}{head}")
        return _Loaded(model, resolved, start.describe() + head, None)
    from edgetailor.builder import network as builder

    say(f"building {resolved.name} at {resolved.spec.resolution} px with random weights")
    model = builder.build(resolved.spec, num_classes=num_classes, name=resolved.name)
    return _Loaded(model, resolved, "random", None)


def _check_out(out: Path, wanted_suffix: str | None = None) -> None:
    """An artifact or bundle path must be new (or an empty folder) and writable; missing parent
    folders are made when it is written."""
    from edgetailor._io import check_output_folder

    if wanted_suffix and out.suffix != wanted_suffix:
        fail(f"--out must end in {wanted_suffix} (got {out.name})")
    check_output_folder(out)


def _calibration(folder: Path | None, model, quantize: str):
    if quantize not in ("int8", "int16x8"):
        return None
    from edgetailor.converters.inputs import load_images
    from edgetailor.converters.tflite import input_size

    images = load_images(folder, input_size(model))
    say(f"read {len(images)} calibration images from {folder}")
    return images


def _labels(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    from edgetailor.bundle.manifest import read_labels

    return read_labels(path)


def _check_quantize(quantize: str, calibration: Path | None) -> None:
    if quantize in ("int8", "int16x8") and calibration is None:
        fail(f"--quantize {quantize} needs --calibration DIR (a folder of representative "
              f".jpg/.png images)")


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


_quantize_option = click.option(
    "--quantize", type=click.Choice(QUANTIZE_MODES), default="none", show_default=True,
    help="TFLite: float32 (none), float16 weights, dynamic-range int8, full int8, 16x8.")
_io_option = click.option("--io-type", type=click.Choice(IO_TYPES), default="uint8", show_default=True,
                          help="Input/output type of a full-integer (int8) TFLite model.")
_calibration_option = click.option(
    "--calibration", type=click.Path(path_type=Path),
    help="Folder of .jpg/.png images: the representative dataset for int8 and int16x8.")
_precision_option = click.option("--precision", type=click.Choice(PRECISIONS), default="float16",
                                 show_default=True, help="Core ML compute precision.")
_compress_option = click.option("--compress", type=click.Choice(COMPRESSIONS), default="none",
                                show_default=True, help="Core ML weight compression.")
_arch_option = click.option("--arch", help="Architecture of a saved model (zoo name or spec), "
                                           "for latency prediction; checked against its parameters.")
_size_options = [
    click.option("--resolution", type=click.IntRange(16, 2048), help="Input size in pixels (zoo names, specs)."),
    click.option("--width", type=FiniteFloatRange(0.05, 4.0), help="Width multiplier (zoo names, specs)."),
]


def _with(options):
    def decorate(function):
        for option in reversed(options):
            function = option(function)
        return function
    return decorate


@click.command(cls=Command)
@click.argument("model")
@click.option("--format", "target", type=click.Choice(targets()),
              help="tflite or coreml (default: from the --out suffix).")
@_quantize_option
@_io_option
@_calibration_option
@_precision_option
@_compress_option
@click.option("--labels", "labels_path", type=click.Path(path_type=Path),
              help="Class labels, one per line (packed into the TFLite metadata / Core ML classifier).")
@click.option("--num-classes", type=click.IntRange(1), default=1000, show_default=True,
              help="Classes of a model built from a zoo name or spec without --labels.")
@_with(_size_options)
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path),
              help="model.tflite or model.mlpackage.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def convert(model: str, target: str | None, quantize: str, io_type: str, calibration: Path | None,
            precision: str, compress: str, labels_path: Path | None, num_classes: int,
            resolution: int | None, width: float | None, out_path: Path, as_json: bool) -> None:
    """Convert MODEL to one TFLite or Core ML artifact (parity-checked / statically verified).

    \b
    Examples:
      edgetailor convert m.keras --labels labels.txt --out m.tflite
      edgetailor convert m.keras --quantize int8 --calibration photos/ --out m_int8.tflite
      edgetailor convert m.keras --precision float16 --compress palettize6 --out m.mlpackage
      edgetailor convert mobilenet_v3_small_075 --resolution 128 --out random.tflite
    """
    from edgetailor._io import write_atomically

    if target is None:
        target = {".tflite": "tflite", ".mlpackage": "coreml"}.get(out_path.suffix)
        if target is None:
            fail(f"cannot tell the format from {out_path.name}; pass --format {'|'.join(targets())}")
    _check_out(out_path, suffix(target))
    if target == "coreml" and quantize != "none":
        fail("--quantize applies to TFLite; Core ML takes --precision and --compress")
    if target == "tflite" and (precision != "float16" or compress != "none"):
        fail("--precision and --compress apply to Core ML; TFLite takes --quantize")
    _check_quantize(quantize, calibration)
    labels = _labels(labels_path)
    loaded = _load(model, width, resolution, len(labels) if labels else num_classes)
    from edgetailor.converters import ConvertOptions, ModelInfo, convert as run_convert
    from edgetailor.converters.inputs import normalization_of

    images = _calibration(calibration, loaded.model, quantize)
    name = loaded.resolved.name if loaded.resolved else loaded.model.name
    options = ConvertOptions(
        quantize=quantize, io_type=io_type, precision=precision, compress=compress,
        labels=tuple(labels) if labels else None, normalization=normalization_of(loaded.model),
        info=ModelInfo(name=name, description=f"{name} image classifier"
                       + (" (random weights)" if loaded.weights == "random" else ""),
                       extra=(("edgetailor.weights", loaded.weights),)),
        quiet=True)
    say(f"converting to {target}" + (f" ({quantize})" if target == "tflite" else f" ({precision})"))
    artifact = run_convert(loaded.model, target, options, images)
    write_atomically(out_path, artifact.save)
    details = artifact.details
    size = out_path.stat().st_size if out_path.is_file() else sum(
        p.stat().st_size for p in out_path.rglob("*") if p.is_file())
    warnings = (["built with random weights"] if loaded.weights == "random" else [])
    if as_json:
        emit_json({"out": str(out_path), "format": target, "model": name,
                    "weights": loaded.weights, "bytes": size, "details": details,
                    "warnings": warnings})
        return
    if target == "tflite":
        parity = details["parity"]
        check = "" if parity is None else (
            f"max abs error {parity['max_abs_error']:.1e}" if parity["kind"] == "max_abs_error"
            else f"top-1 agreement {parity['top1_agreement']:.0%}") + (
            f" of the {parity['compared']} on {parity['samples']} images")
        click.echo(f"wrote {out_path} ({quantize}, {_mb(size)}; parity: {check}; "
                   f"{sum(details['ops'].values())} builtin ops)")
    else:
        click.echo(f"wrote {out_path} ({precision}, compress {compress}, {_mb(size)}; "
                   f"{len(details['verified'])} static checks passed; Core ML cannot predict on Linux)")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


@click.command(cls=Command)
@click.argument("model")
@click.option("--device", required=True, help="Profile name (see `edgetailor devices`) or file.")
@click.option("--labels", "labels_path", required=True, type=click.Path(path_type=Path),
              help="Class labels, one per line.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Bundle folder to create (must not exist or be empty).")
@click.option("--budget-ms", type=FiniteFloatRange(0, min_open=True),
              help="Latency budget, recorded and checked.")
@_with(_size_options)
@_arch_option
@click.option("--pretrained", type=PRETRAINED,
              help="MODEL as a family or zoo name: start from Keras Applications' ImageNet weights "
                   "('imagenet' or a local .h5), mapped onto its width and resolution.")
@_quantize_option
@_io_option
@_calibration_option
@_precision_option
@_compress_option
@click.option("--accuracy", type=FiniteFloatRange(0, 100), help="Top-1 (%) you measured for these weights.")
@click.option("--accuracy-source", help="Where --accuracy comes from (data set, split, script).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest.")
def package(model: str, device: str, labels_path: Path, out_dir: Path, budget_ms: float | None,
            resolution: int | None, width: float | None, arch: str | None, pretrained: str | None, quantize: str,
            io_type: str, calibration: Path | None, precision: str, compress: str,
            accuracy: float | None, accuracy_source: str | None, as_json: bool) -> None:
    """Write an app-ready bundle: model.tflite, model.mlpackage, labels.txt, manifest.json.

    \b
    Examples:
      edgetailor package m.keras --arch mobilenet_v2_100 --device pixel1 --labels labels.txt \\
          --budget-ms 40 --out out/app
      edgetailor package m.keras --device pixel1 --labels labels.txt --quantize int8 \\
          --calibration photos/ --accuracy 71.2 --accuracy-source "my val split" --out out/app8
    """
    from edgetailor.bundle import writer as bundle
    from edgetailor.choose.candidate import Accuracy
    if out_dir.suffix in (".tflite", ".mlpackage"):
        fail(f"--out is the bundle folder (got {out_dir.name}); use `edgetailor convert` for one file")
    _check_out(out_dir)
    _check_quantize(quantize, calibration)
    if (accuracy is None) != (accuracy_source is None):
        fail("--accuracy and --accuracy-source go together")
    profile = load_profile(device)
    labels = bundle.read_labels(labels_path)
    measured = None if accuracy is None else Accuracy(accuracy, "measured", accuracy_source)
    loaded = _load(model, width, resolution, len(labels), arch, pretrained)
    images = _calibration(calibration, loaded.model, quantize)
    manifest = bundle.package(
        loaded.model, out_dir, labels=labels, profile=profile, arch=loaded.resolved,
        weights=loaded.weights, budget_ms=budget_ms, accuracy=measured, quantize=quantize,
        io_type=io_type, precision=precision, compress=compress, calibration=images,
        source_model=loaded.source_model, progress=say, quiet=True)
    if as_json:
        emit_json(manifest)
        return
    latency = manifest["latency"]
    files = manifest["files"]
    click.echo(f"wrote bundle {out_dir}: model.tflite ({_mb(files['model.tflite']['bytes'])}, "
               f"{quantize}), model.mlpackage ({_mb(files['model.mlpackage']['bytes'])}, {precision}), "
               f"{len(labels)} labels")
    if latency["predicted_ms"] is not None:
        error = latency["expected_error_pct"]
        budget = "" if budget_ms is None else f", budget {budget_ms:g} ms"
        click.echo(f"predicted {latency['predicted_ms']:.1f} ms on {manifest['device']['profile']}"
                   f"{'' if error is None else f' (expected error ±{error:.1f}%)'}{budget}")
    for warning in manifest["warnings"]:
        click.echo(f"warning: {warning}", err=True)


@click.command(cls=Command)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--clients", "with_clients", is_flag=True,
              help="Also run the bundle in MediaPipe Tasks and the TFLite Task Library (environments "
                   "made by tools/client-venvs.sh) and compare them with the TFLite interpreter.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect(path: Path, with_clients: bool, as_json: bool) -> None:
    """Show what a .tflite, a .mlpackage or a bundle folder holds (bundles: hashes re-checked)."""
    from edgetailor.bundle.inspect import inspect_bundle

    if not path.exists():
        fail(f"not found: {path}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if path.is_dir() and (path / "manifest.json").exists():
        report = inspect_bundle(path)
        if not report["ok"]:
            _show_bundle(path, report, as_json)
            bad = [name for name, check in report["files"].items() if not check["sha256_ok"]]
            fail(f"bundle {path} does not match its manifest: {', '.join(bad) or 'no files listed'}")
        if with_clients:
            _inspect_clients(path, report, as_json)
        else:
            _show_bundle(path, report, as_json)
        return
    if with_clients:
        fail("--clients checks a bundle folder: its manifest holds the normalisation and labels "
             "the clients are compared against")
    if path.is_dir():
        from edgetailor.converters.base import native_output_captured
        from edgetailor.converters.coreml import describe_package

        with native_output_captured():
            report = describe_package(path)
    else:
        from edgetailor.converters.tflite import describe

        report = describe(path.read_bytes())
    if as_json:
        emit_json({"path": str(path), **report})
    elif report["format"] == "tflite":
        _show_tflite(path, report)
    else:
        _show_mlpackage(path, report)


def _inspect_clients(path: Path, report: dict, as_json: bool) -> None:
    """The bundle report plus the real-client check (``edgetailor.bundle.clients``); exit 1 when a
    client differs from the interpreter, naming the client and the difference."""
    from edgetailor.bundle.clients import check_bundle
    from edgetailor.converters.base import native_output_captured

    with native_output_captured():
        checks = check_bundle(path)
    if as_json:
        report = {**report, "clients": [c.to_dict() for c in checks]}
    _show_bundle(path, report, as_json)
    if not as_json:
        for c in checks:
            state = "same as the interpreter" if c.ok else "DIFFERS: " + "; ".join(c.differences)
            click.echo(f"  client   {c.client} {c.version or ''}: {state} ({c.compared})")
            for note in c.notes:
                click.echo(f"  note     {c.client}: {note}")
    wrong = [f"{c.client}: {'; '.join(c.differences)}" for c in checks if not c.ok]
    if wrong:
        fail(f"bundle {path} runs differently in a client than in the TFLite interpreter: " + " | ".join(wrong))


def _tensor(t: dict) -> str:
    quant = t.get("quantization")
    q = f" q(scale {quant['scale']:.6g}, zero {quant['zero_point']})" if quant else ""
    return f"{t['name']} {t['dtype']}{t['shape']}{q}"


def _show_tflite(path: Path, report: dict) -> None:
    click.echo(f"{path}: TFLite, {_mb(report['bytes'])}")
    for t in report["inputs"]:
        click.echo(f"  input   {_tensor(t)}")
    for t in report["outputs"]:
        click.echo(f"  output  {_tensor(t)}")
    click.echo("  ops     " + ", ".join(f"{name} x{count}" for name, count in report["ops"].items()))
    meta = report["metadata"]
    if meta is None:
        click.echo("  metadata: none")
        return
    norm = meta["normalization"] or {}
    labels = meta["labels"] or []
    click.echo(f"  metadata: {meta['name']} v{meta['version']} by {meta['author']}; normalization "
               f"mean {norm.get('mean')} std {norm.get('std')}; {len(labels)} labels "
               f"({', '.join(labels[:5])}{', ...' if len(labels) > 5 else ''})")


def _show_mlpackage(path: Path, report: dict) -> None:
    click.echo(f"{path}: Core ML {report['type']} (spec v{report['specification_version']}), "
               f"{_mb(report['bytes'])}, {report.get('precision')}, compression {report.get('compression')}")
    for f in report["inputs"]:
        extra = f" {f['width']}x{f['height']} {f['color_space']}" if f["type"] == "image" else ""
        click.echo(f"  input   {f['name']} {f['type']}{extra}")
    for f in report["outputs"]:
        click.echo(f"  output  {f['name']} {f['type']}")
    pre = report.get("preprocessing") or {}
    click.echo(f"  preprocessing scale {pre.get('scale')} bias {pre.get('bias')}")
    classes = report.get("classes") or []
    click.echo(f"  classes {len(classes)} ({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''})")
    meta = report["metadata"]
    click.echo(f"  metadata: {meta['short_description']!r} v{meta['version']} by {meta['author']}")
    for key, value in meta["user_defined"].items():
        click.echo(f"    {key}: {value}")
    click.echo("  (Core ML cannot predict on Linux; this is the package's static content)")


def _latency_line(latency: dict) -> str:
    """A manifest's latency in words: a bundle without a budget says "none", not "None"."""
    predicted, error, budget = (latency.get(k) for k in ("predicted_ms", "expected_error_pct", "budget_ms"))
    text = "predicted unknown" if predicted is None else f"predicted {predicted:g} ms"
    text += ", expected error unknown" if error is None else f", expected error ±{error:g}%"
    if budget is None:
        return text + ", budget none"
    within = {True: "within", False: "over"}.get(latency.get("within_budget"))
    return text + f", budget {budget:g} ms" + (f" ({within})" if within else "")


def _accuracy_line(accuracy: dict) -> str:
    """A manifest's accuracy figure with its kind and source, or why none is known."""
    if accuracy.get("value") is None:
        note = accuracy.get("note")
        return "unknown" + (f" ({note})" if note else "")
    source = f"; {accuracy['source']}" if accuracy.get("source") else ""
    return f"{accuracy['value']:g} {accuracy.get('metric', '')} ({accuracy.get('kind')}{source})"


def _show_bundle(path: Path, report: dict, as_json: bool) -> None:
    m = report["manifest"]
    if as_json:
        emit_json({"path": str(path), "format": "bundle", **report})
        return
    arch = m.get("arch") or {}
    latency = m.get("latency") or {}
    accuracy = m.get("accuracy") or {}
    click.echo(f"{path}: bundle ({m.get('schema')}), task {m.get('task')}, {m.get('model_name')}, "
               f"weights {m.get('weights')}")
    if arch:
        click.echo(f"  arch     {arch.get('name')} at {arch.get('resolution')} px: {arch.get('spec')}")
    device = m.get("device") or {}
    click.echo(f"  device   {device.get('profile')} v{device.get('version')} ({device.get('setting')})")
    click.echo(f"  latency  {_latency_line(latency)}")
    click.echo(f"  accuracy {_accuracy_line(accuracy)}")
    norm = (m.get("input") or {}).get("normalization") or {}
    click.echo(f"  input    {(m.get('input') or {}).get('shape')} RGB, (pixel - {norm.get('mean')}) / {norm.get('std')}")
    click.echo(f"  labels   {len(m.get('labels', []))}")
    for name, check in report["files"].items():
        state = "ok" if check["sha256_ok"] else ("MISSING" if not check["present"] else "HASH MISMATCH")
        click.echo(f"  file     {name:18} {state}")
    for name in report["unlisted"]:
        click.echo(f"  file     {name:18} not in manifest")
    for warning in m.get("warnings", []):
        click.echo(f"  warning  {warning}")
