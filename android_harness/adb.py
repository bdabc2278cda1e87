"""Run TFLite ``benchmark_model`` on an Android phone over adb.

Sequence (conventions §1, "Running on Android"): ``adb devices``, read the model name and
Android release with ``getprop``, push the binary and the model to ``/data/local/tmp``,
``chmod +x``, run ``[taskset MASK] benchmark_model --graph=... --num_threads=N
--warmup_runs=W --num_runs=R [--enable_op_profiling=true]`` capturing stdout and stderr
together, then remove both pushed files. Every adb call has a timeout; nothing goes
through a local shell.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import AdbError, HarnessError
from .measurements import Device
from .parser import parse
from .results import BenchmarkResult

REMOTE_DIR = "/data/local/tmp"
REMOTE_BINARY = f"{REMOTE_DIR}/benchmark_model"
BINARY_HINT = ("download one for the phone's ABI, e.g. https://storage.googleapis.com/"
               "tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/"
               "android_aarch64_benchmark_model")
QUICK_S = 30  # devices, getprop, chmod, rm
PUSH_S = 300  # large models over USB 2
_MASK = re.compile(r"^(0x)?[0-9a-fA-F]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


@dataclass(frozen=True)
class BenchConfig:
    """What to run: threads, optional taskset mask (hex, device-specific), run counts."""

    threads: int = 1
    cpu_mask: str | None = None
    op_profiling: bool = False
    warmup_runs: int = 1
    num_runs: int = 50
    timeout_s: float = 600.0  # the benchmark itself (max_secs defaults to 150 per phase)


@dataclass(frozen=True)
class PhoneRun:
    """The raw capture of one run, before parsing."""

    device: Device
    command: tuple[str, ...]  # what ran on the phone
    output: str  # stdout and stderr, merged
    exit_status: int

    def parse(self) -> BenchmarkResult:
        return parse(self.output, source="benchmark_model output")


def check_cpu_mask(mask: str) -> str:
    """The mask as taskset takes it (hex without 0x); raises on anything else."""
    if not _MASK.match(mask) or int(mask, 16) == 0:
        raise HarnessError(f"--cpu-mask must be a non-zero hex core mask such as f0, not {mask!r}")
    return mask[2:] if mask.lower().startswith("0x") else mask


def find_adb() -> str:
    path = shutil.which("adb")
    if path is None:
        raise AdbError("adb not found on PATH; install Android SDK platform-tools")
    return path


def parse_devices(text: str) -> list[tuple[str, str]]:
    """(serial, state) pairs from ``adb devices`` output."""
    devices = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("*") or line.startswith("List of devices"):
            continue
        parts = line.split(None, 1)
        devices.append((parts[0], parts[1].strip() if len(parts) > 1 else "unknown"))
    return devices


def select_device(devices: list[tuple[str, str]], serial: str | None) -> str:
    """The serial to use; clear errors for none, several, unauthorized or offline."""
    def unusable(name: str, state: str) -> AdbError:
        if state == "unauthorized":
            return AdbError(f"device {name} is unauthorized: unlock the phone and accept the "
                            "USB debugging prompt")
        if state.startswith("no permissions"):
            return AdbError(f"no permission to use device {name}: check your udev rules")
        return AdbError(f"device {name} is {state}, not ready; reconnect it (adb reconnect)")

    if serial is not None:
        state = dict(devices).get(serial)
        if state is None:
            attached = ", ".join(s for s, _ in devices) or "none"
            raise AdbError(f"device {serial} is not attached (attached: {attached})")
        if state != "device":
            raise unusable(serial, state)
        return serial
    ready = [s for s, state in devices if state == "device"]
    if len(ready) > 1:
        raise AdbError(f"several devices attached ({', '.join(ready)}); choose one with --serial")
    if ready:
        return ready[0]
    if devices:
        raise unusable(*devices[0])
    raise AdbError("no Android device attached; connect a phone with USB debugging on")


class Adb:
    """adb bound to one device."""

    def __init__(self, adb: str, serial: str):
        self.adb, self.serial = adb, serial

    def run(self, *args: str, timeout_s: float = QUICK_S, check: bool = True
            ) -> subprocess.CompletedProcess:
        return _run([self.adb, "-s", self.serial, *args], timeout_s, check)

    def shell(self, *args: str, timeout_s: float = QUICK_S, check: bool = True) -> str:
        return self.run("shell", *args, timeout_s=timeout_s, check=check).stdout

    def device(self) -> Device:
        model = self.shell("getprop", "ro.product.model").strip()
        release = self.shell("getprop", "ro.build.version.release").strip()
        return Device(model or self.serial, self.serial, f"Android {release}" if release else None)


def _run(argv: list[str], timeout_s: float, check: bool) -> subprocess.CompletedProcess:
    what = " ".join(argv[3:] if argv[1:2] == ["-s"] else argv[1:])
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, errors="replace",
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise AdbError(f"adb {what} timed out after {timeout_s:g} s") from None
    except OSError as exc:
        raise AdbError(f"cannot run adb: {exc.strerror or exc}") from None
    if check and done.returncode != 0:
        last = next((ln.strip() for ln in reversed(done.stdout.splitlines()) if ln.strip()),
                    f"exit status {done.returncode}")
        raise AdbError(f"adb {what} failed: {last}")
    return done


def connect(serial: str | None = None) -> Adb:
    """adb on PATH and the one usable device (``serial`` picks among several)."""
    adb = find_adb()
    listing = _run([adb, "devices"], QUICK_S, check=True).stdout
    return Adb(adb, select_device(parse_devices(listing), serial))


def remote_model_path(model: Path) -> str:
    return f"{REMOTE_DIR}/{_UNSAFE.sub('_', model.name)}"


def benchmark_command(remote_model: str, config: BenchConfig) -> tuple[str, ...]:
    command = [REMOTE_BINARY, f"--graph={remote_model}", f"--num_threads={config.threads}",
               f"--warmup_runs={config.warmup_runs}", f"--num_runs={config.num_runs}"]
    if config.op_profiling:
        command.append("--enable_op_profiling=true")
    if config.cpu_mask:
        command[:0] = ["taskset", check_cpu_mask(config.cpu_mask)]
    return tuple(command)


def measure(model: str | Path, binary: str | Path, config: BenchConfig = BenchConfig(),
            serial: str | None = None, progress: Callable[[str], None] | None = None
            ) -> PhoneRun:
    """Push, run and clean up; returns the raw capture (``.parse()`` reads it).

    ``progress`` gets a short line before each slow step (the CLI prints them to stderr).
    """
    say = progress or (lambda message: None)
    model, binary = Path(model), Path(binary)
    if not binary.is_file():
        raise HarnessError(f"benchmark binary not found: {binary} ({BINARY_HINT})")
    if not model.is_file():
        raise HarnessError(f"model not found: {model}")
    remote_model = remote_model_path(model)
    command = benchmark_command(remote_model, config)  # validates the mask before adb runs
    phone = connect(serial)
    device = phone.device()
    say(f"{device.name} ({device.os or 'Android ?'}), serial {phone.serial}")
    try:
        say(f"pushing {binary.name} and {model.name} to {REMOTE_DIR}")
        phone.run("push", str(binary), REMOTE_BINARY, timeout_s=PUSH_S)
        phone.shell("chmod", "+x", REMOTE_BINARY)
        phone.run("push", str(model), remote_model, timeout_s=PUSH_S)
        say(f"running benchmark_model, {config.threads} thread(s)"
            + (f", cpu mask {config.cpu_mask}" if config.cpu_mask else "")
            + f" (allowing up to {config.timeout_s:g} s)")
        done = phone.run("shell", *command, timeout_s=config.timeout_s, check=False)
    finally:
        try:  # best effort: a failed clean-up must not hide the real outcome
            phone.shell("rm", "-f", REMOTE_BINARY, remote_model, check=False)
        except AdbError:
            pass
    return PhoneRun(device, command, done.stdout, done.returncode)


def benchmark(model: str | Path, binary: str | Path, config: BenchConfig = BenchConfig(),
              serial: str | None = None, progress: Callable[[str], None] | None = None
              ) -> tuple[Device, BenchmarkResult]:
    """Run on the phone and parse; raises CaptureError when the output has no result."""
    run = measure(model, binary, config, serial, progress)
    return run.device, run.parse()
