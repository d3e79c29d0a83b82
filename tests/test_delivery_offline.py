"""Delivery through the whole worker with no Label Studio (issue 10.4): the spool on disk, a
server that goes away and comes back, and what a process says at exit.

The worker's threads run as in an application; the server is the fake of
``tests/fakeclient.py`` (``down`` while it is "stopped"), or, for the exit lines, a
port that refuses connections. Each waits on conditions with generous deadlines
(``flush(timeout=...)`` returns as soon as nothing is pending). The live tier proves the
same against a real Label Studio (``tests/live/test_outages.py``).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import weakref
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import FakeListLLM, GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage

import lstrace
from lstrace._capture import record as _record
from lstrace._delivery import worker as _worker
from lstrace._delivery.spool import Spool
from tests.fakeclient import KEY, URL, FakeLabelStudio
from tests.spooled import live_calls, spooled
from tests.waiting import PATIENCE, wait_for

CHILD = Path(__file__).resolve().parent / "live" / "child_capture.py"
REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-lstrace-test-secret-0123456789abcdef"  # a key nobody may write down


@pytest.fixture
def server(lstrace_state: Path) -> FakeLabelStudio:
    """A fake Label Studio the worker's sender talks to (fast retries: max_backoff 0.5 s)."""
    fake = FakeLabelStudio()
    _worker.configure(spool_path=lstrace_state, connect=fake.connect, max_backoff=0.5)
    return fake


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A local port that refuses connections: bound, never listening (no race for it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def capture(n: int, *, api_key: str = KEY, project: str = "offline") -> list[str]:
    """Make ``n`` LLM calls inside a scope for the fake server; returns their prompts."""
    prompts = [f"question {i}" for i in range(n)]
    llm = FakeListLLM(responses=["an answer"])
    with lstrace.ls_session(project_name=project, url=URL, api_key=api_key):
        for prompt in prompts:
            llm.invoke(prompt)
    return prompts


def spool_files(spool: Path) -> list[Path]:
    return [p for p in (spool, Path(f"{spool}-wal"), Path(f"{spool}-shm")) if p.exists()]


def test_spool_file_and_directory_are_private(tmp_path: Path, server: FakeLabelStudio) -> None:
    """The spool file, its WAL and shared-memory files are mode 0600 and a directory that
    lstrace creates for it is mode 0700, so other local users cannot read captured calls."""
    spool = tmp_path / "new" / "dir" / "spool.sqlite3"
    _worker.configure(spool_path=spool)
    server.down = True
    capture(20)
    spooled(spool, 20, timeout=PATIENCE)

    assert lstrace.flush(timeout=1).pending == 20
    files = spool_files(spool)
    assert len(files) >= 2  # the database and its WAL at least
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(0o600)}
    assert stat.S_IMODE(spool.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("delivered", [False, True], ids=["server-down", "delivered"])
def test_no_api_key_in_the_spool_files(
    lstrace_state: Path, server: FakeLabelStudio, delivered: bool
) -> None:
    """No API key is ever written to the spool: not while tasks wait for a server that is
    down, not after they were delivered (when SQLite pages may still hold old rows)."""
    server.down = not delivered
    capture(30, api_key=SECRET)
    if not delivered:
        spooled(lstrace_state, 30, timeout=PATIENCE)
    result = lstrace.flush(timeout=PATIENCE if delivered else 1)
    wait_for(lambda: server.keys, "the sender to use the key")

    assert result.pending == (0 if delivered else 30)
    assert set(server.keys) == {SECRET}
    files = spool_files(lstrace_state)
    assert files
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


def test_a_server_that_comes_back_gets_every_task_once(server: FakeLabelStudio) -> None:
    """Calls captured while the server is down wait in the spool (flush says so); once it
    is back, the retries deliver every one exactly once."""
    server.down = True
    prompts = capture(50)
    assert lstrace.flush(timeout=1).pending == 50
    wait_for(lambda: lstrace.stats().retried > 0, "a failed attempt")
    assert lstrace.stats().pending == 50

    server.down = False
    result = lstrace.flush(timeout=PATIENCE)

    assert result.pending == 0
    arrived = server.run_ids("offline")
    assert len(arrived) == 50 and max(Counter(arrived).values()) == 1
    assert lstrace.stats().delivered == 50
    assert len(prompts) == 50


def test_exit_flush_prints_one_line_when_tasks_are_left(tmp_path: Path, refused_port: int) -> None:
    """A process that exits while Label Studio is unreachable prints exactly one line on
    stderr: how many tasks wait in the spool, where, and that `lstrace sync` sends them."""
    spool = tmp_path / "exit.sqlite3"
    out, err = _child_exit(spool, refused_port)

    assert len(out.splitlines()) == 20
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "20 tasks" in lines[0] and "lstrace sync" in lines[0] and str(spool) in lines[0]
    with sqlite3.connect(spool) as db:
        assert live_calls(db) == 20


def test_exit_line_says_tasks_are_lost_when_no_spool_file_could_be_opened(
    tmp_path: Path, refused_port: int
) -> None:
    """When the spool file cannot be created (its directory is a file), lstrace keeps tasks in
    memory only; exiting with some undelivered says they are lost and how to fix the spool
    path, never that `lstrace sync` will send them."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    out, err = _child_exit(blocker / "spool.sqlite3", refused_port)

    assert len(out.splitlines()) == 20
    (exit_line,) = [line for line in err.splitlines() if "not delivered" in line]
    assert "20 tasks" in exit_line and "lost" in exit_line and "spool_path" in exit_line
    assert "lstrace sync" not in err


def _child_exit(spool: Path, port: int) -> tuple[str, str]:
    """Run a process that captures 20 calls for a server at ``port`` and exits normally."""
    proc = subprocess.run(
        [sys.executable, str(CHILD), "exit", "--spool", str(spool),
         "--url", f"http://127.0.0.1:{port}", "--key", "0" * 40, "--title", "exit-test",
         "--n", "20", "--shutdown-timeout", "1"],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr


def test_exit_line_does_not_call_tasks_undelivered_while_their_import_is_in_flight(
    server: FakeLabelStudio, capsys: pytest.CaptureFixture[str]
) -> None:
    """The exit flush gives up while an import is still in flight (issue 12.9: the line
    said "500 tasks were not yet delivered" for tasks that arrived once the import
    finished): those tasks may have arrived, and the line says so, and that the next
    process checks which before sending the rest; tasks never tried are still named as
    not yet delivered."""
    _worker.configure(batch_size=30)  # a full batch goes out at once
    gate = server.hold_imports()
    capture(30)
    wait_for(lambda: server.in_flight == 1, "the import to be in flight")
    capture(5, project="never tried")  # the sender is busy: these wait in the spool

    left = _worker.shutdown(timeout=0.2)
    gate.set()

    err = capsys.readouterr().err
    assert left is not None and left.pending == 35
    (maybe,) = [line for line in err.splitlines() if "may have arrived" in line]
    assert "30 tasks" in maybe and "checks" in maybe
    (waiting,) = [line for line in err.splitlines() if "not yet delivered" in line]
    assert "5 tasks" in waiting and "lstrace sync" in waiting


def test_exit_line_counts_calls_held_in_memory_on_a_full_disk_as_lost(
    server: FakeLabelStudio, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls the spool file could not take (a full disk) are held in memory and sent from
    there; a process that ends before they are delivered loses them, and its exit line says
    so (it said they wait in the spool for the next process, which never sees them)."""
    server.down = True

    def full(spool: Spool, dests: object, rows: object) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Spool, "_insert", full)
    capture(10)
    wait_for(lambda: lstrace.stats().spooled == 10, "the calls to be held in memory")

    left = _worker.shutdown(timeout=0.2)

    err = capsys.readouterr().err
    assert left is not None and left.pending == 10
    (lost,) = [line for line in err.splitlines() if "are lost" in line]
    assert "10 captured calls" in lost
    assert "wait in the spool" not in err


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
def test_a_dead_childs_rows_are_taken_over_by_the_parents_flush(
    server: FakeLabelStudio, lstrace_state: Path, reaped: bool
) -> None:
    """A forked child that dies (``os._exit`` after spooling, nothing sent) leaves its rows
    in the spool; the parent's next ``flush()`` takes them over and delivers them, without
    waiting for its next heartbeat (issue 12.9), also while the dead child is a zombie the
    parent has not reaped yet (its pid still answers ``kill(pid, 0)``)."""
    capture(1)
    assert lstrace.flush(timeout=PATIENCE).pending == 0
    pid = os.fork()
    if pid == 0:  # the child: spool 20 calls, send none, die without an exit flush
        try:
            server.down = True  # the child's copy of the fake: nothing reaches the parent's
            capture(20, project="child")
            spooled(lstrace_state, 20, timeout=PATIENCE)
        finally:
            os._exit(0)
    if reaped:
        os.waitpid(pid, 0)
    else:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie

    result = lstrace.flush(timeout=PATIENCE)

    if not reaped:
        os.waitpid(pid, 0)
    assert result.pending == 0
    assert len(server.run_ids("child")) == 20


class _Marker:
    """Goes into a call's metadata; when the spooler converts the call (the metadata value
    is written as text), notes how many calls converted before it are still alive."""

    def __init__(self, markers: list[weakref.ref[_Marker]], alive: list[int]) -> None:
        self._markers, self._alive = markers, alive
        self._index = len(markers)
        markers.append(weakref.ref(self))

    def __str__(self) -> str:
        earlier = self._markers[: self._index]
        self._alive.append(sum(1 for m in earlier if m() is not None))
        return "marker"


def test_the_spooler_lets_go_of_each_call_once_it_is_converted(
    server: FakeLabelStudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk's calls (each holds LangChain's objects) are released one by one as they
    are converted, not all at the chunk's commit: a chunk of them alive together set off
    garbage collections that traversed the app's young objects too. The chunk is handed
    to the spooler's own step directly, so no thread timing is involved."""
    captured: list[Any] = []
    monkeypatch.setattr(_worker, "submit", captured.append)
    markers: list[weakref.ref[_Marker]] = []
    alive: list[int] = []
    llm = FakeListLLM(responses=["an answer"])
    with lstrace.ls_session(project_name="let go", url=URL, api_key=KEY):
        for i in range(20):
            llm.invoke(f"question {i}", config={"metadata": {"marker": _Marker(markers, alive)}})
    monkeypatch.undo()
    worker = _worker._get()
    worker.ready.wait(PATIENCE)
    assert len(captured) == 20
    worker._store(captured)
    assert alive == [0] * 20  # no call converted earlier was still held by the spooler
    assert lstrace.flush(timeout=PATIENCE).pending == 0
    tasks = [t for p in server.projects.values() if p.title == "let go" for t in p.tasks]
    assert [t["data"]["metadata"] for t in tasks] == ['{"marker": "marker"}'] * 20


def test_a_call_is_sent_as_it_ended_whatever_the_app_changes_afterwards(
    server: FakeLabelStudio,
) -> None:
    """The conversation and the reply are read as the run ends, on the caller's thread: an
    app that edits a message it passed, or the reply it got, after the call (a chat loop
    that keeps its history does) changes nothing in the task. Read later by the spooler,
    the task showed the edited texts."""
    chat = GenericFakeChatModel(messages=iter([AIMessage("the reply")]))
    history: list[Any] = [HumanMessage("the question")]
    with lstrace.ls_session(project_name="as it ended", url=URL, api_key=KEY, mode="chat"):
        reply = chat.invoke(history)
        history[0].content = "an edited question"
        reply.content = "an edited reply"
        history.append(reply)
    assert lstrace.flush(timeout=PATIENCE).pending == 0
    [task] = [t for p in server.projects.values() if p.title == "as it ended" for t in p.tasks]
    text = json.dumps(task)
    assert "the question" in text and "the reply" in text
    assert "edited" not in text


def test_a_call_the_caller_could_not_read_is_converted_by_the_spooler(
    server: FakeLabelStudio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When reading the conversation and reply as the run ends fails on the caller's
    thread, the call keeps what LangChain passed and the spooler converts it from that:
    delivered, nothing lost."""
    read = _record._snapshot

    def broken_on_the_caller(call: Any) -> Any:
        if threading.current_thread() is threading.main_thread():
            raise RuntimeError("lstrace bug injected by the test")
        return read(call)

    monkeypatch.setattr(_record, "_snapshot", broken_on_the_caller)
    capture(3, project="converted later")
    assert lstrace.flush(timeout=PATIENCE).pending == 0
    stats = lstrace.stats()
    assert (stats.captured, stats.failed, stats.delivered) == (3, 0, 3)
    tasks = [t for p in server.projects.values() if p.title == "converted later" for t in p.tasks]
    assert sorted(t["data"]["prompt"] for t in tasks) == [f"question {i}" for i in range(3)]
    assert all("an answer" in json.dumps(t["predictions"]) for t in tasks)  # the reply too
