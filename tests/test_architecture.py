"""The layering the README promises: imports point downward, no module imports in a cycle.

Layers, top to bottom: ``aerogan.cli`` (and the tools it starts) → ``aerogan`` (modules, nets, losses, report,
bench) → ``datamodules`` → ``aerogan.prediction`` / ``aerogan.atomic``; ``callbacks`` stand beside them and never
reach into the model package. Imports are read with ``ast`` (lazy imports inside functions count too; imports
under ``if TYPE_CHECKING:`` do not, since they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aerogan", "callbacks", "datamodules")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules imported by one file (resolved to the deepest known module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    is_package = path.name == "__init__.py"

    def resolve(target: str) -> None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                resolve(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                full = f"{module}.{alias.name}"
                resolve(full if full in known else module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(path, name, known) for name, path in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (iterative DFS with colours)."""
    colour = dict.fromkeys(graph, 0)
    for start in sorted(graph):
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
                continue
            if colour.get(child, 2) == 1:
                return path[path.index(child):] + [child]
            if colour.get(child) == 0:
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def _parent_package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop the implicit edge from a package's ``__init__`` to its own submodules' imports of the package."""
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    cycle = _cycle(_parent_package_edges(graph))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_detector_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_callbacks_never_import_the_model_package(graph: dict[str, set[str]]) -> None:
    bad = {m: sorted(d for d in deps if d == "aerogan" or d.startswith("aerogan."))
           for m, deps in graph.items() if m.split(".")[0] == "callbacks"}
    assert not {m: d for m, d in bad.items() if d}, f"callbacks import aerogan: {bad}"


def test_datamodules_import_only_the_prediction_layer_of_aerogan(graph: dict[str, set[str]]) -> None:
    allowed = ("aerogan.prediction", "aerogan.atomic", "aerogan.degradation")  # the one degradation operator
    bad = {}
    for m, deps in graph.items():
        if m.split(".")[0] != "datamodules":
            continue
        up = sorted(d for d in deps if (d == "aerogan" or d.startswith("aerogan."))
                    and not any(d == a or d.startswith(a + ".") for a in allowed))
        if up:
            bad[m] = up
    assert not bad, f"datamodules reach into the model package: {bad}"


def test_prediction_layer_imports_only_band_catalogs_from_datamodules(graph: dict[str, set[str]]) -> None:
    """Scene readers, band catalogs and band summaries live in datamodules, shared by training and prediction."""
    allowed = {"datamodules", "aerogan.prediction.sources", "datamodules.band_catalog", "datamodules.band_summary"}
    bad = {m: sorted(d for d in deps if d.split(".")[0] == "datamodules" and d not in allowed)
           for m, deps in graph.items() if m == "aerogan.prediction" or m.startswith("aerogan.prediction.")}
    assert not any(bad.values()), f"aerogan.prediction imports datamodules beyond the band catalogs: {bad}"


def test_prediction_layer_never_imports_the_runners_or_the_cli(graph: dict[str, set[str]]) -> None:
    """Prediction (products, archives, shards) sits below the experiment runners and the CLI: it may be imported by
    them, never the other way round (an import of ``aerogan.experiments`` would load the whole CLI)."""
    above = ("aerogan.cli", "aerogan.experiments", "aerogan.study", "aerogan.trust_study", "aerogan.compare", "aerogan.sharpen",
             "aerogan.transfer", "aerogan.report", "aerogan.bench")
    bad = {m: sorted(d for d in deps if any(d == a or d.startswith(a + ".") for a in above))
           for m, deps in graph.items() if m == "aerogan.prediction" or m.startswith("aerogan.prediction.")}
    assert not any(bad.values()), f"aerogan.prediction imports layers above it: {bad}"
