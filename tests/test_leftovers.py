"""Other servers' leftovers stay quiet (issue 9.7): a process reports and waits only for
what it captured, or can send. Tasks an earlier process left for a server this process
never uses stay in the spool, unowned, listed by ``lstrace status``; they are neither
announced as this process's loss nor counted in ``FlushResult.pending``.

Both "processes" run in this test, one after the other, with ``lstrace._process.reset()``
in between (a clean exit: the rows are handed back to the spool). Neither server answers.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE

import pytest
from langchain_core.language_models import FakeListLLM

import lstrace
from lstrace import _process
from lstrace._delivery import worker as _worker
from lstrace._delivery.spool import _host
from lstrace._export.spoolview import look
from tests.spooled import live_calls
from tests.waiting import wait_for

ELSEWHERE = "http://127.0.0.1:9"  # the server the earlier process used
HERE = "http://127.0.0.1:7"  # the server this process uses


def rows_in(spool: Path) -> int:
    """Live rows in the spool file, whoever owns them."""
    if not spool.exists():
        return 0
    try:
        with sqlite3.connect(spool) as db:
            return live_calls(db)
    except sqlite3.OperationalError:  # the worker is still creating the file's tables
        return 0


def _capture(url: str, prompt: str) -> None:
    with lstrace.ls_session(project_name="leftovers", url=url):
        FakeListLLM(responses=["ok"]).invoke(prompt)


def test_rows_left_for_another_server_are_not_this_processs_loss(
    lstrace_state: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second process waits for and reports its own task only: pending is 1, not 2;
    nothing is logged about the other server; the exit line counts 1; status lists both."""
    _capture(ELSEWHERE, "left by an earlier process")
    wait_for(lambda: rows_in(lstrace_state) == 1, "the earlier process's row")
    _process.reset()  # that process ends; its row goes back to the spool, unowned
    lstrace.configure(spool_path=lstrace_state, flush_interval=3600)
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="lstrace")

    _capture(HERE, "this process's own call")
    wait_for(lambda: rows_in(lstrace_state) == 2, "this process's row")
    result = lstrace.flush(timeout=3)
    stats = lstrace.stats()
    exit_result = _worker.shutdown(timeout=1, report=True)

    assert result.pending == stats.pending == 1
    assert exit_result is not None and exit_result.pending == 1
    assert ELSEWHERE not in caplog.text  # not adopted, not retried, not announced
    [exit_line] = capsys.readouterr().err.splitlines()
    assert exit_line.startswith("lstrace: 1 tasks were not yet delivered")
    places = {url: n for url, _, n in look(lstrace_state).by_destination}
    assert places == {ELSEWHERE: 1, HERE: 1}  # lstrace status still lists both


def test_a_key_for_that_server_takes_the_rows_over(lstrace_state: Path) -> None:
    """Once this process enters a scope for the other server, the rows left there are
    its to send: they count as pending."""
    _capture(ELSEWHERE, "left by an earlier process")
    wait_for(lambda: rows_in(lstrace_state) == 1, "the earlier process's row")
    _process.reset()
    lstrace.configure(spool_path=lstrace_state, flush_interval=3600)

    _capture(HERE, "this process's own call")
    assert lstrace.flush(timeout=3).pending == 1
    _capture(ELSEWHERE, "now this process uses that server too")
    wait_for(lambda: lstrace.stats().pending == 3, "the left row to be taken over")


def test_rows_of_a_process_that_ended_are_taken_over_at_the_next_owner_check(
    lstrace_state: Path,
) -> None:
    """Another process sharing the spool ends while this one runs (issue 12.9): its rows
    are taken over at the sender's once-a-second owner check, not at the next heartbeat
    (up to 10 s); the sender wakes once a second for it only while others are registered."""
    _capture(HERE, "this process's own call")
    wait_for(lambda: rows_in(lstrace_state) == 1, "this process's row")
    worker = _worker.running()
    assert worker is not None
    worker._watch_owners(time.time() + 2)
    assert worker._wait_time() == 10.0  # alone in the spool: the heartbeat's pace
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=PIPE)
    with sqlite3.connect(lstrace_state) as db:
        db.execute(
            "INSERT INTO owners VALUES ('other', ?, ?, ?)", (other.pid, _host(), time.time())
        )
        db.execute(
            "INSERT INTO tasks (dest, run_id, body, created, owner) SELECT dest, 'left',"
            " body, created, 'other' FROM tasks WHERE owner = ?",
            (worker.owner,),
        )
    worker._watch_owners(time.time() + 4)
    assert worker._wait_time() <= 1.0
    assert owner_of(lstrace_state, "left") == "other"  # that process still runs
    assert other.stdin is not None
    other.stdin.close()
    other.wait()
    worker._watch_owners(time.time() + 6)
    assert owner_of(lstrace_state, "left") == worker.owner
    worker._watch_owners(time.time() + 8)
    assert worker._wait_time() == 10.0  # alone again


def owner_of(spool: Path, run_id: str) -> str | None:
    with sqlite3.connect(spool) as db:
        [(owner,)] = db.execute("SELECT owner FROM tasks WHERE run_id = ?", (run_id,)).fetchall()
    return str(owner) if owner is not None else None
