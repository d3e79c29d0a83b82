"""The package's shape (issue 10.1): lstrace's modules import each other without a circle,
and none reaches for another module's underscore names (each owns and resets its state).

Read from the source with ``ast``: every ``import`` of an lstrace module counts, at module
level or inside a function, except those under ``if TYPE_CHECKING:``. A private name is
one with a leading underscore (not a dunder); lstrace's private *modules* (``_client``,
``_delivery.worker``...) are the package's own layout and may be imported by any of its
modules: what no module may touch is a private name *inside* another module, reached as

- ``from lstrace.x import _y``;
- ``x._y`` (also ``lstrace.x._y`` through a dotted import) or ``getattr(x, "_y")`` on a
  module alias ``x``;
- ``obj._y`` on an object (not ``self``/``cls``) when ``_y`` is not defined in the module
  itself: another module's object's private state (``worker._spool``, ``spool._lock``).
"""

from __future__ import annotations

import ast
import importlib
import re
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lstrace"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _defined(tree: ast.AST) -> set[str]:
    """Every name the module itself defines or binds: functions, classes, attributes it
    assigns (``self._x = ...``), variables, parameters, class fields."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            found.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
    return found


def _imports(
    name: str, source: str, modules: set[str], *, package: str | None = None
) -> tuple[set[str], list[str]]:
    """The lstrace modules module ``name`` imports, and its uses of other modules' private
    names. ``package``: the package relative imports start from (``name``'s parent)."""
    tree = ast.parse(source)
    typing_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    if package is None:
        package = name.rpartition(".")[0]
    edges: set[str] = set()
    private: list[str] = []
    aliases: dict[str, str] = {}  # local name -> the lstrace module (or package) it is
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lstrace"):
                    edges.add(alias.name)
                    if alias.asname:
                        aliases[alias.asname] = alias.name
                    else:  # ``import lstrace.x.y`` binds ``lstrace``
                        aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]
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
                    aliases[alias.asname or alias.name] = target
                else:
                    edges.add(base)
                    if _private(alias.name):
                        private.append(f"from {base} import {alias.name}")
    private += _reach_ins(tree, name, aliases, modules)
    edges.discard(name)
    return {e for e in edges if e in modules}, sorted(set(private))


def _reach_ins(tree: ast.AST, name: str, aliases: dict[str, str], modules: set[str]) -> list[str]:
    """Private names of other modules module ``name`` touches through attributes:
    ``alias._y`` (or a dotted chain) or ``getattr(alias, "_y")`` on a module alias, and
    ``obj._y`` on an object when ``_y`` is not defined in the module itself."""
    private: list[str] = []
    defined = _defined(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            chain: list[str] = []
            root: ast.expr = node
            while isinstance(root, ast.Attribute):
                chain.insert(0, root.attr)
                root = root.value
            if isinstance(root, ast.Name) and root.id in aliases:
                module = aliases[root.id]
                for attr in chain:
                    if f"{module}.{attr}" in modules:
                        module = f"{module}.{attr}"
                        continue
                    if _private(attr) and module != name:
                        private.append(f"{module}.{attr}")
                    break
            elif node.attr not in defined and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            ):
                private.append(ast.unparse(node))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "delattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in aliases
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            private.append(f"{node.func.id}({node.args[0].id}, {node.args[1].value!r})")
    return private


def _module_imports(name: str, path: Path, modules: set[str]) -> tuple[set[str], list[str]]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return _imports(name, path.read_text(encoding="utf-8"), modules, package=package)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _module_imports(name, path, set(modules))[0] for name, path in modules.items()}


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


def test_the_private_name_check_finds_each_kind_of_reach_in() -> None:
    """The check can fail: each way of touching another module's private names is found,
    and what is allowed (private modules, one's own names, ``self``'s) is not."""
    modules = {"lstrace", "lstrace._delivery", "lstrace._delivery.worker", "lstrace._client"}
    source = """
import lstrace._delivery.worker
from lstrace._delivery import worker
from lstrace._delivery import worker as _w
from lstrace._delivery.worker import _state, running
from . import _client
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from lstrace._delivery.worker import _Hidden


class Mine:
    def __init__(self) -> None:
        self._own = 1

    def use(self, other: "Mine") -> int:
        return self._own + other._own + _client.Client.__name__.count("x")


def reach(obj: object) -> None:
    worker._get()
    _w._holder.value = 1
    lstrace._delivery.worker._lock.acquire()
    getattr(worker, "_spool")
    obj._sender.deliver()
    running()._spool.close()
"""
    edges, private = _imports("lstrace._capture.demo", source, modules, package="lstrace")
    assert edges == {"lstrace._delivery.worker", "lstrace._client"}
    assert private == [
        "from lstrace._delivery.worker import _state",
        "getattr(worker, '_spool')",
        "lstrace._delivery.worker._get",
        "lstrace._delivery.worker._holder",
        "lstrace._delivery.worker._lock",
        "obj._sender",
        "running()._spool",
    ]


def test_no_module_touches_another_modules_private_names() -> None:
    """Modules use each other's public names only: state is reset by its owner."""
    modules = _modules()
    uses = {name: _module_imports(name, path, set(modules))[1] for name, path in modules.items()}
    assert {name: found for name, found in uses.items() if found} == {}


def test_every_exception_class_is_in_the_one_error_tree() -> None:
    """lstrace's exceptions, raised at the user or internal, are all defined in
    ``lstrace._errors`` (drawn at its top), none elsewhere (issue 10.3)."""
    elsewhere = []
    for name in sorted(_modules()):
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and name != "lstrace._errors"
            ):
                elsewhere.append(f"{name}.{value.__qualname__}")
    assert elsewhere == []
    drawn = (PACKAGE / "_errors.py").read_text(encoding="utf-8").split('"""')[1]
    defined = [
        cls.__name__
        for cls in vars(importlib.import_module("lstrace._errors")).values()
        if isinstance(cls, type) and issubclass(cls, BaseException)
    ]
    assert len(defined) > 5 and [c for c in defined if c not in drawn] == []


def test_the_readme_code_map_names_every_module() -> None:
    """The README's development section maps the code (issue 10.7): every module of the
    package is named there (a file name used in two packages as often as it is used)."""
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    code_map = readme.split("### Code map", 1)[1].split("\n### ", 1)[0]
    names = Counter(
        f"{path.parent.name}/"
        if path.name == "__init__.py" and path.parent != PACKAGE
        else path.name
        for path in _modules().values()
    )  # a subpackage is named by its folder (``_capture/``)
    missing = {
        name: count
        for name, count in names.items()
        if len(re.findall(rf"(?<![\w.]){re.escape(name)}", code_map)) < count
    }
    assert missing == {}
