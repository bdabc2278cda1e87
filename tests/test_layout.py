"""The package's rooms: the import graph (from the code's own imports) has no cycles, and each
room imports only the rooms below it (README "Layout")."""
import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import edgetailor

# room -> the rooms it may import (besides itself, ``errors`` and ``_io``, which every room may)
ALLOWED = {
    "arch": set(),
    "latency": {"arch"},
    "choose": {"arch", "latency"},
    "builder": {"arch"},
    "converters": {"builder"},
    "profiling": {"arch", "latency", "builder", "converters"},
    "data": set(),
    "bundle": {"arch", "latency", "choose", "converters"},
    "tasks": {"arch", "latency", "choose", "builder", "converters", "data", "bundle",
              "profiling"},  # mixed precision times each layer on the host (profiling.precision_timing)
    "supernet": {"arch", "latency", "choose", "builder", "data", "tasks"},
    "specialize": {"tasks", "choose", "latency", "supernet", "bundle"},
    "android_harness": {"arch", "latency", "profiling"},
    "ios_harness": set(),
    "device_profiles": set(),
    "cli": {"arch", "latency", "choose", "builder", "converters", "profiling", "data", "bundle", "tasks",
            "specialize", "android_harness", "supernet"},
}
PURE = ("arch", "latency", "choose")  # never TensorFlow or coremltools at import
SHARED = {"errors", "_io", "__init__", "__main__"}


def _modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name, with its source file."""
    found = {"edgetailor": Path(edgetailor.__file__)}
    for info in pkgutil.walk_packages(edgetailor.__path__, "edgetailor."):
        spec = importlib.util.find_spec(info.name)
        found[info.name] = Path(spec.origin)
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The edgetailor modules ``name`` imports anywhere in its source (lazy imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{base}" if base else parent
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        out |= {t for t in targets if t.startswith("edgetailor") and t in known and t != name}
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_the_import_graph_has_no_cycles(graph):
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_each_room_imports_only_the_rooms_below_it(graph):
    wrong = []
    for module, imported in graph.items():
        room = _room(module)
        if room in SHARED:
            continue
        for target in imported:
            other = _room(target)
            if other != room and other not in SHARED and other not in ALLOWED[room]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_sdk_top_level_holds_rooms_not_loose_modules(graph):
    loose = sorted({m.split(".")[1] for m in graph if m.count(".") == 1 and _room(m) not in ALLOWED})
    assert set(loose) <= SHARED | {"specialize"}, loose


def test_pure_rooms_import_without_tensorflow():
    modules = sorted(m for m in _modules() if _room(m) in PURE)
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
            "print([m for m in ('tensorflow', 'coremltools') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_modules_that_moved_still_import_from_their_old_names():
    from edgetailor import layers, scaling, zoo
    from edgetailor.spec import decode

    assert zoo.resolve("mobilenet_v2_100").spec == decode(zoo.resolve("mobilenet_v2_100").spec.encode())
    assert layers.count is importlib.import_module("edgetailor.arch.layers").count
    assert scaling is importlib.import_module("edgetailor.arch.scaling")
    assert importlib.import_module("edgetailor.profiles") is importlib.import_module("edgetailor.latency.profiles")
