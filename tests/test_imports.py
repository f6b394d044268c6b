"""The import graph: models <- inference <- app, no cycles between files or packages.

Every module of ``bayesdepth/`` and ``inference/`` (shipped as ``bayesdepth.inference``) is parsed
with ``ast``; every import, also inside functions, is an edge. The core never imports
``bayesdepth.inference`` or ``bayesdepth.app``; ``bayesdepth.inference`` never imports the app and
uses only the core's public API (``bayesdepth`` and the submodules it exports) plus the one shared
helper module ``bayesdepth._validation``.
"""

import ast
from pathlib import Path

import pytest

import bayesdepth

ROOT = Path(__file__).parents[1]
SHARED_HELPER = "bayesdepth._validation"


def _modules() -> dict[str, Path]:
    found = {}
    for top, prefix in ((ROOT / "bayesdepth", "bayesdepth"), (ROOT / "inference",
                                                               "bayesdepth.inference")):
        for path in top.rglob("*.py"):
            parts = list(path.relative_to(top).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _package_of(name: str) -> str:
    return name if _is_package(name) else name.rpartition(".")[0]


def _known(name: str) -> str | None:
    """The project module ``name`` refers to (or its longest project prefix)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(name: str) -> set[str]:
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(filter(None, (_known(a.name) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(name)
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            for alias in node.names:
                target = _known(f"{base}.{alias.name}") or _known(base)
                if target:
                    targets.add(target)
    targets.discard(name)
    return targets


GRAPH = {name: _imports(name) for name in MODULES}


def _floor(name: str) -> str:
    if name == "bayesdepth.app" or name.startswith("bayesdepth.app."):
        return "app"
    if name == "bayesdepth.inference" or name.startswith("bayesdepth.inference."):
        return "inference"
    return "core"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    assert "bayesdepth.inference.runner" in MODULES and "bayesdepth.app.cli" in MODULES
    assert "bayesdepth.inference.potentials" in GRAPH["bayesdepth.inference.runner"]
    assert "bayesdepth._validation" in GRAPH["bayesdepth.sde.block"]


def test_no_arrow_points_up_a_floor():
    rank = {"core": 0, "inference": 1, "app": 2}
    upward = [(a, b) for a, targets in GRAPH.items() for b in targets
              if rank[_floor(b)] > rank[_floor(a)]]
    assert upward == []


def test_inference_uses_only_the_public_core():
    public = {"bayesdepth", SHARED_HELPER} | {
        f"bayesdepth.{name}" for name in bayesdepth.__all__ if f"bayesdepth.{name}" in MODULES
    }
    bad = sorted((a, b) for a, targets in GRAPH.items() if _floor(a) == "inference"
                 for b in targets if _floor(b) == "core" and b not in public)
    assert bad == []


def test_no_cycle_between_files():
    assert _cycles(GRAPH) == []


def test_no_cycle_between_packages():
    """A package's ``__init__`` re-exporting its own subpackages is not a dependency."""
    packages: dict[str, set[str]] = {}
    for a, targets in GRAPH.items():
        pa = _package_of(a)
        for b in targets:
            pb = _package_of(b)
            if pb == pa or (_is_package(a) and pb.startswith(a + ".")):
                continue
            packages.setdefault(pa, set()).add(pb)
    assert _cycles(packages) == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _floor(n) != "app"))
def test_library_modules_never_switch_the_matplotlib_backend(name):
    assert "matplotlib.use(" not in MODULES[name].read_text()
