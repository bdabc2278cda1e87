"""The Swift package cannot build on Linux (no Core ML): check its text, and that it writes the
schema the Python ingest reads."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgetailor.ios_harness import ingest

@pytest.fixture
def package(repo_root) -> Path:
    """The Swift package's folder in the checkout (it is not Python package data)."""
    return repo_root / "ios_harness"


@pytest.fixture
def swift_text(package) -> str:
    return "\n".join(p.read_text() for p in sorted((package / "Sources").rglob("*.swift")))


def test_package_declares_the_tool_and_the_library(package):
    manifest = (package / "Package.swift").read_text()
    version = re.match(r"// swift-tools-version:\s*(\d+)\.(\d+)", manifest)
    assert version and (int(version[1]), int(version[2])) >= (5, 7)
    assert ".macOS(.v12)" in manifest and ".iOS(.v15)" in manifest
    assert '.executable(name: "edgetailor-coreml-bench", targets: ["edgetailor-coreml-bench"])' in manifest
    assert '.library(name: "EdgetailorBench", targets: ["EdgetailorBench"])' in manifest
    assert '.executableTarget(name: "edgetailor-coreml-bench", dependencies: ["EdgetailorBench"])' in manifest


@pytest.mark.parametrize("relative", [
    "Sources/edgetailor-coreml-bench/main.swift",
    "Sources/EdgetailorBench/Benchmark.swift",
    "Sources/EdgetailorBench/Configuration.swift",
    "Sources/EdgetailorBench/Inputs.swift",
    "Sources/EdgetailorBench/Report.swift",
    "Tests/EdgetailorBenchTests/EdgetailorBenchTests.swift",
    "README.md",
])
def test_sources_exist(package, relative):
    assert (package / relative).is_file()


def test_swift_writes_what_the_ingest_reads(swift_text):
    text = swift_text
    assert f'"{ingest.SCHEMA}"' in text
    for key in ("compute_units", "latency_ms", "load_ms", "coremltools_note"):
        assert f'"{key}"' in text, key
    for name in ("model", "warmup", "runs", "error", "mean", "median", "min", "max", "std", "os"):
        assert re.search(rf"\blet {name}\b", text), name
    cases = re.search(r"enum ComputeUnit\b.*?\{(.*?)public var", text, re.S)[1]
    assert re.findall(r"case (\w+)", cases) == list(ingest.COMPUTE_UNITS)
    extensions = re.search(r"modelExtensions: Set<String> = \[(.*?)\]", text)[1]
    assert {f".{e}" for e in re.findall(r'"(\w+)"', extensions)} == set(ingest.MODEL_SUFFIXES)


def test_swift_times_with_core_ml_and_a_monotonic_clock(swift_text):
    text = swift_text
    for needle in ("MLModel.compileModel(at:", "MLModel(contentsOf:", "DispatchTime.now().uptimeNanoseconds",
                   "CVPixelBufferCreate", "MLMultiArray(dataPointer:", "sysctlbyname",
                   "operatingSystemVersionString"):
        assert needle in text, needle


def test_ingest_imports_without_tensorflow_or_coremltools():
    code = ("import sys, edgetailor.ios_harness.ingest; "
            "print([m for m in ('tensorflow', 'coremltools', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
