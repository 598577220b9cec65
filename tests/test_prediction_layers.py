"""Import layering: no module-level import cycle, aerogan.prediction takes only the band catalogs from datamodules,
and the datamodules' imports of aerogan (to be moved downward, issue 18) do not grow."""

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


#: What aerogan.prediction may import from datamodules: the multi-resolution band catalog and its summaries.
PREDICTION_FROM_DATAMODULES = {"datamodules", "datamodules.band_catalog", "datamodules.band_summary"}
#: The datamodules' remaining module-level imports of aerogan (scene readers, prediction plans, the degradation
#: operator, atomic files). Imports should point aerogan -> datamodules: this list may shrink, never grow.
DATAMODULES_FROM_AEROGAN = {
    "datamodules.arrays": {"aerogan.prediction.plan", "aerogan.prediction.sources"},
    "datamodules.band_catalog": {"aerogan.prediction.sources"},
    "datamodules.degradation": {"aerogan.degradation"},
    "datamodules.geotiff": {"aerogan.prediction.plan", "aerogan.prediction.sources"},
    "datamodules.scenes": {"aerogan.prediction.overlap", "aerogan.prediction.plan", "aerogan.prediction.sources",
                           "aerogan.prediction.tiles", "aerogan.prediction.writer"},
    "datamodules.sources": {"aerogan.atomic", "aerogan.prediction.sources"},
    "datamodules.wald": {"aerogan.degradation"},
}


def test_prediction_imports_only_the_band_catalogs_from_datamodules() -> None:
    graph = _graph()
    offenders = {m: sorted(d for d in deps if d.split(".")[0] == "datamodules" and d not in PREDICTION_FROM_DATAMODULES)
                 for m, deps in graph.items() if m.startswith("aerogan.prediction")}
    assert not any(offenders.values()), offenders
    assert "datamodules.band_catalog" in graph["aerogan.prediction.product"]


def test_datamodules_import_no_more_of_aerogan() -> None:
    graph = _graph()
    packages = {"aerogan", "aerogan.prediction"}  # parents run on the way to a module: no edge of their own
    found = {m: {d for d in deps if d.split(".")[0] == "aerogan" and d not in packages}
             for m, deps in graph.items() if m.split(".")[0] == "datamodules"}
    found = {m: deps for m, deps in found.items() if deps}
    new = {m: sorted(deps - DATAMODULES_FROM_AEROGAN.get(m, set())) for m, deps in found.items()}
    assert not any(new.values()), f"new imports of aerogan in datamodules (point them the other way): {new}"
    for clean in ("multires", "contract", "band_summary"):
        assert f"datamodules.{clean}" not in found, clean


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
