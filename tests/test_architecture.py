"""The house rules of docs/ARCHITECTURE.md, read from the source: no import cycles among
edgedigits modules (function-level imports included), and the edge side never imports
TensorFlow or Keras (an edge device installs numpy, onnxruntime and OpenCV only)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edgedigits"
# the modules an edge install runs: they may import only these third-party packages
EDGE = {
    "edgedigits",
    "edgedigits.contract",
    "edgedigits.errors",
    "edgedigits.runtime",
    "edgedigits.formats",
    "edgedigits.metadata",
    "edgedigits.quiet",
    "edgedigits.atomic",
    "edgedigits.assets",
    "edgedigits.camera",
    "edgedigits.camera.ink",
    "edgedigits.camera.blobs",
    "edgedigits.camera.rules",
    "edgedigits.camera.text",
    "edgedigits.camera.segment",
    "edgedigits.camera.split",
    "edgedigits.camera.read",
    "edgedigits.camera.loop",
    "edgedigits.camera.sources",
    "edgedigits.camera.synth",
    "edgedigits.camera.synth_pages",
}
# the one door from the edge side to TensorFlow: the runtime hands a .keras file, when one
# is asked for, to keras_io (a function-level import; an edge install never takes it)
TF_DOORS = {("edgedigits.runtime", "edgedigits.keras_io")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module this file imports, at any depth (function bodies included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _internal(name: str) -> set[str]:
    return {m for m in MODULES[name] if m in MODULES and m != name}


def test_no_import_cycles():
    """Depth-first search over edgedigits -> edgedigits imports; a package's __init__ is
    not counted as imported by its submodules (Python runs it first either way)."""
    graph = {name: {m for m in _internal(name) if not name.startswith(m + ".")} for name in MODULES}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


@pytest.mark.parametrize("name", sorted(EDGE))
def test_edge_modules_import_no_tensorflow(name):
    """Edge modules import only edge modules and numpy/OpenCV/onnxruntime/LiteRT."""
    assert name in MODULES, f"{name} is listed as an edge module but does not exist"
    for imported in MODULES[name]:
        top = imported.split(".")[0]
        if top == "edgedigits":
            if imported in MODULES and (name, imported) not in TF_DOORS:  # a module, not a name
                assert imported in EDGE, f"edge module {name} imports {imported} (TensorFlow side)"
        else:
            assert top not in {"tensorflow", "keras", "tf2onnx", "onnx"}, f"{name} imports {imported}"
