"""The package's shape (issue 10.1): lstrace's modules import each other without a circle,
and none reaches for another module's underscore names (each owns and resets its state).

Read from the source with ``ast``: every ``import`` of an lstrace module counts, at module
level or inside a function, except those under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lstrace"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> tuple[set[str], list[str]]:
    """The lstrace modules ``name`` imports, and its uses of other modules' private names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges: set[str] = set()
    private: list[str] = []
    aliases: set[str] = set()  # local names bound to another lstrace module
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lstrace"):
                    edges.add(alias.name)
                    aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: 1 - node.level or None], base]).strip(".")
            if not base.startswith("lstrace"):
                continue
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in modules:
                    edges.add(target)
                    aliases.add(alias.asname or alias.name)
                else:
                    edges.add(base)
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append(f"from {base} import {alias.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            private.append(f"{node.value.id}.{node.attr}")
    edges.discard(name)
    return {e for e in edges if e in modules}, private


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules)[0] for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle found by a depth-first walk (each reported once per entry point)."""
    found: list[list[str]] = []
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in done:
                walk(nxt, [*path, nxt])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            walk(start, [start])
    return found


def test_the_cycle_finder_finds_a_circle() -> None:
    """The check can fail: a two-module circle and a longer one are found."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": set()}
    assert sorted(map(tuple, _cycles(graph))) == [("a", "b", "a"), ("c", "d", "e", "c")]


def test_the_import_graph_has_no_circle() -> None:
    """No lstrace module imports (directly or through others) a module that imports it."""
    graph = _graph()
    assert len(graph) > 20  # the walk saw the package
    assert "lstrace._delivery.worker" in graph["lstrace._capture.handler"]
    assert _cycles(graph) == []


def test_no_module_touches_another_modules_private_names() -> None:
    """Modules use each other's public names only: state is reset by its owner."""
    modules = _modules()
    uses = {name: _imports(name, path, modules)[1] for name, path in modules.items()}
    assert {name: found for name, found in uses.items() if found} == {}
