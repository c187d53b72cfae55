"""No import cycles among the project's modules (organseglib, cudaaugment, the Slicer module and
OrganSegCommon), counting imports inside functions too: a lazy import only hides a cycle. Read from
the source (no module is imported), so it runs without torch, CuPy or Slicer."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"organseglib": REPO / "OrganSegLib", "cudaaugment": REPO / "CUDAAugment", "OrganSegCommon": REPO / "OrganSeg"}


def _modules() -> dict:
    mods = {}
    for package, base in PACKAGES.items():
        for path in (base / package).rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    mods["OrganSeg"] = REPO / "OrganSeg" / "OrganSeg.py"
    return mods


def _imported(module: str, path: Path, node: ast.AST) -> list:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix] + [f"{prefix}.{a.name}" for a in node.names]


def import_graph() -> dict:
    """``{module: modules of the project it imports}``, without the imports of a module's own parent
    packages (importing ``a.b`` runs ``a/__init__`` first: that is no cycle of ours)."""
    mods = _modules()
    graph = {}
    for module, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps |= {name for name in _imported(module, path, node)
                         if name in mods and name != module and not module.startswith(name + ".")}
        graph[module] = deps
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_lazy_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = import_graph()
    assert {"OrganSeg", "OrganSegCommon.selftest", "cudaaugment.pipeline", "cudaaugment.backend_cupy",
            "organseglib.progress"} <= set(graph)
    assert cycles(graph) == []
