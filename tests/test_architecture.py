"""The import rule of docs/architecture.md: layers import downwards only, and nothing forms a cycle.

The graph is read from the source with ``ast``: every import of a
``linkai_images`` module, wherever it stands (module level, inside a function,
under ``if TYPE_CHECKING:``). An import moved into a function is still an
edge, so it is no way around a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import linkai_images

PACKAGE = "linkai_images"
ROOT = Path(linkai_images.__file__).parent

#: The layers, lowest first. A module may import its own group (inside a package) and any
#: group of a lower layer, never a higher one. The groups are the first name under
#: ``linkai_images``: a top-level module, or a subpackage and everything in it.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"_exceptions", "_version"}),
    frozenset({"_config", "_catalog", "_display", "_failures"}),
    frozenset({"_models", "_pacing"}),
    frozenset({"_retry", "_inputs"}),
    frozenset({"_telemetry"}),
    frozenset({"_http"}),
    frozenset({"_outputs"}),
    frozenset({"_batch"}),
    frozenset({"_client"}),
    frozenset({"_sync"}),
    frozenset({"testing"}),
    frozenset({"_cli"}),
    frozenset({"__init__", "__main__"}),
)
RANK = {group: rank for rank, layer in enumerate(LAYERS) for group in layer}


def module_name(path: Path) -> str:
    """``linkai_images._http.pool`` for ``.../linkai_images/_http/pool.py``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join([PACKAGE, *parts])


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (ROOT / relative).with_suffix(".py").exists() or (
        ROOT / relative / "__init__.py"
    ).exists()


def imports_of(path: Path) -> set[str]:
    """The ``linkai_images`` modules that the file at ``path`` imports, anywhere in it."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(PACKAGE))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith(PACKAGE):
                continue
            submodules = {f"{target}.{alias.name}" for alias in node.names}
            modules = {sub for sub in submodules if _is_module(sub)}
            found.update(modules)
            if len(modules) < len(submodules):
                found.add(target)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Every module of the package, with the package modules it imports."""
    return {module_name(path): imports_of(path) for path in sorted(ROOT.rglob("*.py"))}


def group(module: str) -> str:
    """The layer group of a module: the first name under the package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def forbidden_edges(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """The imports that go up a layer, or sideways into another group of the same layer."""
    bad = []
    for source, targets in graph.items():
        for target in targets:
            here, there = group(source), group(target)
            if here == there:
                continue
            if here not in RANK or there not in RANK:
                bad.append(f"{source} -> {target}: put the new module in LAYERS")
            elif RANK[there] >= RANK[here]:
                bad.append(f"{source} -> {target}")
    return sorted(bad)


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The import cycles of ``graph``, each as the path that closes it."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    """No module of linkai_images (testing included) imports itself back, even lazily."""
    assert [] == cycles(import_graph())


def test_layers_import_downwards_only() -> None:
    """Each import goes down the layers of docs/architecture.md (no layer imports _cli)."""
    assert [] == forbidden_edges(import_graph())


def test_every_group_has_a_layer() -> None:
    """A new module or subpackage cannot escape the rule by being left out of LAYERS."""
    assert [] == sorted({group(module) for module in import_graph()} - set(RANK))


def test_the_checks_catch_a_cycle_and_an_upward_import() -> None:
    """The checks themselves work: a planted cycle and a planted upward edge are reported."""
    graph = {
        "linkai_images._models": {"linkai_images._outputs.download"},
        "linkai_images._outputs.download": {"linkai_images._models"},
    }
    assert [
        ["linkai_images._models", "linkai_images._outputs.download", "linkai_images._models"]
    ] == cycles(graph)
    assert ["linkai_images._models -> linkai_images._outputs.download"] == forbidden_edges(graph)


def test_the_graph_sees_imports_inside_functions() -> None:
    """An import inside a function is an edge: moving one there does not hide a cycle."""
    assert "linkai_images._cli.demo" in import_graph()["linkai_images._cli.main"]
    lazy = {
        target
        for target in import_graph()["linkai_images._http.transport"]
        if target.endswith(".aio")
    }
    assert {"linkai_images._http.aio"} == lazy
