"""A read-only look at the spool file, for ``lstrace status``, ``sync`` and ``set-aside``.

Opened with SQLite's ``mode=ro``: looking never creates the file, claims rows
or registers an owner, so it is safe next to a running process.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from lstrace._delivery.spool import describe_reason, peek
from lstrace._secrets import redact_url


@dataclass(frozen=True)
class SpoolView:
    """How many tasks wait in a spool file, for which project, and how many were set aside."""

    path: Path
    exists: bool
    waiting: int = 0
    by_destination: list[tuple[str, str, int]] = field(default_factory=list)  # url, project, n
    set_aside: dict[str, int] = field(default_factory=dict)  # reason -> tasks
    error: str | None = None

    @property
    def dead(self) -> int:
        """Tasks set aside, whatever the reason."""
        return sum(self.set_aside.values())

    def line(self) -> str:
        """One status line: path, tasks waiting, tasks set aside and why."""
        if not self.exists:
            return f"{self.path}: none (no spool file yet)"
        if self.error:
            return f"{self.path}: unreadable ({self.error})"
        text = f"{self.path}: {self.waiting} tasks waiting"
        if self.waiting:
            text += " (deliver them with `lstrace sync`)"
        if self.dead:
            text += f"; {self.set_aside_words()}"
        return text

    def set_aside_words(self) -> str:
        """``2 set aside (1 a pairwise call that ..., 1 refused by ...): lstrace set-aside``."""
        reasons = ", ".join(f"{n} {describe_reason(why)}" for why, n in self.set_aside.items())
        return f"{self.dead} set aside ({reasons}): `lstrace set-aside` lists them"


def look(path: Path) -> SpoolView:
    """What waits in the spool at ``path``; never raises for a missing or odd file."""
    if not path.exists():
        return SpoolView(path, exists=False)
    try:
        waiting, dead = peek(path)
    except (sqlite3.Error, ValueError, TypeError) as exc:  # not a spool, or not this version's
        return SpoolView(path, exists=True, error=str(exc))
    places = [(redact_url(dest.url), dest.project, n) for dest, n in waiting]
    return SpoolView(path, True, sum(n for _, n in waiting), places, dead)
