"""Per-op and per-kernel measurement on a phone, the same decompositions the host uses.

``measure_ops``: the ops of random architectures of a search space as one-op TFLite models
(``edgetailor.profiling.tflite_ops``), pushed one at a time and timed with ``benchmark_model``;
the result is a measurements file whose rows name their op key, which ``edgetailor profile
import`` turns into a profile (measured ops as its table, coefficients fitted on them).
``measure_kernels``: the few one-kernel models ``edgetailor profile adapt`` fits a phone's
profile from, into its measurements journal.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from edgetailor.android_harness.adb import (PUSH_S, REMOTE_BINARY, REMOTE_DIR, BenchConfig,
                                            benchmark_command, connect)
from edgetailor.android_harness.errors import HarnessError
from edgetailor.android_harness.parser import parse


def time_models(models: list[tuple[str, Callable[[], bytes]]], binary: Path, config: BenchConfig,
                serial: str | None, record: Callable[[str, float], None],
                say: Callable[[str], None], what: str = "models") -> tuple:
    """Push ``benchmark_model`` and time each model (built by its function when its turn comes),
    one at a time: ``record(key, average ms)`` after each. Returns the phone (``adb.Adb``) and
    its ``Device``. The phone is cleaned up whatever happens."""
    if not Path(binary).is_file():
        raise HarnessError(f"benchmark binary not found: {binary}")
    phone = connect(serial)
    device = phone.device()
    say(f"{device.name} ({device.os or 'Android ?'}): {len(models)} {what} to time")
    remote = f"{REMOTE_DIR}/edgetailor_op.tflite"
    try:
        phone.run("push", str(binary), REMOTE_BINARY, timeout_s=PUSH_S)
        phone.shell("chmod", "+x", REMOTE_BINARY)
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / "edgetailor_op.tflite"
            for index, (key, build) in enumerate(models):
                local.write_bytes(build())
                phone.run("push", str(local), remote, timeout_s=PUSH_S)
                done = phone.run("shell", *benchmark_command(remote, config),
                                 timeout_s=config.timeout_s, check=False)
                result = parse(done.stdout, source=f"benchmark_model output for {key}")
                record(key, result.inference_avg_us / 1000)
                if (index + 1) % 25 == 0:
                    say(f"{index + 1}/{len(models)} {what} timed")
    finally:
        try:
            phone.shell("rm", "-f", REMOTE_BINARY, remote, check=False)
        except HarnessError:
            pass
    return phone, device


def measure_ops(space: str, archs: int, binary: Path, config: BenchConfig, serial: str | None = None,
                seed: int = 0, progress: Callable[[str], None] | None = None) -> dict:
    """Time every distinct op of ``archs`` random architectures of ``space`` on the phone."""
    from edgetailor.profiling.tflite_ops import op_model
    from edgetailor.profiling.host import collect_ops
    from edgetailor.latency.cost import op_key

    if not Path(binary).is_file():
        raise HarnessError(f"benchmark binary not found: {binary}")
    ops = collect_ops(space, archs, seed)
    rows = []

    def record(key: str, ms: float) -> None:
        rows.append({"model": f"op{len(rows):04d}.tflite", "arch": None, "op": key, "latency_ms": round(ms, 5)})

    phone, device = time_models([(op_key(op), lambda op=op: op_model(op)) for op in ops], binary, config, serial,
                                record, progress or (lambda message: None), f"ops of the {space} space")
    return {"schema": "edgetailor.measurements/1", "source": "android-bench",
            "device": {"name": device.name, "serial": phone.serial, "os": device.os},
            "runtime": {"name": "tflite", "version": None, "threads": config.threads,
                        "delegate": None, "cpu_mask": config.cpu_mask},
            "measurements": rows}


def measure_kernels(base, budget: int, precision: str, journal: Path, binary: Path, config: BenchConfig,
                    serial: str | None = None, seed: int = 0, progress: Callable[[str], None] | None = None) -> int:
    """Time on the phone the kernels ``profile adapt`` needs to fit a profile for it from
    ``base`` (a ``KernelPredictor``): at most ``budget`` chosen as ``adapt_measure.choose`` does,
    the empty model and (int8) the input conversion, each one-kernel model in ``precision``,
    appended to ``journal`` in its format (average ms of ``benchmark_model``'s runs, where the
    host keeps a best-of). Kernels already in ``journal`` are not timed again. Returns how many
    were timed."""
    from edgetailor.profiling import adapt_measure
    from edgetailor.profiling.timing_journal import append, line

    models = adapt_measure.pending(adapt_measure.choose(base, budget, seed), journal, config.threads, precision,
                                   progress)
    extra = {key: fields for key, _, fields in models}

    def record(key: str, ms: float) -> None:
        append(journal, [line(key, ms, config.threads, precision, **extra.get(key, {}))])

    if models:
        time_models([(key, build) for key, build, _ in models], binary, config, serial, record,
                    progress or (lambda message: None), "kernel models")
    return len(models)
