"""Faults at the spool never cost more than the call they concern, and never reach the app.

These tests run without an API key, so nothing is sent: what they check is what the
spool kept, what the counters say, and that the public functions do not raise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest
from langchain_core.language_models import FakeListLLM

import lstrace
from lstrace._delivery import worker as _worker
from lstrace._delivery.spool import Spool
from lstrace._labelconfig import DEFAULT_CONFIGS
from lstrace._options import Destination
from tests.spooled import held_calls, settle, spooled
from tests.waiting import eventually

T = TypeVar("T")


@pytest.fixture(autouse=True)
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key: the sender holds every destination, so rows stay in the spool to inspect."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")


def test_a_value_json_cannot_hold_costs_only_its_own_call(lstrace_state: Path) -> None:
    """A call whose run tags hold bytes cannot be stored as JSON: it alone is counted as
    failed (convert, with the error's name); the calls spooled with it in the same chunk
    are kept."""
    llm = FakeListLLM(responses=["fine", "bad", "fine too"])
    with lstrace.ls_session(project_name="spool faults: bytes"):
        llm.invoke("first", config={"run_id": UUID(int=1)})
        # bytes where LangChain types str: a value JSON cannot hold, the test's point
        llm.invoke("second", config={"run_id": UUID(int=2), "tags": [b"x"]})  # type: ignore[arg-type]
        llm.invoke("third", config={"run_id": UUID(int=3)})
    rows = spooled(lstrace_state, 2)
    assert [r["run_id"] for r in rows] == [str(UUID(int=1)), str(UUID(int=3))]
    stats = eventually(lstrace.stats, lambda s: s.spooled == 2, "2 spooled calls")
    assert (stats.captured, stats.pending) == (3, 2)
    assert stats.failed == 1
    assert stats.failed_by_reason == {"convert:TypeError": 1}


def in_a_new_thread(fn: Callable[[], T]) -> T:
    """``fn()`` run on a thread of its own (a thread that never used the spool before),
    its exception re-raised here."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    if errors:
        raise errors[0]
    assert result, "the call did not return in 120 s"
    return result[0]


def test_deleting_the_spool_never_makes_stats_flush_or_the_exit_flush_raise(
    lstrace_state: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The spool file is deleted under a running process: stats(), flush() and the exit
    flush, called from any thread, return (with the last pending count known) instead of
    raising sqlite3 errors; one warning says the spool cannot be read."""
    llm = FakeListLLM(responses=["kept"])
    with lstrace.ls_session(project_name="spool faults: deleted"):
        for n in range(3):
            llm.invoke(f"call {n}", config={"run_id": UUID(int=10 + n)})
    spooled(lstrace_state, 3)
    assert settle(3).pending == 3
    for path in lstrace_state.parent.glob(lstrace_state.name + "*"):
        path.unlink()
    with caplog.at_level(logging.WARNING, logger="lstrace"):
        stats = in_a_new_thread(lstrace.stats)
        result = in_a_new_thread(lambda: lstrace.flush(1))
        in_a_new_thread(_worker._at_exit)
    assert stats.pending == 3 and result.pending == 3
    assert "Traceback" not in capsys.readouterr().err
    warnings = [r.getMessage() for r in caplog.records if "cannot read the spool" in r.getMessage()]
    assert len(warnings) == 1, warnings


def _full_disk_child(spool: Path, *args: str) -> dict[str, Any]:
    """Run tests/full_disk_child.py (a spool file that cannot grow) and check what holds
    in every mode: all 1,001 calls captured and delivered once, nothing failed or pending,
    no traceback, one ERROR from lstrace's threads only. Returns the child's report."""
    child = subprocess.run(
        [sys.executable, "-m", "tests.full_disk_child", *args, str(spool), "1000"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["captured"] == 1001 and report["failed"] == {}, report
    assert (report["arrived"], report["imported"], report["pending"]) == (1001, 1001, 0), report
    assert report["tracebacks"] == 0, child.stderr[-3000:]
    [error] = [e for e in report["errors"] if "cannot write to the spool" in e]
    assert "kept in memory" in error
    assert report["threads"] and all(t.startswith("lstrace") for t in report["threads"]), report
    return report


def test_a_spool_that_cannot_grow_keeps_delivering_from_memory(tmp_path: Path) -> None:
    """Disk full (issue 12.2): the spool file cannot grow, so the calls the file cannot
    take are kept in memory and delivered from there, every one exactly once; one ERROR
    from a background thread says so, no traceback, nothing is counted as lost."""
    _full_disk_child(tmp_path / "spool.sqlite3")


def test_a_spool_that_cannot_grow_keeps_delivering_traces_from_memory(tmp_path: Path) -> None:
    """Disk full in trace mode (issue 12.2): the steps the file cannot take are kept in
    memory and every trace whose root ends becomes its task, with all its steps, delivered
    once; one ERROR from a background thread says so, no traceback, nothing lost."""
    report = _full_disk_child(tmp_path / "spool.sqlite3", "--trace")
    assert report["steps"] == [2], report


@contextlib.contextmanager
def _disk_full_tx(self: Spool) -> Iterator[sqlite3.Connection]:
    """Stands for ``Spool._tx`` on a full disk: every transaction fails to start."""
    raise sqlite3.OperationalError("database or disk is full")
    yield  # pragma: no cover - a generator, like the method it stands for


def test_a_trace_that_ends_while_the_disk_is_full_becomes_a_task_held_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trace whose first step reached the file, whose second did not (the disk filled
    up), and whose root ends while it is full: its task is built from both steps, in order,
    and held in memory; the file's step is never sent again as an incomplete trace, and
    is deleted once the file takes writes again."""
    dest = Destination("http://127.0.0.1:1", None, "full", DEFAULT_CONFIGS["chat"], "chat")
    spool = Spool(tmp_path / "spool.sqlite3", "me")
    spool.add_steps([(dest, "root", 1, {"kind": "model", "seq": 1})])
    writes = Spool._tx

    monkeypatch.setattr(Spool, "_tx", _disk_full_tx)
    assert spool.add_steps([(dest, "root", 2, {"kind": "tool", "seq": 2})]) == 1
    assert [root for _, root, _, _ in spool.open_traces()] == ["root"]
    seen: list[str] = []

    def build(steps: Iterator[tuple[int, str]]) -> dict[str, Any]:
        seen.extend(json.loads(body)["kind"] for _, body in steps)
        return {"run_id": "root", "kind": "trace"}

    assert spool.close_trace(dest, "root", build) is True
    assert seen == ["model", "tool"]
    assert [row.run_id for row in spool.take(dest, 10)] == ["root"]
    assert spool.count(mine=True) == 1
    assert spool.count_steps() == 1  # still in the file, which takes no writes
    assert spool.open_traces() == []  # already a task: not swept as incomplete
    monkeypatch.setattr(Spool, "_tx", writes)
    spool._retry_write_at = 0.0  # the next retry is due
    assert spool.open_traces() == []
    assert spool.count_steps() == 0


def test_trace_steps_go_to_the_file_again_as_soon_as_it_takes_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the held task rows moved into the file (the disk has room again), the next
    trace step is written to the file too, not held in memory for the retry interval
    (where a crash would lose it)."""
    dest = Destination("http://127.0.0.1:1", None, "room", DEFAULT_CONFIGS["chat"], "chat")
    spool = Spool(tmp_path / "spool.sqlite3", "me")
    writes = Spool._tx

    monkeypatch.setattr(Spool, "_tx", _disk_full_tx)
    assert spool.add([(dest, {"run_id": "held", "prompt": "p"})]) == 1  # held in memory
    monkeypatch.setattr(Spool, "_tx", writes)
    spool._retry_write_at = 0.0  # the next retry is due
    assert spool.add([(dest, {"run_id": "next", "prompt": "p"})]) == 1
    assert [row.run_id for row in spool.take(dest, 10)] == ["held", "next"]  # both in the file
    spool.add_steps([(dest, "root", 1, {"kind": "model", "seq": 1})])
    assert spool.count_steps() == 1


def test_pending_never_counts_a_call_twice_while_it_moves_to_the_spool() -> None:
    """stats().pending, read over and over while calls move from the queue to the spool,
    never exceeds the number of calls made (issue 12.9: it read 612 for 500 calls), and
    ends at exactly that number."""
    llm = FakeListLLM(responses=["kept"])
    readings: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            readings.append(lstrace.stats().pending)

    reader = threading.Thread(target=read)
    with lstrace.ls_session(project_name="spool faults: pending"):
        llm.invoke("opens the spool")
        spooled_before = eventually(
            lstrace.stats, lambda s: s.spooled == 1, "the first call spooled"
        )
        assert spooled_before.pending == 1
        reader.start()
        try:
            for n in range(1500):
                llm.invoke(f"call {n}")
            final = eventually(lstrace.stats, lambda s: s.spooled == 1501, "1,501 spooled calls")
        finally:
            done.set()
            reader.join()
    assert final.pending == 1501
    assert readings and max(readings) <= 1501, max(readings)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_child_of_every_start_method_runs_the_exit_flush(tmp_path: Path, method: str) -> None:
    """enable() at import and the calls made in a multiprocessing child (issue 12.3): the
    child's exit flush runs for fork, spawn and forkserver alike, so nothing it captured is
    left in the spool (forkserver children left every call there: the child imported the
    app, and so registered its exit flush, before multiprocessing cleared its finalizers)."""
    spool = tmp_path / "spool.sqlite3"
    child = subprocess.run(
        [sys.executable, "-m", "tests.start_method_app", method, str(spool), "200"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert "Traceback" not in child.stderr, child.stderr[-3000:]
    with contextlib.closing(sqlite3.connect(spool)) as db:
        left = held_calls(db)
    assert left == 0, f"{left} rows left in the spool; stderr: {child.stderr[-2000:]}"


class _CommitFailsOnce:
    """A spool connection whose next COMMIT fails as a full disk makes it fail."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.failed = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT" and not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_a_commit_that_fails_leaves_no_transaction_open(tmp_path: Path) -> None:
    """A COMMIT that fails (a full disk at commit time) is rolled back: the thread's next
    transaction starts (it failed with "cannot start a transaction within a transaction"
    for ever), and what the failed one wrote is not in the file."""
    dest = Destination("http://127.0.0.1:1", None, "commit", DEFAULT_CONFIGS["chat"], "chat")
    spool = Spool(tmp_path / "spool.sqlite3", "owner")
    spool.add([(dest, {"run_id": "r0", "prompt": "q"})])
    [row] = spool.take(dest, 10)
    failing = _CommitFailsOnce(spool._db())
    spool._local.db = failing
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        spool.mark_dead([row.id], "rejected")
    assert failing.failed and not failing.db.in_transaction
    assert spool.count_dead() == 0  # rolled back
    spool.mark_dead([row.id], "rejected")
    assert spool.count_dead() == 1
    spool.close()
