"""Per-op measurement on a phone, the same decomposition the host measurement uses.

The ops of random architectures of a search space are written as one-op TFLite models
(``edgetailor.profiling.tflite_ops``), pushed one at a time and timed with ``benchmark_model``;
the result is a measurements file whose rows name their op key, which ``edgetailor profile
import`` turns into a profile (measured ops as its table, coefficients fitted on them).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from edgetailor.android_harness.adb import (PUSH_S, REMOTE_BINARY, REMOTE_DIR, BenchConfig,
                                            benchmark_command, connect)
from edgetailor.android_harness.errors import HarnessError
from edgetailor.android_harness.parser import parse


def measure_ops(space: str, archs: int, binary: Path, config: BenchConfig, serial: str | None = None,
                seed: int = 0, progress: Callable[[str], None] | None = None) -> dict:
    """Time every distinct op of ``archs`` random architectures of ``space`` on the phone."""
    from edgetailor.profiling.tflite_ops import op_model
    from edgetailor.profiling.host import collect_ops
    from edgetailor.latency.cost import op_key

    say = progress or (lambda message: None)
    if not Path(binary).is_file():
        raise HarnessError(f"benchmark binary not found: {binary}")
    ops = collect_ops(space, archs, seed)
    phone = connect(serial)
    device = phone.device()
    say(f"{device.name} ({device.os or 'Android ?'}): {len(ops)} ops of the {space} space")
    rows = []
    remote = f"{REMOTE_DIR}/edgetailor_op.tflite"
    try:
        phone.run("push", str(binary), REMOTE_BINARY, timeout_s=PUSH_S)
        phone.shell("chmod", "+x", REMOTE_BINARY)
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / "edgetailor_op.tflite"
            for index, op in enumerate(ops):
                local.write_bytes(op_model(op))
                phone.run("push", str(local), remote, timeout_s=PUSH_S)
                done = phone.run("shell", *benchmark_command(remote, config),
                                 timeout_s=config.timeout_s, check=False)
                result = parse(done.stdout, source=f"benchmark_model output for op {index}")
                rows.append({"model": f"op{index:04d}.tflite", "arch": None, "op": op_key(op),
                             "latency_ms": round(result.inference_avg_us / 1000, 5)})
                if (index + 1) % 25 == 0:
                    say(f"{index + 1}/{len(ops)} ops timed")
    finally:
        try:
            phone.shell("rm", "-f", REMOTE_BINARY, remote, check=False)
        except HarnessError:
            pass
    return {"schema": "edgetailor.measurements/1", "source": "android-bench",
            "device": {"name": device.name, "serial": phone.serial, "os": device.os},
            "runtime": {"name": "tflite", "version": None, "threads": config.threads,
                        "delegate": None, "cpu_mask": config.cpu_mask},
            "measurements": rows}
