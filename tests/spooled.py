"""Read what lstrace wrote to a spool file, for tests that inspect it directly."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import lstrace
from lstrace._delivery.spool import SEPARATOR


def spooled(path: Path, expected: int, *, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The spooled contents once ``expected`` rows are there (in capture order).

    Waits for the background sender to spool; fails the test on timeout rather
    than returning a short list.
    """
    deadline = time.time() + timeout
    rows: list[str] = []
    while time.time() < deadline:
        if path.exists():
            with contextlib.suppress(sqlite3.OperationalError), sqlite3.connect(path) as db:
                rows = stored_bodies(db)
        if len(rows) >= expected and lstrace.stats().captured >= expected:
            break
        time.sleep(0.02)
    assert len(rows) == expected, f"expected {expected} spooled tasks, found {len(rows)}"
    return [json.loads(body) for body in rows]


def stored_bodies(db: sqlite3.Connection) -> list[str]:
    """The JSON text of every live call in the spool, in the order they were stored: rows
    of one call, and the calls still waiting in chunk rows (``gone`` ones left out)."""
    found = db.execute(
        "SELECT created, id, NULL, body FROM tasks WHERE dead IS NULL"
        " UNION ALL SELECT created, c.id, gone, body FROM chunks c"
        " JOIN chunk_bodies b ON b.id = c.id"
    ).fetchall()
    bodies = []
    for _, _, gone, body in sorted(found, key=lambda row: row[:2]):
        if gone is None:  # a row of one call
            bodies.append(body)
            continue
        skip = {int(k) for k in gone.split(",")} if gone else set()
        bodies += [text for k, text in enumerate(body.split(SEPARATOR)) if k not in skip]
    return bodies


def live_calls(db: sqlite3.Connection) -> int:
    """Calls waiting in the spool file: rows of one call and chunk rows' waiting calls."""
    return len(stored_bodies(db))


def held_calls(db: sqlite3.Connection) -> int:
    """Every call the spool file holds: waiting, and set aside (dead)."""
    (dead,) = db.execute("SELECT COUNT(*) FROM tasks WHERE dead IS NOT NULL").fetchone()
    return live_calls(db) + int(dead)


def settle(captured: int, *, timeout: float = 60.0) -> lstrace.Stats:
    """Stats once the sender has processed ``captured`` calls (kept or dropped)."""
    deadline = time.time() + timeout
    stats = lstrace.stats()
    while stats.captured < captured and time.time() < deadline:
        time.sleep(0.02)
        stats = lstrace.stats()
    assert stats.captured == captured, f"expected {captured} captured calls, stats say {stats}"
    return stats
