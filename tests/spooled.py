"""Read what lstrace wrote to a spool file, for tests that inspect it directly."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import lstrace


def spooled(path: Path, expected: int, *, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The spooled contents once ``expected`` rows are there (in capture order).

    Waits for the background sender to spool; fails the test on timeout rather
    than returning a short list.
    """
    deadline = time.time() + timeout
    rows: list[Any] = []
    while time.time() < deadline:
        if path.exists():
            with contextlib.suppress(sqlite3.OperationalError), sqlite3.connect(path) as db:
                rows = db.execute("SELECT body FROM tasks ORDER BY id").fetchall()
        if len(rows) >= expected and lstrace.stats().captured >= expected:
            break
        time.sleep(0.02)
    assert len(rows) == expected, f"expected {expected} spooled tasks, found {len(rows)}"
    return [json.loads(body) for (body,) in rows]


def settle(captured: int, *, timeout: float = 60.0) -> lstrace.Stats:
    """Stats once the sender has processed ``captured`` calls (kept or dropped)."""
    deadline = time.time() + timeout
    stats = lstrace.stats()
    while stats.captured < captured and time.time() < deadline:
        time.sleep(0.02)
        stats = lstrace.stats()
    assert stats.captured == captured, f"expected {captured} captured calls, stats say {stats}"
    return stats
