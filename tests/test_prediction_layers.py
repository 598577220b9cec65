"""Import layering: datamodules -> aerogan.prediction, never back, and no module-level import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("aerogan", "datamodules", "callbacks")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in (REPO / pkg).rglob("*.py"):
            parts = list(f.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def _graph() -> dict[str, set[str]]:
    """Module -> project modules it runs on import (top-level imports; a parent package being set up is no edge)."""
    mods = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets: set[str] = set()
        for node in ast.parse(path.read_text()).body:  # module level only: imports inside functions are deferred
            if isinstance(node, ast.Import):
                targets |= {resolve(a.name) for a in node.names} - {None}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {resolve(node.module)} | {resolve(f"{node.module}.{a.name}") for a in node.names}
                targets.discard(None)
        edges = set()
        for t in targets - {name}:
            edges.add(t)
            parts = t.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if parent in mods and parent != name and not (name + ".").startswith(parent + "."):
                    edges.add(parent)
        graph[name] = edges
    return graph


def test_prediction_never_imports_datamodules() -> None:
    graph = _graph()
    offenders = {m: sorted(d for d in deps if d.split(".")[0] == "datamodules")
                 for m, deps in graph.items() if m.startswith("aerogan.prediction")}
    assert not any(offenders.values()), offenders
    assert "aerogan.prediction.tiles" in graph["datamodules.scenes"]  # the dependency points one way


def test_no_module_level_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(d):] + [d])}")
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
