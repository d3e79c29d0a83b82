"""The sender's failure handling, offline, through a fake client that fails on cue (issue 10.4).

Backoff, Retry-After, splitting a refused batch, the exactly-once check after an
ambiguous failure and held destinations, each in milliseconds: the sender is driven
directly (no threads), with the time it is given (``deliver(now=...)``) standing for
the clock. The same paths are proven against a real Label Studio behind a
fault-injecting proxy in ``tests/live/test_faults.py``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from lstrace._delivery.sender import HOLD_S, Sender
from lstrace._delivery.spool import _SCHEMA, Spool
from lstrace._delivery.stats import Counters
from lstrace._export.spoolview import look
from lstrace._labelconfig import DEFAULT_CONFIGS
from lstrace._options import Destination
from lstrace._secrets import Access
from tests.fakeclient import (
    KEY,
    REFUSED_KEY,
    TIMEOUT_AFTER_ARRIVAL,
    TIMEOUT_LANDS_LATE,
    UNAVAILABLE,
    URL,
    FakeLabelStudio,
    Fault,
    too_many_requests,
)
from tests.test_task import content

TITLE = "offline delivery"
DEST = Destination(URL, None, TITLE, DEFAULT_CONFIGS["prompt"], "prompt")


@pytest.fixture
def server() -> FakeLabelStudio:
    return FakeLabelStudio()


class RowPerCall(Spool):
    """A spool holding each call in a row of its own, as older lstrace versions wrote them
    (and as pairwise calls still are): the failure handling holds for both layouts."""

    def add(self, items: Iterable[tuple[Destination, dict[str, Any]]], *args: Any) -> int:
        return sum(super(RowPerCall, self).add([item], *args) for item in items)


@pytest.fixture(params=["chunk rows", "a row per call"])
def spool(tmp_path: Path, request: pytest.FixtureRequest) -> Spool:
    layout = Spool if request.param == "chunk rows" else RowPerCall
    return layout(tmp_path / "offline.sqlite3", uuid.uuid4().hex)


def make_sender(spool: Spool, server: FakeLabelStudio, **changes: float) -> Sender:
    settings: dict[str, float] = {
        "batch_size": 1000,
        "max_batch_bytes": 8_000_000,
        "request_timeout": 5.0,
        "max_backoff": 60.0,
        **changes,
    }
    sender = Sender(
        spool,
        Counters(),
        batch_size=int(settings["batch_size"]),
        max_batch_bytes=int(settings["max_batch_bytes"]),
        request_timeout=settings["request_timeout"],
        max_backoff=settings["max_backoff"],
        keys={URL: Access(URL, KEY)},
        connect=server.connect,
    )
    sender.reload_backlog()
    return sender


def spool_calls(spool: Spool, sender: Sender, n: int) -> list[str]:
    """Spool ``n`` captured calls for :data:`DEST`; returns their run ids in order."""
    run_ids = [str(uuid.uuid4()) for _ in range(n)]
    added = spool.add((DEST, content(run_id=r, prompt=f"call {i}")) for i, r in enumerate(run_ids))
    sender.note_spooled(DEST, added, time.time())
    return run_ids


def later() -> float:
    """A ``now`` past any backoff or hold (a million seconds from now)."""
    return time.time() + 10**6


def send(sender: Sender, now: float | None = None) -> int:
    """One sending pass as a flush makes it; returns how many calls were confirmed."""
    before = sender.counters.get("delivered")
    sender.deliver(now=time.time() if now is None else now, flush_interval=1, flushing=True)
    return sender.counters.get("delivered") - before


def test_a_503_backs_off_then_the_tasks_arrive_once(spool: Spool, server: FakeLabelStudio) -> None:
    """A 503 on the import keeps the tasks and backs the destination off (nothing is tried
    again before the backoff is over); the next pass after it delivers each task once,
    after asking which of them arrived (a 5xx may have been stored)."""
    sender = make_sender(spool, server)
    run_ids = spool_calls(spool, sender, 5)
    server.fail_imports(UNAVAILABLE)

    assert send(sender) == 0
    state = sender.backoff[DEST.key]
    assert state.attempts == 1
    assert time.time() < state.next_at <= time.time() + sender.base_backoff
    assert send(sender, now=state.next_at - 0.001) == 0  # still backed off: not tried
    assert len(server.imports) == 1
    assert send(sender, now=state.next_at + 0.001) == 5

    assert sorted(server.run_ids(TITLE)) == sorted(run_ids)
    assert [len(ids) for _, ids in server.lookups] == [5]  # the exactly-once check ran
    assert spool.count() == 0
    assert DEST.key not in sender.backoff
    assert sender.counters.get("delivered") == 5 and sender.counters.get("retried") == 5


def test_backoff_grows_exponentially_with_jitter_up_to_max_backoff(
    spool: Spool, server: FakeLabelStudio
) -> None:
    """Each failed attempt waits a random time in [d/2, d], d = 0.5 s doubled per attempt
    and capped at ``max_backoff``; the tasks wait in the spool throughout."""
    sender = make_sender(spool, server, max_backoff=10.0)
    spool_calls(spool, sender, 3)
    server.fail_imports(*[UNAVAILABLE] * 8)
    for attempt in range(1, 9):
        before = time.time()
        assert send(sender, now=later()) == 0
        delay = sender.backoff[DEST.key].next_at - before
        cap = min(10.0, 0.5 * 2 ** (attempt - 1))
        assert cap / 2 - 0.01 <= delay <= cap + 0.5, (attempt, delay)  # 0.5 s: a slow pass
    assert spool.count() == 3
    assert server.run_ids(TITLE) == []


@pytest.mark.parametrize(("asked", "waited"), [(30.0, 30.0), (10_000.0, 300.0)])
def test_retry_after_is_honoured_within_five_times_max_backoff(
    spool: Spool, server: FakeLabelStudio, asked: float, waited: float
) -> None:
    """A 429 with ``Retry-After`` is not retried sooner than the server asked, nor later than
    five times ``max_backoff`` (a server asking for hours does not stop delivery for hours)."""
    sender = make_sender(spool, server)
    spool_calls(spool, sender, 2)
    server.fail_imports(too_many_requests(asked))
    before = time.time()

    assert send(sender) == 0
    next_at = sender.backoff[DEST.key].next_at
    assert before + waited <= next_at <= time.time() + waited
    assert send(sender, now=next_at - 1) == 0 and len(server.imports) == 1
    assert send(sender, now=next_at + 0.001) == 2


def test_a_refused_batch_is_split_until_the_refused_task_is_alone(
    spool: Spool, server: FakeLabelStudio
) -> None:
    """One task the server refuses (400) in a batch of 8: the batch is halved until that
    task is alone; the 7 others arrive, the refused one is set aside (dead, counted as
    failed:rejected:400), and no request but those holding it fails."""
    sender = make_sender(spool, server)
    run_ids = spool_calls(spool, sender, 8)
    server.refuse(run_ids[5])

    assert send(sender) == 7

    assert sorted(server.run_ids(TITLE)) == sorted(set(run_ids) - {run_ids[5]})
    assert [len(i.run_ids) for i in server.imports] == [8, 4, 4, 2, 1, 1, 2]
    assert all(i.failed == (run_ids[5] in i.run_ids) for i in server.imports)
    assert spool.count() == 0 and spool.count_dead() == 1
    assert sender.counters.by_prefix("failed:") == {"rejected:400": 1}
    assert DEST.key not in sender.backoff  # a refused task is no reason to back off


def test_tasks_that_arrived_despite_a_timeout_are_not_sent_again(
    spool: Spool, server: FakeLabelStudio, caplog: pytest.LogCaptureFixture
) -> None:
    """The import's reply is lost (a timeout after the server stored the tasks): the next
    pass asks which run ids the project has, finds all of them and sends nothing again."""
    caplog.set_level(logging.INFO, logger="lstrace")
    sender = make_sender(spool, server)
    run_ids = spool_calls(spool, sender, 4)
    server.fail_imports(TIMEOUT_AFTER_ARRIVAL)

    assert send(sender) == 0
    assert sorted(server.run_ids(TITLE)) == sorted(run_ids)  # stored, but not confirmed
    assert spool.count() == 4
    assert send(sender, now=later()) == 4

    assert len(server.imports) == 1  # not re-sent
    assert sorted(server.run_ids(TITLE)) == sorted(run_ids)  # each once
    assert spool.count() == 0
    assert "4 calls had arrived despite a failed attempt" in caplog.text


def test_only_what_did_not_arrive_is_asked_about_and_sent_again(
    spool: Spool, server: FakeLabelStudio
) -> None:
    """One import body per task (``max_batch_bytes``): the first two are stored, the third
    times out without arriving. The retry asks about the third task only (the fourth was
    never tried) and sends the third and the fourth, so every task arrives once."""
    sender = make_sender(spool, server, max_batch_bytes=1)
    run_ids = spool_calls(spool, sender, 4)
    server.fail_imports(None, None, Fault(UNAVAILABLE.kind, None, maybe_sent=True))

    assert send(sender) == 2
    assert spool.count() == 2
    assert send(sender, now=later()) == 2

    project_id = next(iter(server.projects))
    assert server.lookups == [(project_id, (run_ids[2],))]
    tried = [run_ids[0], run_ids[1], run_ids[2], run_ids[2], run_ids[3]]
    assert [i.run_ids for i in server.imports] == [(r,) for r in tried]
    assert sorted(server.run_ids(TITLE)) == sorted(run_ids)


def test_deliver_returns_what_earlier_chunks_confirmed_when_a_later_chunk_fails(
    spool: Spool, server: FakeLabelStudio
) -> None:
    """A batch split into chunks (``max_batch_bytes``) whose third chunk fails: deliver()
    still returns the two calls the first two chunks confirmed (as the counter does), and
    only the two calls kept in the spool count as retried."""
    sender = make_sender(spool, server, max_batch_bytes=1)
    spool_calls(spool, sender, 4)
    server.fail_imports(None, None, UNAVAILABLE)

    now = time.time()
    assert sender.deliver(now=now, flush_interval=1, flushing=True) == 2
    assert sender.counters.get("delivered") == 2
    assert sender.counters.get("retried") == 2 and spool.count() == 2
    assert sender.deliver(now=later(), flush_interval=1, flushing=True) == 2


def test_a_refused_key_is_held_reported_once_and_retried_at_once_for_a_new_key(
    spool: Spool, server: FakeLabelStudio, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 holds the destination for a minute and logs one ERROR however often it
    recurs; a new key (``retry_held``) makes the next pass try at once, and report again."""
    caplog.set_level(logging.ERROR, logger="lstrace")
    sender = make_sender(spool, server)
    spool_calls(spool, sender, 3)
    server.fail_imports(REFUSED_KEY, REFUSED_KEY)

    before = time.time()
    assert send(sender) == 0
    assert sender.backoff[DEST.key].next_at >= before + HOLD_S
    assert send(sender, now=later()) == 0
    assert len([r for r in caplog.records if "HTTP 401" in r.getMessage()]) == 1

    sender.retry_held()
    assert send(sender) == 3
    assert spool.count() == 0


def test_lone_surrogates_are_replaced_and_every_task_delivered(
    spool: Spool, server: FakeLabelStudio, caplog: pytest.LogCaptureFixture
) -> None:
    """A lone surrogate in a prompt, a response or a metadata value cannot be encoded as
    UTF-8 (issue 12.4): the task is sent with U+FFFD in its place, in the same import as the
    calls around it, with one warning; nothing is set aside or retried."""
    sender = make_sender(spool, server)
    bad = {
        "prompt": content(run_id="r-prompt", prompt="prompt \udfff case"),
        "response": content(run_id="r-response", responses=["bad \ud800 answer"]),
        "metadata": content(run_id="r-metadata", metadata={"k": "v\ud83d"}),
        "plain": content(run_id="r-plain", prompt="plain question"),
    }
    sender.note_spooled(DEST, spool.add((DEST, c) for c in bad.values()), time.time())
    with caplog.at_level(logging.WARNING, logger="lstrace"):
        assert send(sender) == 4
    assert sorted(server.run_ids(TITLE)) == ["r-metadata", "r-plain", "r-prompt", "r-response"]
    [project] = server.projects.values()
    tasks = {t["data"]["run_id"]: t for t in project.tasks}
    assert tasks["r-prompt"]["data"]["prompt"] == "prompt \ufffd case"
    assert "bad \ufffd answer" in json.dumps(tasks["r-response"], ensure_ascii=False)
    assert "v\ufffd" in json.dumps(tasks["r-metadata"]["data"], ensure_ascii=False)
    assert tasks["r-plain"]["data"]["prompt"] == "plain question"
    assert sender.counters.get("failed") == 0 and spool.count_dead() == 0 and spool.count() == 0
    warnings = [r.getMessage() for r in caplog.records if "surrogate" in r.getMessage()]
    assert len(warnings) == 1, warnings


def test_delivered_is_counted_before_the_rows_leave_the_spool(
    spool: Spool, server: FakeLabelStudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flush() stops once nothing of this process is pending and reports what the
    delivered counter gained: a row deleted before it is counted would let a flush see
    ``delivered=0, pending=0`` for a call that arrived. At every delete (a confirmed import,
    and an ambiguous attempt found to have arrived) the counter already counts the rows."""
    sender = make_sender(spool, server)
    seen: list[tuple[int, int]] = []
    real_delete = spool.delete

    def watched(ids: Iterable[int]) -> None:
        rows = list(ids)
        seen.append((len(rows), sender.counters.get("delivered")))
        real_delete(rows)

    monkeypatch.setattr(spool, "delete", watched)
    spool_calls(spool, sender, 3)
    assert send(sender) == 3
    spool_calls(spool, sender, 2)
    server.fail_imports(TIMEOUT_AFTER_ARRIVAL)
    assert send(sender) == 0
    assert send(sender, now=later()) == 2
    assert seen == [(3, 3), (2, 5)]


# -- duplicates from a slow server (issue 12.5): the batch sent again is checked later ------


def held_then_sent_again(spool: Spool, server: FakeLabelStudio, n: int) -> tuple[Sender, list[str]]:
    """``n`` calls whose import times out while the server still holds it (it lands only on
    ``server.land_late()``); the next pass finds none of them there and sends them again."""
    sender = make_sender(spool, server, request_timeout=2.0)
    run_ids = spool_calls(spool, sender, n)
    server.fail_imports(TIMEOUT_LANDS_LATE)
    assert send(sender) == 0
    assert server.run_ids(TITLE) == []  # still held by the slow server
    retry_at = sender.backoff[DEST.key].next_at + 0.001
    assert send(sender, now=retry_at) == n  # checked first, found nothing, sent again
    assert server.copy_lookups == []  # no duplicate check yet: not due
    return sender, run_ids


def task_ids(server: FakeLabelStudio) -> dict[str, list[int]]:
    """Task ids by run id, lowest first."""
    [project] = server.projects.values()
    found: dict[str, list[int]] = {}
    for task in sorted(project.tasks, key=lambda t: int(t["id"])):
        found.setdefault(task["data"]["run_id"], []).append(int(task["id"]))
    return found


def test_an_import_that_lands_after_the_batch_was_sent_again_is_repaired(
    spool: Spool, server: FakeLabelStudio, caplog: pytest.LogCaptureFixture
) -> None:
    """The held import lands after the batch was sent again: every task twice. The check
    the sender makes once the server answered again (request_timeout after the re-send)
    deletes the later copies and keeps the oldest (lowest id), counted and logged once;
    the batch stays remembered for the grace check, which finds nothing more to do."""
    caplog.set_level(logging.INFO, logger="lstrace")
    sender, run_ids = held_then_sent_again(spool, server, 5)
    kept = {run_id: ids[0] for run_id, ids in task_ids(server).items()}
    assert server.land_late() == 5
    assert sorted(server.run_ids(TITLE)) == sorted(run_ids * 2)
    assert spool.count_rechecks() == 1

    soon = time.time() + sender.repair.first + 1  # the first check, well before the grace one
    send(sender, now=soon)

    assert {run_id: ids for run_id, ids in task_ids(server).items()} == {
        r: [kept[r]] for r in run_ids
    }
    assert sender.counters.get("duplicates_removed") == 5
    assert spool.count_rechecks() == 1  # the grace check is still to come
    repaired = [r for r in caplog.records if "deleted 5 duplicate tasks" in r.getMessage()]
    assert len(repaired) == 1 and repaired[0].levelno == logging.WARNING

    send(sender, now=later())  # the grace check: nothing more to delete, then forgotten
    assert spool.count_rechecks() == 0
    assert sorted(server.run_ids(TITLE)) == sorted(run_ids)
    assert sender.counters.get("duplicates_removed") == 5
    assert len(server.deleted) == 5


def test_the_grace_check_repairs_an_import_that_lands_after_the_first_check(
    spool: Spool, server: FakeLabelStudio
) -> None:
    """The held import lands only after the first check found every task once: the grace
    check (``grace(request_timeout)`` after the re-send) deletes the copies."""
    sender, run_ids = held_then_sent_again(spool, server, 3)
    send(sender, now=time.time() + sender.repair.first + 1)
    assert len(server.copy_lookups) == 1 and server.deleted == []
    server.land_late()

    send(sender, now=time.time() + sender.repair.grace + 1)

    assert sorted(server.run_ids(TITLE)) == sorted(run_ids)
    assert sender.counters.get("duplicates_removed") == 3
    assert spool.count_rechecks() == 0


def test_an_annotated_copy_is_never_deleted(
    spool: Spool, server: FakeLabelStudio, caplog: pytest.LogCaptureFixture
) -> None:
    """Annotations are never deleted: of a run's copies every annotated one is kept (the
    unannotated copy goes, even the oldest); two annotated copies of one run are both kept,
    counted as ``duplicates_annotated`` and logged once (by the batch's last check); a run
    nobody annotated keeps its oldest."""
    caplog.set_level(logging.INFO, logger="lstrace")
    sender, run_ids = held_then_sent_again(spool, server, 3)
    server.land_late()
    copies = task_ids(server)
    late = server.annotate(run_ids[0], copy=1)  # the copy that landed late
    both = [server.annotate(run_ids[1], copy=0), server.annotate(run_ids[1], copy=1)]

    send(sender, now=time.time() + sender.repair.first + 1)  # the first check
    send(sender, now=later())  # the last: the annotated pair is seen again, counted once

    assert task_ids(server) == {
        run_ids[0]: [late],
        run_ids[1]: both,
        run_ids[2]: copies[run_ids[2]][:1],
    }
    assert sorted(server.deleted) == [copies[run_ids[0]][0], copies[run_ids[2]][1]]
    assert sender.counters.get("duplicates_removed") == 2
    assert sender.counters.get("duplicates_annotated") == 1
    kept = [r for r in caplog.records if "were annotated and are kept" in r.getMessage()]
    assert len(kept) == 1 and "1 duplicate tasks in" in kept[0].getMessage()


@pytest.mark.parametrize("restart", ["before the re-send", "before the repair"])
def test_a_restart_between_the_attempt_and_the_repair_still_repairs(
    tmp_path: Path, server: FakeLabelStudio, restart: str
) -> None:
    """The process ends (its rows handed back to the spool) after the ambiguous attempt, or
    after the re-send: the next process, taking over the spool, sends the batch again or
    checks it, and deletes the copy that landed late. The batch to check lives in the spool."""
    path = tmp_path / "restart.sqlite3"
    first = Spool(path, uuid.uuid4().hex)
    sender = make_sender(first, server, request_timeout=2.0)
    run_ids = spool_calls(first, sender, 4)
    server.fail_imports(TIMEOUT_LANDS_LATE)
    assert send(sender) == 0
    if restart == "before the repair":
        assert send(sender, now=sender.backoff[DEST.key].next_at + 0.001) == 4
        server.land_late()
    first.release()
    first.close()

    second = Spool(path, uuid.uuid4().hex)
    assert second.adopt_orphans({URL}) == (4 if restart == "before the re-send" else 0)
    successor = make_sender(second, server, request_timeout=2.0)
    if restart == "before the re-send":
        assert send(successor) == 4
        server.land_late()
    assert sorted(server.run_ids(TITLE)) == sorted(run_ids * 2)

    send(successor, now=later())

    assert sorted(server.run_ids(TITLE)) == sorted(run_ids)
    assert successor.counters.get("duplicates_removed") == 4
    assert second.count_rechecks() == 0


def test_a_failing_check_is_retried_later_and_expires_with_a_count(
    spool: Spool, server: FakeLabelStudio
) -> None:
    """A check that fails (the server down) is retried after a backoff, not at every pass;
    a batch that still cannot be checked a day after the re-send is given up, counted as
    ``duplicate_checks_expired``. Delivery itself goes on meanwhile."""
    sender, _ = held_then_sent_again(spool, server, 2)
    server.down = True
    soon = time.time() + sender.repair.first + 1
    send(sender, now=soon)
    [recheck] = spool.rechecks()
    assert recheck.failures == 1 and recheck.due >= soon + 5
    assert spool.count_rechecks() == 1

    send(sender, now=later())  # a million seconds later, still down

    assert spool.count_rechecks() == 0
    assert sender.counters.get("duplicate_checks_expired") == 1
    assert sender.counters.get("duplicates_removed") == 0


def test_only_batches_sent_again_after_an_ambiguous_attempt_are_checked(
    spool: Spool, server: FakeLabelStudio
) -> None:
    """No duplicate check after a clean import, after a failure that sent nothing (a 429),
    or when the tasks of an ambiguous attempt were found there (nothing was sent again)."""
    sender = make_sender(spool, server)
    spool_calls(spool, sender, 2)
    assert send(sender) == 2
    spool_calls(spool, sender, 2)
    server.fail_imports(too_many_requests(1.0))
    send(sender)
    assert send(sender, now=later()) == 2
    spool_calls(spool, sender, 2)
    server.fail_imports(TIMEOUT_AFTER_ARRIVAL)
    send(sender)
    assert send(sender, now=later()) == 2

    send(sender, now=later())
    assert spool.count_rechecks() == 0 and server.copy_lookups == []


def test_a_batch_whose_re_send_failed_is_checked_again_before_the_next_send(
    spool: Spool, server: FakeLabelStudio
) -> None:
    """The re-send after an ambiguous attempt fails without reaching the server (connection
    refused), and the held import lands meanwhile: the rows keep their "may have arrived"
    mark, so the next attempt asks again, finds them, and sends nothing twice."""
    sender = make_sender(spool, server, request_timeout=2.0)
    run_ids = spool_calls(spool, sender, 3)
    server.fail_imports(TIMEOUT_LANDS_LATE, Fault(UNAVAILABLE.kind, None, maybe_sent=False))
    assert send(sender) == 0
    assert send(sender, now=later()) == 0  # checked, sent again, refused before arriving
    server.land_late()

    assert send(sender, now=later()) == 3

    assert len(server.imports) == 2 and len(server.lookups) == 2
    assert sorted(server.run_ids(TITLE)) == sorted(run_ids)


def test_status_shows_batches_waiting_for_a_duplicate_check(
    spool: Spool, server: FakeLabelStudio
) -> None:
    """``lstrace status`` says how many batches still wait for a duplicate check (the
    process that sent them again ended first, say), and a spool from before the checks
    existed reads as none."""
    held_then_sent_again(spool, server, 2)
    assert spool.path is not None
    assert "1 batches sent again after an ambiguous import" in look(spool.path).line()

    old = spool.path.with_name("old.sqlite3")
    with sqlite3.connect(old) as db:
        db.executescript(_SCHEMA.split("-- Batches sent again")[0])
    assert look(old).rechecks == 0 and "duplicates" not in look(old).line()
