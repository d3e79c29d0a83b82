"""Print pip constraints pinning every runtime dependency to the lowest version it allows.

``.ci/run`` installs lstrace with these constraints and runs the offline suite, so the
floors in ``pyproject.toml`` are versions that were tested, not hopes (issue 9.8).
A dependency without a ``>=`` floor is left to pip. Run with Python 3.11+ (tomllib).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")
FLOOR = re.compile(r">=\s*([0-9][^,\s]*)")


def floors(dependencies: list[str]) -> list[str]:
    """``name==floor`` for each requirement that has a ``>=`` lower bound."""
    pins = []
    for dependency in dependencies:
        match = REQUIREMENT.match(dependency)
        if match is None:
            raise SystemExit(f"cannot read the requirement {dependency!r} in {PYPROJECT}")
        name, specifier = match.groups()
        floor = FLOOR.search(specifier)
        if floor:
            pins.append(f"{name}=={floor.group(1)}")
    return pins


def main() -> int:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    print("\n".join(floors(project["dependencies"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
