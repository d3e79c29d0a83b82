"""A read-only look at the spool file, for ``lstrace status`` and ``lstrace sync``.

Opened with SQLite's ``mode=ro``: looking never creates the file, claims rows
or registers an owner, so it is safe next to a running process.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SpoolView:
    """How many tasks wait in a spool file, and for which project."""

    path: Path
    exists: bool
    waiting: int = 0
    dead: int = 0  # refused by Label Studio for good, kept for inspection
    by_destination: list[tuple[str, str, int]] = field(default_factory=list)  # url, project, n
    error: str | None = None

    def line(self) -> str:
        """One status line: path, tasks waiting, tasks refused."""
        if not self.exists:
            return f"{self.path}: none (no spool file yet)"
        if self.error:
            return f"{self.path}: unreadable ({self.error})"
        text = f"{self.path}: {self.waiting} tasks waiting"
        if self.waiting:
            text += " (deliver them with `lstrace sync`)"
        if self.dead:
            text += f", {self.dead} refused by Label Studio"
        return text


def look(path: Path) -> SpoolView:
    """What waits in the spool at ``path``; never raises for a missing or odd file."""
    if not path.exists():
        return SpoolView(path, exists=False)
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            dead = db.execute("SELECT COUNT(*) FROM tasks WHERE dead IS NOT NULL").fetchone()[0]
            rows = db.execute(
                "SELECT d.spec, COUNT(*) FROM tasks t JOIN destinations d ON d.key = t.dest"
                " WHERE t.dead IS NULL GROUP BY t.dest ORDER BY MIN(t.id)"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        return SpoolView(path, exists=True, error=str(exc))
    places = [(*_describe(spec), int(n)) for spec, n in rows]
    return SpoolView(path, True, sum(p[2] for p in places), int(dead), places)


def _describe(spec: str) -> tuple[str, str]:
    try:
        dest = json.loads(spec)
    except ValueError:
        return "", "an unknown project"
    if dest.get("project_id"):
        return str(dest.get("url")), f"project id {dest['project_id']}"
    return str(dest.get("url")), f"project {dest.get('project_title')!r}"
