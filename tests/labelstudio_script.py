"""``scripts/labelstudio.py`` for tests: the one way the tiers start a real Label Studio.

The script is not in a package (it runs on a fresh machine before anything is
installed), so tests load it by path, once, here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
TOKEN = "0123456789abcdef0123456789abcdef01234567"  # the legacy token every tier uses


def load_script(name: str = "labelstudio") -> ModuleType:
    """Import ``scripts/<name>.py`` by path."""
    spec = importlib.util.spec_from_file_location(
        f"lstrace_script_{name}", REPO / "scripts" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
