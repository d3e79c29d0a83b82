"""The runtime dependencies pyproject.toml declares cover what lstrace imports (issue 10.8).

A package lstrace/ imports but does not declare is installed today only because another
dependency pulls it in, and breaks the day that one stops. Read with ``ast`` from the
source (lazy imports too) and checked against ``[project] dependencies``.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib

REPO = Path(__file__).resolve().parents[1]


def _third_party_imports(source: str) -> set[str]:
    """Top-level names of the modules ``source`` imports that are neither the standard
    library nor lstrace (relative imports are lstrace's own)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name != "lstrace"}


def _distribution(requirement: str) -> str:
    """A requirement's distribution name, normalised (PEP 503)."""
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert name is not None, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def _declared() -> set[str]:
    """The distributions ``[project] dependencies`` names."""
    if sys.version_info < (3, 11):
        pytest.skip("reads pyproject.toml with tomllib (Python 3.11+)")
    else:
        text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
        return {_distribution(r) for r in tomllib.loads(text)["project"]["dependencies"]}


def test_the_third_party_import_finder_sees_every_kind_of_import() -> None:
    """The check can fail: plain, dotted and from-imports are found; the standard library
    and lstrace's own (absolute or relative) are not."""
    source = (
        "import os, httpx\nimport langchain_core.callbacks\nfrom orjson import dumps\n"
        "from . import _json\nfrom lstrace._client import Client\n"
        "def lazy():\n    import ijson\n"
    )
    assert _third_party_imports(source) == {"httpx", "langchain_core", "orjson", "ijson"}


def test_every_third_party_import_is_a_declared_runtime_dependency() -> None:
    """Every package lstrace/ imports (lazily too) is in pyproject.toml's ``dependencies``,
    not only there because another dependency pulls it in (issue 10.8)."""
    declared = _declared()
    imported: set[str] = set()
    for path in (REPO / "lstrace").rglob("*.py"):
        imported |= _third_party_imports(path.read_text(encoding="utf-8"))
    providers = importlib.metadata.packages_distributions()
    assert imported >= {"httpx", "langchain_core", "typing_extensions"}  # the walk saw them
    missing = {
        module: sorted(providers.get(module, ["(not installed)"]))
        for module in sorted(imported)
        if not {_distribution(d) for d in providers.get(module, [])} & declared
    }
    assert missing == {}, f"imported by lstrace/ but not declared in dependencies: {missing}"
