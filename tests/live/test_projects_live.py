"""Project resolution and the exactly-once look-up on each backend (live tier).

The server filters projects by title with a case-insensitive substring match, which SQLite
(``LIKE``: ASCII case only) and PostgreSQL (``UPPER(..) LIKE UPPER(..)``: every letter)
answer differently; lstrace compares titles exactly itself, so both must resolve the same.
The run-id look-up behind exactly-once delivery uses the Data Manager's ``in_list`` filter
(``data__run_id__in``: ``JSON_EXTRACT(..) IN`` on SQLite, ``jsonb ->`` on PostgreSQL), or
OR-ed ``equal`` filters where a server refuses ``in_list``.
"""

from __future__ import annotations

import threading
import urllib.parse
from typing import Any

import pytest

import lstrace
from lstrace._labelconfig import PROMPT_CONFIG
from tests.live.conftest import LiveServer, call, fake_chat
from tests.live.fault_proxy import FaultProxy

pytestmark = pytest.mark.live


def _create(server: LiveServer, title: str) -> int:
    return int(server.sdk.projects.create(title=title, label_config=PROMPT_CONFIG).id)


def _ids_titled(server: LiveServer, title: str) -> list[int]:
    return sorted(int(p.id) for p in server.sdk.projects.list(title=title) if p.title == title)


def test_exact_title_wins_over_lookalikes(live_server: LiveServer, title: str) -> None:
    """Among projects whose titles differ only in case (ASCII and not), or contain the title,
    tasks go to the one titled exactly as the scope says, and no project is created."""
    exact = f"{title} Évaluation"
    lookalikes = [exact.upper(), exact.lower(), f"{exact} (copy)", f"old {exact}"]
    for other in lookalikes:
        _create(live_server, other)
    target = _create(live_server, exact)
    model = fake_chat()
    with lstrace.ls_session(project_name=exact):
        sent = [call(model, f"question {i}") for i in range(5)]
    assert lstrace.flush(timeout=60).pending == 0

    assert live_server.find_project(exact) == target
    assert sorted(live_server.run_ids(exact).elements()) == sorted(sent)
    assert all(live_server.task_count(other) == 0 for other in lookalikes)
    assert _ids_titled(live_server, exact) == [target]


def test_of_two_projects_with_one_title_the_lowest_id_wins(
    live_server: LiveServer, title: str
) -> None:
    """Two projects with the same title: tasks go to the older (lower id) one."""
    first, second = _create(live_server, title), _create(live_server, title)
    model = fake_chat()
    with lstrace.ls_session(project_name=title):
        sent = [call(model) for _ in range(3)]
    assert lstrace.flush(timeout=60).pending == 0

    tasks = live_server.sdk.tasks.list(project=first, include="id,data")
    assert sorted(t.data["run_id"] for t in tasks) == sorted(sent)
    assert int(live_server.sdk.projects.get(id=second).task_number or 0) == 0


def test_threads_racing_for_a_missing_project_create_it_once(
    live_server: LiveServer, title: str
) -> None:
    """Eight threads enter scopes naming the same missing project at once: one project is
    created, and every call arrives in it once."""
    model = fake_chat()
    start = threading.Barrier(8)
    sent: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        with lstrace.ls_session(project_name=title):
            start.wait()
            ids = [call(model) for _ in range(20)]
        with lock:
            sent.extend(ids)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert lstrace.flush(timeout=120).pending == 0

    assert len(_ids_titled(live_server, title)) == 1
    assert sorted(live_server.run_ids(title).elements()) == sorted(sent)


def _lookup_queries(proxy: FaultProxy) -> list[tuple[str, str]]:
    """(operator used, outcome) of each run-id look-up that went through the proxy."""
    found = []
    for method, target, outcome in proxy.log:
        query = urllib.parse.unquote_plus(urllib.parse.urlsplit(target).query)
        if method == "GET" and target.startswith("/api/tasks") and "data.run_id" in query:
            found.append(("in_list" if '"in_list"' in query else "equal", outcome))
    return found


@pytest.mark.parametrize("when", ["before-forward", "after-forward"])
@pytest.mark.parametrize("in_list", ["accepted", "refused"])
def test_run_id_lookup_after_an_ambiguous_failure(
    live_server: LiveServer, proxy: FaultProxy, title: str, when: str, in_list: str, caplog: Any
) -> None:
    """After a 500 on an import (that the server did or did not carry out), lstrace asks which
    run ids arrived: with the ``in_list`` operator, or, when the server refuses it (400), with
    OR-ed ``equal`` filters. Either way the answer is right on this backend: the 150 tasks of
    the failed batch are re-sent only if they had not arrived, and each arrives once."""
    lstrace.configure(batch_size=150, flush_interval=3600, max_backoff=1.0)
    proxy.fail_next(1, 500, after_forward=when == "after-forward", path="/import")
    if in_list == "refused":
        proxy.fail_next(1, 400, path="/api/tasks", query='"in_list"')
    model = fake_chat()
    with lstrace.ls_session(project_name=title, url=proxy.url):
        sent = [call(model, f"question {i}") for i in range(300)]
    result = lstrace.flush(timeout=120)

    assert result.pending == 0
    assert proxy.pending() == 0, "a planned fault never happened"
    arrived = live_server.run_ids(title)
    assert set(arrived) == set(sent) and max(arrived.values()) == 1
    lookups = _lookup_queries(proxy)
    if in_list == "accepted":
        assert lookups and all(op == "in_list" and out == "200" for op, out in lookups)
    else:
        assert lookups[0] == ("in_list", "failed 400 (before)")
        assert ("equal", "200") in lookups[1:]
    assert ("had arrived despite a failed attempt" in caplog.text) == (when == "after-forward")
