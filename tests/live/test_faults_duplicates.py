"""Duplicates from a slow server, repaired, against a real Label Studio on each backend
(SQLite, and PostgreSQL behind several workers; issue 12.5).

The fault proxy holds each round's first import 5 s before it forwards it, and lstrace
gives up after ``request_timeout=2``: the sender finds none of the batch on the server,
sends it again, and the held import lands after that, next to it (Label Studio has no
idempotency key). The duplicate repair (``lstrace/_delivery/repair.py``) checks the batch
``request_timeout`` after the re-send and after the repair window (60 s here) and deletes
the extra copies nobody annotated. The offline tests of the same paths are in
``tests/test_delivery_faults.py``.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

import lstrace
from lstrace._delivery.repair import grace
from tests.live.conftest import LiveServer, call, fake_chat
from tests.live.fault_proxy import FaultProxy
from tests.waiting import wait_for

pytestmark = pytest.mark.live

IMPORT = "/import"
TIMEOUT = 2.0
HOLD = 5.0
ROUNDS = 10
PER_ROUND = 20
COPY_CHECK = "cancelled_annotations"  # in the query of the repair's look-ups only


def _round(proxy: FaultProxy, title: str, url: str) -> list[str]:
    """One batch of calls whose import the proxy holds ``HOLD`` seconds; all delivered."""
    proxy.delay_next(1, HOLD, after_forward=False, path=IMPORT)
    model = fake_chat()
    with lstrace.ls_session(project_name=title, url=url):
        sent = [call(model, f"question {i}") for i in range(PER_ROUND)]
    assert lstrace.flush(timeout=120).pending == 0
    return sent


def _rechecks(spool: Path) -> int:
    with sqlite3.connect(spool) as db:
        return int(db.execute("SELECT COUNT(*) FROM rechecks").fetchone()[0])


def _copies(server: LiveServer, title: str) -> dict[str, list[int]]:
    """Task ids by run id, lowest first."""
    found: dict[str, list[int]] = {}
    for task in sorted(server.tasks(title), key=lambda t: int(t.id)):
        found.setdefault(str(task.data.get("run_id")), []).append(int(task.id))
    return found


def test_a_slow_server_leaves_no_duplicate_once_the_repair_window_passed(
    live_server: LiveServer, proxy: FaultProxy, title: str, lstrace_state: Path
) -> None:
    """First a round whose duplicate checks fail until three copies are annotated (both
    copies of one call, the later copy of another); then 10 rounds of 20 calls, each import
    held 5 s with request_timeout=2. Once every remembered batch had its last check: each
    call is in Label Studio exactly once, but for the call whose two copies were both
    annotated (kept, counted); no annotation was deleted; every duplicate made was removed."""
    lstrace.configure(
        batch_size=PER_ROUND, flush_interval=3600, max_backoff=2.0, request_timeout=TIMEOUT
    )
    proxy.fail_next(10_000, 503, path="/api/tasks", query=COPY_CHECK)  # checks fail for now
    first = _round(proxy, title, proxy.url)
    wait_for(
        lambda: live_server.task_count(title) == 2 * PER_ROUND,
        "the held import",
        timeout=60,
        every=0.5,
    )
    copies = _copies(live_server, title)
    annotated = [copies[first[0]][0], copies[first[0]][1], copies[first[1]][1]]
    for task_id in annotated:
        live_server.sdk.annotations.create(id=task_id, result=[], was_cancelled=False)
    proxy.reset()  # the checks go through from now on

    sent = list(first)
    for _ in range(ROUNDS):
        sent += _round(proxy, title, proxy.url)
    wait_for(
        lambda: _rechecks(lstrace_state) == 0,
        "the last duplicate checks",
        timeout=3 * grace(TIMEOUT),
        every=0.5,
    )
    imports = sum(n for path, n in proxy.forwarded.items() if path.endswith(IMPORT))

    arrived = Counter(str(t.data.get("run_id")) for t in live_server.tasks(title))
    made = (imports + 2) * PER_ROUND - len(sent)  # +2: the first round's imports
    stats = lstrace.stats()
    print(
        f"\n{ROUNDS} rounds of {PER_ROUND}: {imports} imports forwarded, {made} duplicates made, "
        f"{stats.duplicates_removed} removed, {stats.duplicates_annotated} annotated kept, "
        f"{sum(n - 1 for n in arrived.values())} left"
    )
    assert set(arrived) == set(sent)
    assert {r: n for r, n in arrived.items() if n != 1} == {first[0]: 2}
    assert imports >= ROUNDS + ROUNDS // 2, "most rounds should have sent their batch twice"
    assert stats.duplicates_removed == made - 1
    assert stats.duplicates_annotated == 1
    assert stats.duplicate_checks_expired == 0
    for task_id in annotated:
        assert len(live_server.annotations(task_id)) == 1
