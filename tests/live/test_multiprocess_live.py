"""Many application processes at once against the production layout (live tier).

Eight processes forked from one parent that enabled lstrace first (as ``gunicorn --preload``
forks an app's workers) capture calls into three projects for a while, sharing one spool
file, against Label Studio on PostgreSQL behind gunicorn workers. ``LSTRACE_MULTIPROCESS_SECONDS``
sets how long they capture (default 120; longer runs for soak testing).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.live.conftest import LiveServer, child, spool_rows

pytestmark = pytest.mark.live

SECONDS = float(os.environ.get("LSTRACE_MULTIPROCESS_SECONDS", "120"))
WORKERS, PROJECTS = 8, 3


def test_eight_processes_three_projects_every_call_once(
    postgres_server: LiveServer, title: str, tmp_path: Path
) -> None:
    """Each of 8 worker processes rotates its calls over 3 projects that do not exist yet, so
    all of them race to create each one. At the end: one project per title, every call in
    its project exactly once, every worker exited 0, and nothing left in the shared spool."""
    spool = tmp_path / "app.sqlite3"
    proc = child(
        "workers", "--spool", str(spool), "--url", postgres_server.url,
        "--key", postgres_server.token, "--title", title, "--workers", str(WORKERS),
        "--projects", str(PROJECTS), "--seconds", str(SECONDS), "--pause", "0.05",
        "--batch-size", "1000", "--flush-interval", "1", "--shutdown-timeout", "300",
    )  # fmt: skip
    out, err = proc.communicate(timeout=SECONDS + 900)

    assert proc.returncode == 0, err[-3000:]
    exits = [line.split() for line in out.splitlines() if line.startswith("exit ")]
    assert len(exits) == WORKERS and all(code == "0" for _, _, code in exits), err[-3000:]
    calls = [line.split() for line in out.splitlines() if line.startswith("worker")]
    expected = {run_id: int(k) for _, run_id, k, _ in calls}
    callers = Counter(who for who, _, _, _ in calls)
    assert len(callers) == WORKERS and min(callers.values()) > 0

    found: dict[str, int] = {}
    for k in range(PROJECTS):
        name = f"{title}-p{k}"
        for run_id, n in postgres_server.run_ids(name).items():  # asserts one project titled so
            assert n == 1, f"{run_id} arrived {n} times in {name}"
            assert run_id not in found, f"{run_id} arrived in two projects"
            found[run_id] = k
    assert len(found) == len(expected), f"{len(expected) - len(found)} calls missing"
    assert found == expected
    assert spool_rows(spool) == 0
    created = len(re.findall(r"created Label Studio project", err))
    assert PROJECTS <= created <= WORKERS * PROJECTS, err[-3000:]
