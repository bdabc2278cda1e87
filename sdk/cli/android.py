"""``edgetailor android-bench``: measure a .tflite on a phone, or read a saved capture.

A thin click shell over ``edgetailor.android_harness`` (``adb``, ``parser``, ``measurements``,
``blocks``); every user mistake or failed step ends as one ``Error: ...`` line with a non-zero
exit. It lives in the cli room, not in the harness, so that the harness never imports the CLI
(``edgetailor.android_harness.cli`` still imports, as an alias of this module).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from edgetailor._io import write_json, write_text
from edgetailor.android_harness.adb import BenchConfig, check_cpu_mask, measure
from edgetailor.android_harness.measurements import Device, to_measurements
from edgetailor.android_harness.parser import decode, parse_file, parse_profile
from edgetailor.cli.common import Command, emit_json, fail, resolve_arch
from edgetailor.errors import EdgetailorError

_RUN_ONLY = ("benchmark_binary", "serial", "threads", "op_profiling", "warmup_runs",
             "num_runs", "timeout_s", "save_output")
_PARSE_ONLY = ("profile_csv", "device_name")


def _flag(name: str) -> str:
    return {"timeout_s": "--timeout", "device_name": "--device"}.get(
        name, "--" + name.replace("_", "-"))


def _check_arch(arch: str | None) -> str | None:
    if arch is None:
        return None
    try:
        resolve_arch(arch)  # no TensorFlow: specs and the zoo import without it
    except EdgetailorError as exc:
        fail(f"--arch: {exc}")
    return arch.strip()


def _check_folder(path: Path | None, flag: str) -> None:
    if path is not None and not path.parent.exists():
        fail(f"{flag}: folder does not exist: {path.parent}")


@click.command("android-bench", cls=Command)
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--parse", "capture", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read a saved benchmark_model capture instead of running on a phone.")
@click.option("--profile-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --parse: the op profile written by --profiling_output_csv_file.")
@click.option("--benchmark-binary", type=click.Path(path_type=Path),
              help="benchmark_model built for the phone (android_aarch64_benchmark_model).")
@click.option("--serial", help="adb serial of the phone; needed when several are attached.")
@click.option("--threads", type=click.IntRange(1, 64), help="Interpreter threads.  [default: 1]")
@click.option("--cpu-mask", help="Hex core mask for taskset, e.g. f0 (big cores; device-specific).")
@click.option("--op-profiling", is_flag=True, help="Also record per-op timings.")
@click.option("--warmup-runs", type=click.IntRange(0), help="Minimum warm-up runs.  [default: 1]")
@click.option("--num-runs", type=click.IntRange(1), help="Minimum timed runs.  [default: 50]")
@click.option("--timeout", "timeout_s", type=click.IntRange(10, 3600),
              help="Seconds allowed for the benchmark itself.  [default: 600]")
@click.option("--arch", help="Architecture of the model (zoo name or spec string), recorded "
              "for profile import.")
@click.option("--device", "device_name", help="With --parse: name of the phone the capture "
              "came from.  [default: unknown]")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the measurement JSON here.")
@click.option("--save-output", type=click.Path(dir_okay=False, path_type=Path),
              help="Keep the raw benchmark_model output here.")
@click.option("--blocks", "blocks_space", help="Instead of MODEL: time every op of random "
              "architectures of this search space (mnasnet, proxyless, fbnet, ofa_mbv3), one "
              "op model at a time, for `edgetailor profile import`.")
@click.option("--archs", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="With --blocks: random architectures whose ops are timed.")
@click.option("--kernels", "kernels_base", help="Instead of MODEL: time the one-kernel models that "
              "`edgetailor profile adapt --base PROFILE` fits this phone's profile from (PROFILE: a profile "
              "with a kernel predictor), into the --out measurements journal (resumes).")
@click.option("--max-kernels", type=click.IntRange(10, 5000), default=300, show_default=True,
              help="With --kernels: kernels to time.")
@click.option("--precision", type=click.Choice(["float32", "int8"]), default="float32", show_default=True,
              help="With --kernels: the kernel models' precision.")
@click.option("--json", "as_json", is_flag=True, help="Print the measurement JSON.")
def android_bench(model: Path | None, capture: Path | None, as_json: bool, out_path: Path | None,
                  arch: str | None, cpu_mask: str | None, **options) -> None:
    """Latency of MODEL on an Android phone via TFLite benchmark_model and adb.

    Run: android-bench MODEL.tflite --benchmark-binary PATH [--serial S] [--threads N]
    [--cpu-mask f0] [--op-profiling].  Parse a saved capture: android-bench --parse OUT.txt.
    """
    blocks_space, archs = options.pop("blocks_space"), options.pop("archs")
    kernels_base, max_kernels, precision = (options.pop(k) for k in ("kernels_base", "max_kernels", "precision"))
    if kernels_base:
        if blocks_space:
            fail("--kernels and --blocks are two modes: give one")
        _kernels(kernels_base, max_kernels, precision, model, capture, out_path, cpu_mask, options)
        return
    if blocks_space:
        _blocks(blocks_space, archs, model, capture, out_path, cpu_mask, as_json, options)
        return
    mode, other = ("parse", _RUN_ONLY) if capture else ("run", _PARSE_ONLY)
    for name in other:
        if options[name] not in (None, False):
            fail(f"{_flag(name)} does nothing "
                  + ("with --parse" if mode == "parse" else "without --parse"))
    _check_folder(out_path, "--out")
    _check_folder(options["save_output"], "--save-output")
    arch = _check_arch(arch)
    mask = check_cpu_mask(cpu_mask) if cpu_mask else None
    if mode == "parse":
        doc = _parse(capture, model, arch, mask, options)
    else:
        doc = _run(model, arch, mask, options)
    if out_path is not None:
        write_json(out_path, doc)
    if as_json:
        emit_json(doc)
    else:
        click.echo(summary(doc))
        if out_path is not None:
            click.echo(f"saved       {out_path}")


def _blocks(space: str, archs: int, model: Path | None, capture: Path | None,
            out_path: Path | None, cpu_mask: str | None, as_json: bool, options: dict) -> None:
    from edgetailor.android_harness.blocks import measure_ops
    from edgetailor.arch import spaces

    config = _generated_run("--blocks", "op models", "measurements file", model, capture, out_path, cpu_mask, options)
    spaces.get(space)
    doc = measure_ops(space, archs, options["benchmark_binary"], config, options["serial"],
                      progress=lambda message: click.echo(f"[android-bench] {message}", err=True))
    write_json(out_path, doc)
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"timed {len(doc['measurements'])} ops on {doc['device']['name']}; "
                   f"saved {out_path} (next: edgetailor profile import {out_path} --name ...)")


def _generated_run(flag: str, what: str, out_what: str, model: Path | None, capture: Path | None,
                   out_path: Path | None, cpu_mask: str | None, options: dict) -> BenchConfig:
    """The checks a mode that times generated models makes before anything runs, and its settings."""
    if model is not None or capture is not None:
        fail(f"{flag} measures generated {what}: drop MODEL and --parse")
    if out_path is None:
        fail(f"{flag} needs --out for the {out_what}")
    if options["benchmark_binary"] is None:
        fail("--benchmark-binary is required to run on a phone")
    _check_folder(out_path, "--out")
    return BenchConfig(threads=options["threads"] or 1, cpu_mask=check_cpu_mask(cpu_mask) if cpu_mask else None,
                       warmup_runs=options["warmup_runs"] or 1, num_runs=options["num_runs"] or 50,
                       timeout_s=options["timeout_s"] or 600)


def _kernels(base_name: str, budget: int, precision: str, model: Path | None, capture: Path | None,
             out_path: Path | None, cpu_mask: str | None, options: dict) -> None:
    from edgetailor.android_harness.blocks import measure_kernels
    from edgetailor.latency import profiles

    config = _generated_run("--kernels", "kernel models", "measurements journal", model, capture, out_path,
                            cpu_mask, options)
    base = profiles.load(base_name)
    if base.kernels is None:
        fail(f"base profile {base.name} has no kernel predictor; build one with "
             "`edgetailor profile measure --kernels`")
    timed = measure_kernels(base.kernels, budget, precision, out_path, options["benchmark_binary"], config,
                            options["serial"], progress=lambda message: click.echo(f"[android-bench] {message}", err=True))
    click.echo(f"timed {timed} kernel models; saved {out_path} (next: edgetailor profile adapt --base "
               f"{base_name} --measurements {out_path} --name ... --out ...)")


def _refuse_binary(path: Path, what: str) -> None:
    """Fail on a binary file with a short printable excerpt, instead of a parse error that quotes
    its bytes. Binary: a NUL in the first 8 KB once a UTF-16 BOM is decoded (git's test), or more
    than a tenth of it unprintable (terminal junk in real captures stays far below)."""
    with path.open("rb") as handle:
        text = decode(handle.read(8192))
    odd = sum(1 for c in text if c == "\ufffd" or not (c.isprintable() or c in "\t\r\n"))
    if "\x00" in text or odd > len(text) / 10:
        start = "".join(c if c.isascii() and c.isprintable() else "." for c in text[:16])
        fail(f"{path.name} is a binary file, not {what} (it starts {start!r})")


def _parse(capture: Path, model: Path | None, arch: str | None, mask: str | None,
           options: dict) -> dict:
    _refuse_binary(capture, "a benchmark_model capture")
    result = parse_file(capture)
    if options["profile_csv"] is not None:
        if result.run_profile is not None:
            fail("the capture already holds an op profile; drop --profile-csv")
        path = options["profile_csv"]
        _refuse_binary(path, "an op-profile CSV")
        profiles = parse_profile(decode(path.read_bytes()), path.name)
        if "run" not in profiles:
            fail(f"{path.name}: no 'Operator-wise Profiling Info for Regular Benchmark Runs'")
        result = replace(result, run_profile=profiles["run"])
    name = model.name if model else Path(result.graph).name if result.graph else "unknown"
    device = Device(options["device_name"] or "unknown")
    return to_measurements(result, model=name, device=device, arch=arch, cpu_mask=mask)


def _run(model: Path | None, arch: str | None, mask: str | None, options: dict) -> dict:
    if model is None:
        fail("give MODEL.tflite to measure on a phone, or --parse CAPTURE.txt")
    if options["benchmark_binary"] is None:
        fail("--benchmark-binary is required to run on a phone (android_aarch64_benchmark_model"
              " from the TFLite nightly builds)")
    _refuse_non_tflite(model)
    warmup_runs = options["warmup_runs"]
    config = BenchConfig(threads=options["threads"] or 1, cpu_mask=mask,
                         op_profiling=options["op_profiling"],
                         warmup_runs=1 if warmup_runs is None else warmup_runs,
                         num_runs=options["num_runs"] or 50, timeout_s=options["timeout_s"] or 600)
    run = measure(model, options["benchmark_binary"], config, options["serial"],
                  progress=lambda message: click.echo(f"[android-bench] {message}", err=True))
    if options["save_output"] is not None:
        write_text(options["save_output"], run.output)  # kept even when parsing fails
    result = run.parse()
    return to_measurements(result, model=model.name, device=run.device, arch=arch,
                           threads=config.threads, cpu_mask=mask)


def _refuse_non_tflite(model: Path) -> None:
    """A saved Keras model (a .keras zip or an .h5) fails here in one line, not on the phone after
    adb pushed it. Recognised by the zip and HDF5 signatures, the formats `edgetailor build` writes."""
    if model.is_file():
        with model.open("rb") as handle:
            head = handle.read(8)
        if head.startswith((b"PK\x03\x04", b"\x89HDF\r\n\x1a\n")):
            fail(f"{model} is a Keras model, not TFLite; convert it first: "
                 f"edgetailor convert {model} --out {model.with_suffix('.tflite').name}")


def _fmt(value: float | None, unit: str = " ms", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def summary(doc: dict, top: int = 5) -> str:
    """A few human-readable lines about a measurement document."""
    m, device, runtime = doc["measurements"][0], doc["device"], doc["runtime"]
    where = device["name"] + (f" ({device['os']})" if device.get("os") else "")
    if device.get("serial"):
        where += f", serial {device['serial']}"
    threads = runtime.get("threads")
    how = [f"tflite {runtime.get('delegate') or 'delegate unknown'}",
           f"{threads} thread{'s' if threads != 1 else ''}" if threads else "threads unknown"]
    if runtime.get("cpu_mask"):
        how.append(f"cpu mask {runtime['cpu_mask']}")
    lines = [f"model       {m['model']}" + (f"  (arch {m['arch']})" if m.get("arch") else ""),
             f"device      {where}", f"runtime     {', '.join(how)}"]
    spread = ""
    if "count" in m:
        spread = (f"  (std {_fmt(m.get('std_ms'), '')}, min {_fmt(m.get('min_ms'), '')}, "
                  f"max {_fmt(m.get('max_ms'), '')}, {m['count']} runs)")
    lines.append(f"latency     {_fmt(m['latency_ms'])}{spread}")
    lines.append(f"startup     init {_fmt(m.get('init_ms'))}, first run {_fmt(m.get('first_ms'))}"
                 f", warm-up avg {_fmt(m.get('warmup_ms'))}")
    if "memory_mb" in m:
        lines.append(f"memory      {_fmt(m['memory_mb'], ' MB', 1)}")
    ops = m.get("ops")
    if ops:
        lines.append(f"ops         {len(ops)} profiled; slowest:")
        slowest = sorted(ops, key=lambda op: op["avg_ms"] or 0.0, reverse=True)[:top]
        for op in slowest:
            lines.append(f"  {op['type'][:28]:28} {_fmt(op['avg_ms'], ' ms', 3):>10} "
                         f"{_fmt(op['percent'], '%', 1):>7}  {op['name'][:60]}")
    return "\n".join(lines)
