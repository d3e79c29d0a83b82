"""Label Studio going away, the capturing process dying, the process exiting with work left."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import lstrace
from tests.live.conftest import LiveServer, call, child, fake_chat, spool_rows
from tests.waiting import wait_for

pytestmark = pytest.mark.live

SPOOL_INTERVAL = 0.05  # lstrace's promise: a captured call is in the spool within this


def test_server_stopped_and_restarted_mid_run(live_server: LiveServer, title: str) -> None:
    """Label Studio is stopped (its database, if any, stays up) while 3,000 calls are
    captured and delivered, then restarted: every task arrives exactly once."""
    model = fake_chat()
    sent: list[str] = []
    with lstrace.ls_session(project_name=title):
        sent += [call(model, f"before {i}") for i in range(1000)]
        time.sleep(0.5)  # the sender is mid-way through these imports when the server goes
        live_server.stop(database=False)
        sent += [call(model, f"during {i}") for i in range(1000)]
        time.sleep(3)  # several failed attempts while the server is down
        assert lstrace.stats().retried > 0
        restart = threading.Thread(target=live_server.start)
        restart.start()
        sent += [call(model, f"after {i}") for i in range(1000)]
        restart.join()
    result = lstrace.flush(timeout=180)

    assert result.pending == 0
    arrived = live_server.run_ids(title)
    assert len(sent) == len(set(sent)) == 3000
    assert set(arrived) == set(sent)
    assert max(arrived.values()) == 1, [r for r, n in arrived.items() if n > 1][:5]
    assert lstrace.stats().delivered == 3000


@pytest.mark.parametrize(
    ("pause", "max_queue"),
    [pytest.param(0.001, 10_000, id="paced"), pytest.param(0.0, 300, id="saturating")],
)
def test_sigkilled_process_delivered_by_the_next(
    sqlite_server: LiveServer, title: str, lstrace_state: Path, pause: float, max_queue: int
) -> None:
    """A process capturing calls is killed with SIGKILL while it delivers; a new process's
    ``lstrace.sync()`` delivers what the dead one had spooled, and nothing twice.

    What "spooled" means: when the app leaves the CPU between calls (``paced``: 1 ms of I/O
    per call, as any real LLM call does), every call captured more than ``spool_interval``
    before the kill. When a tight loop keeps the CPU saturated, the background spooler can
    fall behind; then the in-memory bound holds: all but the last ``2 * max_queue`` calls
    (the queue plus the batch being written).
    """
    spool = lstrace_state
    proc = child(
        "loop", "--spool", str(spool), "--url", sqlite_server.url, "--key", sqlite_server.token,
        "--title", title, "--n", "1000000", "--pause", str(pause), "--max-queue", str(max_queue),
    )  # fmt: skip
    reported: dict[str, float] = {}
    reader = threading.Thread(target=_read_reports, args=(proc, reported))
    reader.start()
    wait_for(lambda: sqlite_server.task_count(title) >= 200, "200 tasks", timeout=120, every=0.2)
    killed_at = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    reader.join()
    proc.wait()  # reaped: its pid is gone, so its spool rows are orphans to adopt
    assert proc.returncode == -signal.SIGKILL
    if pause:
        must_arrive = {r for r, at in reported.items() if at < killed_at - SPOOL_INTERVAL}
    else:
        must_arrive = set(list(reported)[: -2 * max_queue])
    left = spool_rows(spool)

    result = lstrace.sync(url=sqlite_server.url, api_key=sqlite_server.token, timeout=120)

    assert left > 0  # it died with work left in the spool
    assert result.pending == 0
    arrived = sqlite_server.run_ids(title)
    lost = must_arrive - set(arrived)
    ages = sorted(killed_at - reported[r] for r in lost) or [0.0]
    assert not lost, f"{len(lost)} of {len(must_arrive)} lost, {ages[0]:.3f}-{ages[-1]:.3f}s old"
    assert max(arrived.values()) == 1
    assert spool_rows(spool) == 0


def _read_reports(proc: subprocess.Popen[str], into: dict[str, float]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        parts = line.split()
        if len(parts) == 3:
            into[parts[1]] = float(parts[2])
