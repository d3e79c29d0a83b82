"""A read-only look at the spool file, for ``lstrace status``, ``sync`` and ``set-aside``.

Opened with SQLite's ``mode=ro``: looking never creates the file, claims rows
or registers an owner, so it is safe next to a running process.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from lstrace._delivery.spool import describe_reason, peek
from lstrace._delivery.traces import OpenTraces, peek_open
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
    traces: list[OpenTraces] = field(default_factory=list)  # unfinished traces (trace mode)
    unpaired: int = 0  # of the waiting: pairwise calls whose partner has not come (yet)
    rechecks: int = 0  # batches sent again after an ambiguous import, to check for duplicates

    @property
    def dead(self) -> int:
        """Tasks set aside, whatever the reason."""
        return sum(self.set_aside.values())

    @property
    def orphaned(self) -> int:
        """Unfinished traces of processes that are gone: ``lstrace sync`` sends them."""
        return sum(t.orphaned for t in self.traces)

    def line(self) -> str:
        """One status line: path, tasks waiting, tasks set aside and why."""
        if not self.exists:
            return f"{self.path}: none (no spool file yet)"
        if self.error:
            return f"{self.path}: unreadable ({self.error})"
        text = f"{self.path}: {self.waiting} tasks waiting"
        if self.waiting > self.unpaired:
            text += " (deliver them with `lstrace sync`)"
        if self.unpaired:
            text += (
                f", {'of them ' if self.waiting > self.unpaired else ''}{self.unpaired} "
                "pairwise calls waiting for a partner (set aside as unpaired when their "
                "process ends)"
            )
        if self.traces:
            steps = sum(t.steps for t in self.traces)
            text += f"; {sum(t.traces for t in self.traces)} unfinished traces ({steps} steps)"
        if self.dead:
            text += f"; {self.set_aside_words()}"
        if self.rechecks:
            text += (
                f"; {self.rechecks} batches sent again after an ambiguous import, to be "
                "checked for duplicates (by the next process that sends to their server)"
            )
        return text

    def trace_lines(self) -> list[str]:
        """One line per destination with unfinished traces: how many, whose process ended."""
        lines = []
        for t in self.traces:
            where = f"{t.traces} unfinished traces ({t.steps} steps) for {t.destination.project}"
            where += f" on {redact_url(t.destination.url)}"
            if t.orphaned:
                where += (
                    f": {t.orphaned} of processes that ended (`lstrace sync` sends them marked "
                    "incomplete)"
                )
            else:
                where += ": still running"
            lines.append(where)
        return lines

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
        traces = peek_open(path)
        unpaired = _unpaired(path) if waiting else 0
        rechecks = _rechecks(path)
    except (sqlite3.Error, ValueError, TypeError) as exc:  # not a spool, or not this version's
        return SpoolView(path, exists=True, error=str(exc))
    places = [(redact_url(dest.url), dest.project, n) for dest, n in waiting]
    total = sum(n for _, n in waiting)
    return SpoolView(
        path, True, total, places, dead, traces=traces, unpaired=unpaired, rechecks=rechecks
    )


def _rechecks(path: Path) -> int:
    """Batches waiting for a duplicate check (0 for a spool written before they existed)."""
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        (n,) = db.execute("SELECT COUNT(*) FROM rechecks").fetchone()
    except sqlite3.OperationalError:  # no such table: an older lstrace wrote the file
        return 0
    finally:
        db.close()
    return int(n)


def _unpaired(path: Path) -> int:
    """Waiting pairwise calls whose pair group has no partner in the spool (an odd one out)."""
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        (n,) = db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM tasks t JOIN destinations d ON d.key = t.dest"
            " WHERE t.dead IS NULL AND json_extract(d.spec, '$.mode') = 'pairwise'"
            " AND json_extract(t.body, '$.pair_group') IS NOT NULL"
            " GROUP BY t.dest, json_extract(t.body, '$.pair_group') HAVING COUNT(*) % 2 = 1)"
        ).fetchone()
    finally:
        db.close()
    return int(n)
