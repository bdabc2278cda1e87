"""The ``edgetailor`` command line: a thin click shell over the library.

``zoo`` and ``describe`` never import TensorFlow; ``build`` does, lazily. Errors follow one
policy (``edgetailor.cli.common``): a project error is one ``Error:`` line and exit 1, a bug
keeps its traceback, asks for a report and exits 70.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import click

from edgetailor import __version__
from edgetailor.arch import layers, zoo
from edgetailor.cli.common import (PRETRAINED, FiniteFloatRange, Group, emit_json, fail, lasting_progress,
                                   load_profile, resolve_arch, say)


def _millions(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@click.group(cls=Group)
@click.version_option(__version__, prog_name="edgetailor")
def main() -> None:
    """Tailor a mobile vision model to one phone and one latency budget.

    \b
    Examples:
      edgetailor zoo --device pixel1
      edgetailor describe mobilenet_v2 --width 0.6 --resolution 176
      edgetailor latency mobilenet_v2 --device pixel1 --width 0.75
      edgetailor specialize --device pixel1 --budget-ms 40 --out out/pixel1_40ms
      edgetailor inspect out/pixel1_40ms
    """


@main.command("zoo")
@click.option("--device", help="Add predicted latency on this device (profile name or file).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def zoo_command(device: str | None, as_json: bool) -> None:
    """The registry: published top-1, params and MACs, ours beside them, and sources."""
    profile = load_profile(device) if device else None
    rows = []
    for entry in zoo.entries():
        spec = entry.spec
        params, macs = layers.count(spec)
        pub = entry.published
        latency = profile.predict(spec).total_ms if profile else None
        rows.append({
            "name": entry.name, "family": entry.family, "resolution": entry.resolution,
            "width": entry.width, "depth": entry.depth, "top1": pub.top1,
            "params_m": round(params / 1e6, 3), "published_params_m": pub.params_m,
            "macs_m": round(macs / 1e6, 1), "published_macs_m": pub.macs_m,
            "source": pub.source, "note": pub.note or None, "spec": spec.encode(),
            **({"device": profile.name, "latency_ms": round(latency, 2),
                "expected_error_pct": profile.expected_error_pct} if profile else {}),
        })
    if as_json:
        emit_json(rows)
        return
    lat = f" {'ms on ' + profile.aliases[0]:>14}" if profile else ""
    click.echo(f"{'name':32} {'res':>4} {'top1':>6} {'params M':>15} {'MACs M':>17}{lat}  source")
    click.echo(f"{'':32} {'':>4} {'':>6} {'ours / pub':>15} {'ours / pub':>17}")
    for r in rows:
        top1 = "-" if r["top1"] is None else f"{r['top1']:.1f}"
        params = f"{r['params_m']:.2f} / {_millions(r['published_params_m'])}"
        macs = f"{r['macs_m']:.0f} / {_millions(r['published_macs_m'], 0)}"
        lat = f" {r['latency_ms']:>14.1f}" if profile else ""
        click.echo(f"{r['name']:32} {r['resolution']:>4} {top1:>6} {params:>15} {macs:>17}{lat}  "
                   f"{r['source']}")
    if profile:
        click.echo(f"latency: {profile.name}, expected error {_expected(profile.expected_error_pct)}")


def _expected(pct: float | None) -> str:
    """A profile's out-of-sample error, or "unknown" when too few rows could be held out."""
    return "unknown" if pct is None else f"±{pct:.1f}%"


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def devices(as_json: bool) -> None:
    """The shipped device profiles with their calibration errors."""
    from edgetailor.latency import profiles

    shipped = profiles.shipped()
    if as_json:
        emit_json([p.summary() for p in shipped])
        return
    click.echo(f"{'name':34} {'aliases':32} {'expected error':>16}  setting")
    for p in shipped:
        click.echo(f"{p.name:34} {', '.join(p.aliases):32} {_expected(p.expected_error_pct):>16}  "
                   f"{p.setting}")


@main.command()
@click.argument("arch")
@click.option("--device", required=True, help="Profile name (see `edgetailor devices`) or file.")
@click.option("--resolution", type=click.IntRange(16, 2048), help="Input size in pixels.")
@click.option("--width", type=FiniteFloatRange(0.05, 4.0), help="Width multiplier.")
@click.option("--task", type=click.Choice(["classification", "detection", "segmentation"]),
              default="classification", show_default=True,
              help="Price ARCH as the backbone of an SSDLite (detection) or LR-ASPP head.")
@click.option("--num-classes", type=click.IntRange(1),
              help="Classes of the classifier or head [default: 1000, 90 or 21 by task].")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def latency(arch: str, device: str, resolution: int | None, width: float | None, task: str,
            num_classes: int | None, as_json: bool) -> None:
    """Predicted latency of ARCH on a device, with its expected error and a per-layer breakdown.

    With --task detection|segmentation the head is priced too, at the task's resolution (320 /
    256 px) unless --resolution says otherwise."""
    profile = load_profile(device)
    if task == "classification":
        resolved = resolve_arch(arch, width, resolution)
        spec = resolved.spec
        breakdown = profile.predict(spec, num_classes or 1000)
    else:
        from edgetailor.tasks import DENSE

        dense = DENSE[task]
        resolved = resolve_arch(arch, width, resolution or dense.default_resolution)
        spec = dense.adapt(resolved.spec, resolved.family.name if resolved.family else None)
        breakdown = dense.price(spec, profile, num_classes)
    if as_json:
        emit_json({
            "name": resolved.name, "task": task, "spec": spec.encode(), "device": profile.name,
            "profile_version": profile.version, "setting": profile.setting,
            "latency_ms": round(breakdown.total_ms, 3),
            "expected_error_pct": breakdown.expected_error_pct,
            "overhead_ms": round(breakdown.overhead_ms, 3),
            "table_share": round(breakdown.table_share, 3),
            "layers": [{"name": l.name, "key": l.key, "latency_ms": round(l.latency_ms, 4),
                        "source": l.source} for l in breakdown.layers],
        })
        return
    head = "" if task == "classification" else f" with its {task} head"
    click.echo(f"{resolved.name}{head} on {profile.name}: {breakdown.total_ms:.1f} ms "
               f"(expected error {_expected(breakdown.expected_error_pct)}; "
               f"{breakdown.table_share:.0%} from measured table entries)")
    click.echo(f"{'layer':12} {'ms':>8} {'from':>6}  key")
    for l in breakdown.layers:
        click.echo(f"{l.name:12} {l.latency_ms:8.3f} {l.source:>6}  {l.key}")
    click.echo(f"{'overhead':12} {breakdown.overhead_ms:8.3f} {'model':>6}  per-inference constant")


@main.command()
@click.argument("arch")
@click.option("--resolution", type=click.IntRange(16, 2048), help="Input size in pixels.")
@click.option("--width", type=FiniteFloatRange(0.05, 4.0), help="Width multiplier.")
@click.option("--num-classes", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def describe(arch: str, resolution: int | None, width: float | None, num_classes: int,
             as_json: bool) -> None:
    """Spec string, params, MACs and a per-layer table of ARCH (a zoo name, family or spec)."""
    resolved = resolve_arch(arch, width, resolution)
    walked = layers.walk(resolved.spec, num_classes)
    params = sum(layer.params for layer in walked)
    macs = sum(layer.macs for layer in walked)
    too_large = layers.size_problem(params)
    if too_large:  # described all the same: the table shows which layer is to blame
        click.echo(f"warning: {too_large}; build, convert and specialize refuse it", err=True)
    if as_json:
        emit_json({
            "name": resolved.name, "spec": resolved.spec.encode(),
            "spec_json": resolved.spec.to_dict(), "resolution": resolved.spec.resolution,
            "params": params, "keras_params": sum(layer.keras_params for layer in walked),
            "macs": macs,
            "layers": [{"name": l.name, "block": l.block.encode(), "in": list(l.in_shape),
                        "out": list(l.out_shape), "params": l.params, "macs": l.macs}
                       for l in walked],
        })
        return
    click.echo(f"{resolved.name}: {resolved.spec.encode()}")
    click.echo(f"params {params / 1e6:.3f} M   MACs {macs / 1e6:.1f} M   "
               f"input {resolved.spec.resolution}x{resolved.spec.resolution}x3")
    click.echo(f"{'layer':12} {'block':34} {'in':>14} {'out':>14} {'params':>10} {'MACs':>12}")
    for l in walked:
        shape_in = "x".join(map(str, l.in_shape))
        shape_out = "x".join(map(str, l.out_shape))
        click.echo(f"{l.name:12} {l.block.encode():34} {shape_in:>14} {shape_out:>14} "
                   f"{l.params:>10,} {l.macs:>12,}")


@main.command()
@click.option("--device", help="Profile name (see `edgetailor devices`) or file.  [required without --targets]")
@click.option("--budget-ms", type=FiniteFloatRange(0, min_open=True),
              help="Latency budget on that device, in ms.  [required without --targets]")
@click.option("--task", type=click.Choice(["classification", "detection", "segmentation"]),
              default="classification", show_default=True,
              help="detection: SSDLite head; segmentation: LR-ASPP head, on the picked backbone.")
@click.option("--resolution", type=click.IntRange(32, 1024),
              help="Detection/segmentation input size in px (default 320 / 256).")
@click.option("--max-detections", type=int,
              help="Detection: boxes returned per image, 1-1000 (default 25); TFLite and Core ML apply "
                   "the same settings.")
@click.option("--score-threshold", type=float, help="Detection: lowest score returned, 0 <= s < 1 (default 0.25).")
@click.option("--iou-threshold", type=float,
              help="Detection: IoU above which NMS drops the weaker box, 0 < IoU <= 1 (default 0.6).")
@click.option("--class-aware-nms/--class-agnostic-nms", "class_aware", default=None,
              help="Detection: suppress only boxes of the same class (default: across classes).")
@click.option("--dataset", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder with one sub-folder of images per class; the model is trained on it.")
@click.option("--epochs", type=click.IntRange(1, 1000), default=3, show_default=True,
              help="Training epochs (with --pretrained: per phase, head then all layers).")
@click.option("--pretrained", type=PRETRAINED,
              help="With --dataset: pick among families with published weights, start from them "
                   "('imagenet': Keras' download and cache; or a local Keras .h5) and fine-tune as "
                   "Model Maker does (new head on the frozen backbone, then all layers).")
@click.option("--quantize", type=click.Choice(["none", "int8"]), default="none", show_default=True,
              help="int8: ship a full-integer TFLite calibrated on --dataset's training images, with float "
                   "and int8 accuracy measured on its held-out split in the manifest (needs --dataset).")
@click.option("--qat-threshold", type=float,
              help="With --quantize int8: quantization-aware training when post-training int8 loses more "
                   "than this many percentage points, -100..100 (default 1; -100 always, 100 never).")
@click.option("--qat-epochs", type=int, help="With --quantize int8: quantization-aware epochs (default 2).")
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labels file (one per line) for a bundle without a dataset.")
@click.option("--search", "search_space", help="Re-search this space (mnasnet, proxyless, fbnet, "
              "ofa_mbv3) instead of picking a published family; the study resumes if interrupted.")
@click.option("--trials", type=click.IntRange(1, 100000), default=20, show_default=True,
              help="With --search: completed trials.")
@click.option("--strategy", default="nsga2", show_default=True,
              help="With --search: random, nsga2, tpe or rl; or fbnet, proxyless, lightnas (a weight-sharing "
                   "search on --dataset for --epochs; the weights are inherited).")
@click.option("--supernet", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A trained supernet checkpoint (`edgetailor supernet train`): search its sub-networks "
                   "and ship one with inherited weights and its measured accuracy. With a weight-sharing "
                   "--strategy: the search's folder (`edgetailor search --out`), reused or continued.")
@click.option("--finetune", type=click.IntRange(0, 1000), default=0, show_default=True,
              help="With --supernet: fine-tune the extracted sub-network for this many epochs.")
@click.option("--targets", "targets_text",
              help="With --supernet, instead of --device/--budget-ms: DEVICE:MS[,DEVICE:MS...] — one bundle "
                   "per phone in --out, plus index.json and Android/iOS selectors.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def specialize(device: str | None, budget_ms: float | None, task: str, resolution: int | None,
               max_detections: int | None, score_threshold: float | None, iou_threshold: float | None,
               class_aware: bool | None, dataset: Path | None, epochs: int, pretrained: str | None, quantize: str,
               qat_threshold: float | None, qat_epochs: int | None, labels_path: Path | None,
               search_space: str | None, trials: int, strategy: str, supernet: Path | None, finetune: int,
               targets_text: str | None, out_dir: Path, as_json: bool) -> None:
    """The most accurate model under --budget-ms on --device, as an app-ready bundle.

    Detection and segmentation: datasets are a COCO folder (labels.json + images/) or a Pascal
    VOC folder (detection), or images/ + masks/ + labels.txt (segmentation).

    \b
    Examples:
      edgetailor specialize --device pixel1 --budget-ms 40 --out out/pixel1_40ms
      edgetailor specialize --device galaxy_s8 --budget-ms 80 --dataset my_photos/ --out out/s8
      edgetailor specialize --device iphone_x --budget-ms 15 --labels labels.txt --out out/iphone
      edgetailor specialize --task detection --device pixel1 --budget-ms 60 \\
          --dataset data/shapes_coco --out out/det
      edgetailor specialize --device pixel1 --budget-ms 40 --search mnasnet --trials 20 \\
          --out out/searched
      edgetailor specialize --device pixel1 --budget-ms 40 --dataset my_photos/ --pretrained imagenet \\
          --out out/pretrained
      edgetailor specialize --device pixel1 --budget-ms 40 --dataset my_photos/ --quantize int8 \\
          --out out/int8
      edgetailor specialize --supernet ckpt/ --device pixel1 --budget-ms 10 --out out/from_supernet
      edgetailor specialize --supernet ckpt/ --targets pixel1:10,galaxy_s8:20,iphone_x:5 --out out/phones
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's first import
    from edgetailor.bundle.manifest import read_labels
    from edgetailor.specialize import QuantizeRequest, Request, SearchRequest, specialize as run
    from edgetailor.tasks.detection.postprocess import PostprocessConfig

    progress = lasting_progress()  # dense tasks convert inside the bundle writer's stderr capture
    postprocess = PostprocessConfig.from_options(max_detections, score_threshold, iou_threshold, class_aware)
    if quantize == "none" and (qat_threshold is not None or qat_epochs is not None):
        fail("--qat-threshold and --qat-epochs apply to --quantize int8")
    int8 = None
    if quantize != "none":
        given = {"qat_threshold_pp": qat_threshold, "qat_epochs": qat_epochs}
        int8 = QuantizeRequest(quantize, **{name: value for name, value in given.items() if value is not None})
    if targets_text is not None:
        extra = [name for name, given in (("--task", task != "classification"), ("--search", search_space),
                                          ("--labels", labels_path), ("--resolution", resolution),
                                          ("detection options", postprocess), ("--quantize", int8),
                                          ("--pretrained", pretrained)) if given]
        if extra:
            fail(f"--targets makes supernet classifiers; {', '.join(extra)} do not apply")
        _specialize_targets(supernet, targets_text, device, budget_ms, finetune, dataset, out_dir, as_json,
                            progress)
        return
    if device is None or budget_ms is None:
        fail("specialize needs --device and --budget-ms (or --supernet with --targets)")
    weight_sharing = search_space is not None and _weight_sharing(strategy)
    if finetune and supernet is None and not weight_sharing:
        fail("--finetune applies to --supernet or a weight-sharing --strategy (a picked or searched model "
             "trains with --dataset/--epochs)")
    request = Request(
        profile=load_profile(device), budget_ms=budget_ms, out_dir=out_dir, task=task, dataset=dataset,
        epochs=epochs, labels=tuple(read_labels(labels_path)) if labels_path else None,
        search=SearchRequest(search_space, trials, strategy) if search_space else None,
        resolution=resolution, supernet=supernet, finetune=finetune,
        postprocess=postprocess, quantize=int8, pretrained=pretrained)
    summary = run(request, progress=progress, quiet=True)
    if as_json:
        emit_json(summary)
        return
    if summary.get("mode") == "supernet":
        chosen, accuracy = summary["chosen"], summary["accuracy"]
        click.echo(f"sub-network {summary['supernet']['subnet']} of {supernet}: {chosen['latency_ms']:.1f} ms "
                   f"predicted on {summary['device']} (budget {budget_ms:g} ms); top-1 {accuracy['value']} % "
                   f"({accuracy['kind']}; predicted {summary['supernet']['predicted_top1']}); bundle in "
                   f"{summary['out']}")
        return
    if summary.get("task") in ("detection", "segmentation"):
        _echo_dense(summary, budget_ms)
        _echo_quantization(summary)
        return
    if summary.get("mode") == "search":
        chosen = summary["chosen"]
        click.echo(f"searched {chosen['spec']}: {chosen['latency_ms']:.1f} ms predicted on "
                   f"{summary['device']} (budget {budget_ms:g} ms); accuracy "
                   f"{summary['accuracy'].get('value')} ({summary['accuracy'].get('kind')}); "
                   f"bundle in {summary['out']}")
        _echo_quantization(summary)
        return
    chosen = summary["chosen"]
    accuracy = summary["accuracy"] or {}
    click.echo(f"{chosen['family']} width {chosen['width']:g} at {chosen['resolution']} px: "
               f"{chosen['latency_ms']:.1f} ms predicted on {summary['device']} "
               f"(budget {budget_ms:g} ms); accuracy {accuracy.get('value')} "
               f"({accuracy.get('kind')}); bundle in {summary['out']}")
    for c in summary["runners_up"]:
        click.echo(f"  runner-up: {c['family']} width {c['width']:g} at {c['resolution']} px, "
                   f"{c['latency_ms']:.1f} ms, top-1 {c['top1']} ({c['accuracy_kind']})")
    _echo_quantization(summary)


def _echo_quantization(summary: dict) -> None:
    """One line: the float and int8 TFLite figures on the held-out split, and which int8 model ships."""
    q = summary.get("quantization")
    if not q:
        return
    qat = "" if q["qat"] is None else f", quantization-aware {q['qat']['value']:g}"
    click.echo(f"int8 TFLite ({q['int8']['method']}): {q['metric']} {q['int8']['value']:g} against float32 "
               f"{q['float']['value']:g} ({0.0 - q['drop_pp']:+g} pp; post-training {q['ptq']['value']:g}{qat})")


def _weight_sharing(strategy: str) -> bool:
    from edgetailor.cli.supernet_search import is_weight_sharing

    return is_weight_sharing(strategy)


def _specialize_targets(supernet: Path | None, targets_text: str, device, budget_ms, finetune: int,
                        dataset: Path | None, out_dir: Path, as_json: bool, progress) -> None:
    from edgetailor.bundle.targets import parse_targets
    from edgetailor.specialize import specialize_targets

    if supernet is None:
        fail("--targets needs --supernet (one supernet serves every phone)")
    if device is not None or budget_ms is not None:
        fail("--targets names the devices and budgets; drop --device/--budget-ms")
    summary = specialize_targets(supernet, parse_targets(targets_text), out_dir, finetune, dataset,
                                 progress=progress, quiet=True)
    if as_json:
        emit_json(summary)
        return
    for variant in summary["variants"]:
        click.echo(f"{variant['device']}: {variant['supernet']['subnet']}, {variant['chosen']['latency_ms']:.1f} ms "
                   f"predicted (budget {variant['budget_ms']:g} ms), top-1 {variant['accuracy']['value']} % "
                   f"measured -> {variant['out']}")
    for platform, entry in summary["platforms"].items():
        if entry.get("selector"):
            click.echo(f"{platform}: default {entry['default']}; selector {out_dir / entry['selector']}")
    click.echo(f"index: {summary['index']}")


@main.command("shapes")
@click.option("--format", "layout", type=click.Choice(["classes", "coco", "voc", "masks"]),
              default="classes", show_default=True,
              help="classes: one sub-folder per class; coco / voc: boxes; masks: images + PNG masks.")
@click.option("--images", type=click.IntRange(1, 100000), default=500, show_default=True)
@click.option("--size", type=click.IntRange(16, 1024), default=128, show_default=True, help="pixels")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def shapes_command(layout: str, images: int, size: int, seed: int, out_dir: Path) -> None:
    """Write the built-in synthetic `shapes` dataset as a folder that specialize and search read."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edgetailor import _io as atomic
    from edgetailor.data import folders as datasets_det, shapes

    atomic.check_output_folder(out_dir)
    writers = {"coco": datasets_det.write_coco_folder, "voc": datasets_det.write_voc_folder,
               "masks": datasets_det.write_mask_folder}

    def write(staged: Path) -> None:
        with contextlib.ExitStack() as stack:
            bars = []

            def drawn() -> None:  # the bar opens at the first image: a refused --size stays one line
                if not bars:
                    bars.append(stack.enter_context(click.progressbar(
                        length=images, label=f"drawing {images} images", file=sys.stderr)))
                bars[0].update(1)

            if layout == "classes":
                shapes.write_folder(staged, images, size, seed, on_image=drawn)
            else:
                writers[layout](staged, shapes.detection(images, size, seed, on_image=drawn))

    atomic.write_atomically(out_dir, write)
    click.echo(f"wrote {images} {size}x{size} shapes images ({layout}) to {out_dir}")


def _echo_dense(summary: dict, budget_ms: float) -> None:
    chosen, accuracy = summary["chosen"], summary["accuracy"]
    click.echo(f"{summary['task']}: {chosen['family']} width {chosen['width']:g} at "
               f"{chosen['resolution']} px: {chosen['latency_ms']:.1f} ms predicted (backbone + head) "
               f"on {summary['device']} (budget {budget_ms:g} ms); {accuracy['metric']} "
               f"{accuracy['value']} ({accuracy['kind']}); bundle in {summary['out']}")
    for c in summary["runners_up"]:
        click.echo(f"  runner-up: {c['family']} width {c['width']:g}, {c['latency_ms']:.1f} ms, "
                   f"backbone top-1 {c['top1']} ({c['accuracy_kind']})")
    for ref in summary["published_references"]:
        click.echo(f"  published: {ref['name']}: {ref['published_pixel1_ms']:g} ms on Pixel 1, "
                   f"COCO mAP {ref['published_coco_map']:g}; predicted here "
                   f"{ref['predicted_ms_90_classes']:.1f} ms on {ref['device']}")


@main.group()
def profile() -> None:
    """Build device profiles: measure this machine, or import phone measurements."""


@profile.command("measure")
@click.option("--space", default="mnasnet", show_default=True,
              help="Search space whose ops to measure (mnasnet, proxyless, fbnet, ofa_mbv3, zoo).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--archs", type=click.IntRange(1, 10000), default=30, show_default=True,
              help="Random architectures of the space whose ops are measured.")
@click.option("--with-zoo", is_flag=True, help="Also measure every op of the zoo models.")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--end-to-end", "end_to_end", type=click.IntRange(0, 100), default=6, show_default=True,
              help="Converted models timed whole to scale op timings to in-model timings "
                   "(0: op timings only; each conversion takes 5-40 s).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--precision", type=click.Choice(["float32", "int8"]), default="float32", show_default=True,
              help="int8: time full-integer one-op models (int8 in and out); the profile prices int8 networks.")
@click.option("--kernels", is_flag=True,
              help="Also build the kernel-level predictor (OUT.kernels.npz, timings in OUT.kernels.jsonl; "
                   "about 2,000 kernels, minutes): the profile then predicts with it.")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own log lines (hidden by default).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def profile_measure(space: str, out_path: Path, archs: int, with_zoo: bool, threads: int,
                    end_to_end: int, seed: int, precision: str, kernels: bool, verbose: bool,
                    as_json: bool) -> None:
    """Measure this machine op by op with the TFLite interpreter and write a host profile.

    Interrupted runs resume: measurements go to OUT.measurements.jsonl as they are made.
    """
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's first import
    from edgetailor import _io
    from edgetailor.arch import spaces
    from edgetailor.cli.common import say
    from edgetailor.converters.base import native_output_captured
    from edgetailor.profiling import host as host_profile

    if kernels and precision != "float32":
        fail("--kernels builds a float32 kernel predictor: drop --kernels or --precision int8")
    if space != "zoo":
        spaces.get(space)
    _io.check_output_file(out_path, replace=True)  # a rerun rewrites the profile from the journal
    ops = host_profile.collect_ops(space, archs, seed, include_zoo=with_zoo)
    journal = out_path.with_name(out_path.name + ".measurements.jsonl")
    created = _io.make_folders(out_path.parent)
    try:
        done = host_profile.read_journal(journal, threads, say, precision)  # before the bar: its line stays whole
        with native_output_captured(not verbose):  # TFLite's delegate banner, printed once
            overhead = host_profile._empty_model_ms(threads, precision)
        with click.progressbar(length=len(ops), label=f"timing {len(ops)} ops", file=sys.stderr) as bar:
            measured = host_profile.measure_ops(ops, journal, threads, bar.update, done, precision)
    except BaseException:
        if not journal.exists():  # nothing measured: nothing to resume, nothing left behind
            _io.remove_folders(created)
        raise
    document = host_profile.host_profile(ops, measured, overhead, threads, space, precision)
    if end_to_end and space != "zoo":
        with click.progressbar(length=end_to_end, label="timing converted models",
                               file=sys.stderr) as bar:
            document = host_profile.end_to_end_correction(
                document, space, end_to_end, seed, threads,
                out_path.with_name(out_path.name + ".models"), bar.update, quiet=not verbose, precision=precision)
    if kernels:
        import contextlib

        from edgetailor.profiling import kernels_fit

        @contextlib.contextmanager
        def kernel_bar(label: str, total: int):
            with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
                yield bar.update

        document = kernels_fit.attach(document, out_path, threads, seed, kernel_bar, say)
    _io.write_json(out_path, document)
    summary = {"out": str(out_path), "name": document["name"], "ops": len(ops),
               "error": document["error"], "kernel_predictor": document.get("kernel_predictor")}
    if as_json:
        emit_json(summary)
    else:
        fit_error = document["error"]["ops_model_in_sample"]["mape_pct"]
        click.echo(f"wrote {out_path}: {document['name']}, {len(ops)} ops measured "
                   f"(fitted fallback, in-sample error on ops {fit_error}%)")
        if kernels:
            entry = document["kernel_predictor"]
            click.echo(f"kernel predictor: {entry['kernels_measured']} kernels measured, "
                       f"{len(entry['held_out'])} kernel types, in {out_path.parent / entry['file']}")
            networks = entry["in_network"]
            click.echo(f"in-network terms: {networks['networks']} networks timed whole, "
                       + (f"leave-one-out error {networks['leave_one_out_mape_pct']}% "
                          f"(kernels summed as timed alone: {networks['plain_sum_mape_pct']}%)"
                          if "leave_one_out_mape_pct" in networks else networks["note"]))


@profile.command("import")
@click.argument("measurements", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--base", default="pixel1", show_default=True,
              help="Profile whose coefficients are scaled to the new device when rows are few.")
@click.option("--name", "profile_name", required=True, help="Name of the new profile.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def profile_import(measurements: tuple[Path, ...], base: str, profile_name: str, out_path: Path,
                   as_json: bool) -> None:
    """Turn harness results (android-bench, iOS harness) into a device profile."""
    from edgetailor import _io
    from edgetailor.profiling import ingest as importer

    _io.check_output_file(out_path, replace=True)  # a rebuilt profile replaces the old one
    base_profile = load_profile(base)
    document = importer.profile_from_measurements(list(measurements), base_profile, profile_name)
    _io.write_json(out_path, document)
    if as_json:
        emit_json({"out": str(out_path), "name": document["name"], "error": document["error"],
                    "expected_error_pct": document["expected_error_pct"]})
    else:
        click.echo(f"wrote {out_path}: {document['name']} from {len(document['calibration'])} "
                   f"measured models, expected error {_expected(document['expected_error_pct'])}")


@profile.command("adapt")
@click.option("--base", required=True, help="Profile with a kernel predictor (profile measure --kernels).")
@click.option("--measurements", "measurements", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The new device's kernel timings (JSONL; --measure writes it here).")
@click.option("--name", "profile_name", required=True, help="Name of the new profile.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--measure", is_flag=True,
              help="First time the chosen kernels on this machine in --threads/--precision into "
                   "MEASUREMENTS (resumes an interrupted run).")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--precision", type=click.Choice(["float32", "int8"]), default="float32", show_default=True)
@click.option("--max-kernels", type=click.IntRange(1, 100000), default=300, show_default=True)
@click.option("--networks", type=click.IntRange(0, 1000), default=64, show_default=True,
              help="With --measure: whole networks (kernels chained in one model) timed too, to refit what "
                   "kernels cost inside a network (32 overfit the refit in the adapt benchmark, 64 did not).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def profile_adapt(base: str, measurements: Path, profile_name: str, out_path: Path, measure: bool,
                  threads: int, precision: str, max_kernels: int, networks: int, seed: int, as_json: bool) -> None:
    """A new device's profile from few kernel timings: the base's kernel trees kept, each kernel
    type's baseline refitted on the new device (and what kernels cost inside a network, from
    whole networks timed there)."""
    from edgetailor import _io
    from edgetailor.profiling import adapt

    _io.check_output_file(out_path, replace=True)
    base_profile = load_profile(base)
    if base_profile.kernels is None:
        fail(f"base profile {base_profile.name} has no kernel predictor to adapt; build one with "
             "`edgetailor profile measure --kernels`")
    if measure:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from edgetailor.converters.base import native_output_captured
        from edgetailor.profiling import adapt_measure

        chosen = adapt_measure.choose(base_profile.kernels, max_kernels, seed)
        _io.check_writable(measurements)
        with native_output_captured(True):  # TFLite's delegate banner, printed once: not over the bar
            adapt_measure.measure([], measurements, threads, precision, say=say)  # the empty model
        with click.progressbar(length=len(chosen), label=f"timing {len(chosen)} kernels", file=sys.stderr) as bar:
            adapt_measure.measure(chosen, measurements, threads, precision, bar.update, say)
        if networks:
            say(f"timing {networks} whole networks")
            adapt_measure.measure_networks(adapt_measure.choose_networks(base_profile.kernels, networks, seed),
                                           measurements, threads, precision)
    document = adapt.write(base_profile, measurements, profile_name, out_path)
    summary = {"out": str(out_path), "name": profile_name, "base": base_profile.name,
               "adapt": document["error"]["adapt"], "expected_error_pct": document["expected_error_pct"]}
    if as_json:
        emit_json(summary)
    else:
        entry, report = document["kernel_predictor"], document["error"]["adapt"]
        click.echo(f"wrote {out_path}: {profile_name} from {entry['kernels_measured']} kernels measured, "
                   f"adapted from {base_profile.name}; expected error {_expected(document['expected_error_pct'])}")
        if report.get("models_measured"):
            click.echo(f"whole models: {report['models_measured']} timed, {report['in_model']}")


@main.command()
@click.argument("arch")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to save the model (.keras).")
@click.option("--resolution", type=click.IntRange(16, 2048), help="Input size in pixels.")
@click.option("--width", type=FiniteFloatRange(0.05, 4.0), help="Width multiplier.")
@click.option("--num-classes", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--dropout", type=FiniteFloatRange(0.0, 0.9), help="Dropout before the classifier.")
@click.option("--pretrained", type=PRETRAINED,
              help="Start from Keras Applications' ImageNet weights ('imagenet': Keras' download and "
                   "cache; or a local .h5), mapped onto any width and resolution of the family.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def build(arch: str, out_path: Path, resolution: int | None, width: float | None,
          num_classes: int, dropout: float | None, pretrained: str | None,
          as_json: bool) -> None:
    """Build ARCH as a tf.keras model and save it (random weights unless --pretrained).

    \b
    Examples:
      edgetailor build mobilenet_v3_small --width 0.5 --resolution 128 --num-classes 5 --out m.keras
      edgetailor build mobilenet_v2 --width 0.6 --pretrained imagenet --num-classes 5 --out m.keras
      edgetailor build mobilenet_v2_100 --pretrained mobilenet_v2_weights.h5 --out m.keras
    """
    if out_path.suffix != ".keras":
        fail(f"--out must end in .keras (got {out_path.name})")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow's first import
    from edgetailor import _io

    _io.check_output_file(out_path)  # an existing model is refused, as every command refuses its output
    resolved = resolve_arch(arch, width, resolution)
    if pretrained and resolved.family is None:
        fail("--pretrained needs a family or zoo name (an inline spec has no published weights)")
    family_dropout = resolved.family.dropout if resolved.family else 0.0
    entry_dropout = resolved.entry.dropout if resolved.entry else None
    rate = next(d for d in (dropout, entry_dropout, family_dropout) if d is not None)
    from edgetailor.builder import network as builder, pretrained as starts  # TensorFlow only here

    if pretrained:
        model, start = starts.build_pretrained(resolved.spec, resolved.family.name, pretrained,
                                               num_classes=num_classes, dropout=rate, name=resolved.name)
        say(f"starting from {start.describe()}")
    else:
        model = builder.build(resolved.spec, num_classes=num_classes, dropout=rate,
                              name=resolved.name)
    _save_atomically(model, out_path)
    summary = {"name": resolved.name, "out": str(out_path), "params": model.count_params(),
               "resolution": resolved.spec.resolution, "spec": resolved.spec.encode(),
               "weights": start.describe() if pretrained else "random"}
    if as_json:
        emit_json(summary)
    else:
        weights = "pretrained weights" if pretrained else "random weights"
        click.echo(f"saved {resolved.name} ({summary['params']:,} params, {weights}) to {out_path}")


def _register_commands() -> None:
    """Commands that live in their own modules (each imports its heavy parts lazily)."""
    from edgetailor.cli.android import android_bench
    from edgetailor.cli.blocks import blocks_group
    from edgetailor.cli.convert import convert, inspect, package
    from edgetailor.cli.search import scale_command, search_command
    from edgetailor.cli.quantize_mix import quantize_mix
    from edgetailor.cli.supernet import supernet_group

    for command in (android_bench, search_command, scale_command, convert, package, inspect, supernet_group,
                    quantize_mix, blocks_group):
        main.add_command(command)


_register_commands()


def _save_atomically(model, out_path: Path) -> None:
    """Save next to ``out_path`` and rename, so a failure leaves nothing half written."""
    from edgetailor._io import write_atomically

    write_atomically(out_path, lambda staged: model.save(staged))


if __name__ == "__main__":
    sys.exit(main())
