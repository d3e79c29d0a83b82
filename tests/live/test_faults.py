"""Faults between lstrace and a real Label Studio (through the fault proxy): exactly once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

import lstrace
from tests.live.conftest import LiveServer, call, fake_chat, spool_rows
from tests.live.fault_proxy import FaultProxy

pytestmark = pytest.mark.live

IMPORT = "/import"


def _fail_import_then_lookup(proxy: FaultProxy) -> None:
    """A 502 after the import arrived, then a 500 for the exactly-once look-up."""
    proxy.fail_next(1, 502, after_forward=True, path=IMPORT)
    proxy.fail_next(1, 500, path="/api/tasks")


# name -> how to break the first import (or lookup) of the run
FAULTS: dict[str, Callable[[FaultProxy], None]] = {
    "500-before-forward": lambda p: p.fail_next(2, 500, path=IMPORT),
    "500-after-forward": lambda p: p.fail_next(1, 500, after_forward=True, path=IMPORT),
    "502-after-forward-and-lookup-fails": _fail_import_then_lookup,
    "drop-before-forward": lambda p: p.drop_next(1, path=IMPORT),
    "drop-after-forward": lambda p: p.drop_next(1, after_forward=True, path=IMPORT),
    "slow-answer-client-times-out": lambda p: p.delay_next(1, 6.0, path=IMPORT),
    # the client gives up at 3 s; the server only gets (and imports) the batch at 4 s
    "server-gets-it-after-client-timeout": lambda p: p.delay_next(
        1, 4.0, after_forward=False, path=IMPORT
    ),
}
AMBIGUOUS = {"500-after-forward", "502-after-forward-and-lookup-fails", "drop-after-forward"}


def _capture(title: str, url: str, n: int) -> list[str]:
    model = fake_chat()
    with lstrace.ls_session(project_name=title, url=url):
        return [call(model, f"question {i}") for i in range(n)]


def _import_requests(proxy: FaultProxy) -> int:
    return sum(n for path, n in proxy.forwarded.items() if path.endswith(IMPORT))


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_during_import_delivers_every_task_once(
    live_server: LiveServer, proxy: FaultProxy, title: str, fault: str, caplog: Any
) -> None:
    """A 5xx, a dropped connection or a client timeout on a bulk import, before or after the
    server did the work (or while it is still to do it), ends with every task in Label Studio
    exactly once: an import that may have arrived is checked by run_id, never blindly
    re-sent, and after a timeout the check waits as long again as the request did."""
    lstrace.configure(batch_size=100, flush_interval=3600, max_backoff=1.0, request_timeout=3.0)
    FAULTS[fault](proxy)

    sent = _capture(title, proxy.url, 300)
    result = lstrace.flush(timeout=90)

    assert result.pending == 0
    assert proxy.pending() == 0, "the planned fault never happened"
    arrived = live_server.run_ids(title)
    assert set(arrived) == set(sent)
    assert max(arrived.values()) == 1
    assert _import_requests(proxy) == 3  # three batches of 100, none re-posted after arriving
    assert lstrace.stats().retried > 0
    if fault in AMBIGUOUS or fault.startswith(("slow", "server-gets")):
        assert "had arrived despite a failed attempt" in caplog.text


def test_retry_after_is_honoured(
    sqlite_server: LiveServer, proxy: FaultProxy, title: str, monkeypatch: Any
) -> None:
    """A 429 with ``Retry-After: 3`` is retried no sooner than 3 seconds later (the sender's
    own first backoff would be under a second), and every task arrives once."""
    lstrace.configure(batch_size=100, flush_interval=3600, max_backoff=1.0)
    seen: list[tuple[float, str]] = []
    take = proxy._take

    def timed_take(method: str, path: str, query: str = "") -> Any:
        seen.append((time.monotonic(), path))
        return take(method, path, query)

    monkeypatch.setattr(proxy, "_take", timed_take)
    proxy.fail_next(1, 429, retry_after=3, path=IMPORT)

    sent = _capture(title, proxy.url, 100)
    result = lstrace.flush(timeout=60)

    assert result.pending == 0
    imports = [at for at, path in seen if path.endswith(IMPORT)]
    assert len(imports) == 2
    assert imports[1] - imports[0] >= 2.9
    assert sorted(sqlite_server.run_ids(title).elements()) == sorted(sent)


def test_backs_off_while_the_server_stays_down(
    sqlite_server: LiveServer, proxy: FaultProxy, title: str
) -> None:
    """While Label Studio answers 503 for 8 seconds, the sender tries a handful of times
    (exponential backoff) instead of hammering it, then delivers everything once it is up."""
    lstrace.configure(batch_size=100, flush_interval=0.1, max_backoff=60.0)
    proxy.down("503")
    sent = _capture(title, proxy.url, 50)
    time.sleep(8)
    tries_while_down = sum(proxy.counts.values())
    proxy.up()
    result = lstrace.flush(timeout=60)

    assert 2 <= tries_while_down <= 8, proxy.log  # hammering would be ~80 (every 0.1 s)
    assert result.pending == 0
    assert sorted(sqlite_server.run_ids(title).elements()) == sorted(sent)


def test_wrong_token_is_reported_once_and_tasks_wait_for_the_right_one(
    sqlite_server: LiveServer, title: str, caplog: pytest.LogCaptureFixture, lstrace_state: Any
) -> None:
    """A refused API key is logged once, as an error that names the server, the project and
    the fix, without the key; the tasks stay in the spool and are delivered once
    ``enable()`` gives the right key."""
    wrong = "f" * 40
    model = fake_chat()
    with lstrace.ls_session(project_name=title, api_key=wrong):
        sent = [call(model) for _ in range(50)]
    started = time.monotonic()
    result = lstrace.flush(timeout=20)
    waited = time.monotonic() - started
    errors = [r for r in caplog.records if r.name == "lstrace" and r.levelno >= logging.ERROR]
    lstrace.flush(timeout=1)  # a second flush does not repeat the report
    errors_after = [r for r in caplog.records if r.name == "lstrace" and r.levelno >= logging.ERROR]

    assert result.pending == 50 and waited < 15  # returns early: waiting cannot help
    assert spool_rows(lstrace_state) == 50
    assert len(errors) == len(errors_after) == 1
    text = errors[0].getMessage()
    assert sqlite_server.url in text and title in text
    assert "LABEL_STUDIO_API_KEY" in text and "api_key" in text
    assert all(wrong not in r.getMessage() for r in caplog.records)
    assert all(sqlite_server.token not in r.getMessage() for r in caplog.records)

    lstrace.enable(project_name=title, api_key=sqlite_server.token)
    result = lstrace.flush(timeout=60)

    assert result.pending == 0
    assert sorted(sqlite_server.run_ids(title).elements()) == sorted(sent)
    assert spool_rows(lstrace_state) == 0


def test_missing_project_id_is_reported_once_and_tasks_stay(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture, lstrace_state: Any
) -> None:
    """Tasks for a project id the server does not have are kept in the spool, and one error
    names the server, the project id and what to check; flush() does not wait it out."""
    model = fake_chat()
    with lstrace.ls_session(project_id=987654):
        for _ in range(10):
            call(model)
    started = time.monotonic()
    result = lstrace.flush(timeout=20)
    lstrace.flush(timeout=1)

    assert result.pending == 10 and time.monotonic() - started < 15
    assert spool_rows(lstrace_state) == 10
    errors = [r for r in caplog.records if r.name == "lstrace" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    text = errors[0].getMessage()
    assert live_server.url in text and "987654" in text and "project_id" in text
