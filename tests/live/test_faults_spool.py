"""Faults at the spool and in the calls' content, against a real Label Studio (issue 12).

The offline tests (tests/test_spool_faults.py, tests/test_delivery_faults.py) prove the
same through a fake client; here the tasks really arrive: a value JSON cannot hold costs
only its call, lone surrogates are repaired, a full disk keeps delivering from memory,
and a spool deleted under the process neither raises nor stops delivery.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from langchain_core.language_models import FakeListLLM

import lstrace
from lstrace._delivery import worker as _worker
from tests.live.conftest import REPO, LiveServer
from tests.spooled import held_calls

pytestmark = pytest.mark.live


def test_bad_values_cost_only_their_call_and_surrogates_are_repaired(
    sqlite_server: LiveServer, title: str
) -> None:
    """Bytes in run tags: that call alone fails (convert:TypeError); lone surrogates in a
    prompt, a response and a metadata value arrive as U+FFFD; all other calls arrive once."""
    llm = FakeListLLM(responses=["fine", "bad \ud800 answer", "fine"])
    good = [str(uuid.uuid4()) for _ in range(4)]
    with lstrace.ls_session(project_name=title):
        llm.invoke("plain", config={"run_id": uuid.UUID(good[0])})
        llm.invoke("response case", config={"run_id": uuid.UUID(good[1])})
        llm.invoke("prompt \udfff case", config={"run_id": uuid.UUID(good[2])})
        llm.invoke("metadata", config={"run_id": uuid.UUID(good[3]), "metadata": {"k": "v\ud83d"}})
        # bytes where LangChain types str: a value JSON cannot hold, the test's point
        llm.invoke("bytes", config={"tags": [b"x"]})  # type: ignore[arg-type]
    result = lstrace.flush(60)
    stats = lstrace.stats()
    assert result.pending == 0
    assert stats.failed_by_reason == {"convert:TypeError": 1}
    assert sqlite_server.run_ids(title) == dict.fromkeys(good, 1)
    texts = json.dumps([t.data for t in sqlite_server.tasks(title)], ensure_ascii=False)
    assert "prompt \ufffd case" in texts and "v\ufffd" in texts
    predictions = json.dumps(
        [
            p.result
            for t in sqlite_server.tasks(title, "id,data,predictions")
            for p in t.predictions or []
        ],
        ensure_ascii=False,
    )
    assert "bad \ufffd answer" in predictions


@pytest.mark.parametrize("mode", ["prompt", "trace"])
def test_a_full_disk_keeps_delivering_from_memory(
    sqlite_server: LiveServer, title: str, tmp_path: Path, mode: str
) -> None:
    """The spool file cannot grow (RLIMIT_FSIZE in the child, like a full disk): 1,000 calls
    (in trace mode: 1,000 traces of two model steps each) still all arrive, once each; one
    ERROR says they are kept in memory; no traceback."""
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.full_disk_child",
            *(["--trace"] if mode == "trace" else []),
            str(tmp_path / "spool.sqlite3"),
            "1000",
            sqlite_server.url,
            sqlite_server.token,
            title,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert (report["captured"], report["pending"], report["failed"]) == (1001, 0, {}), report
    arrived = sqlite_server.run_ids(title)
    assert len(arrived) == 1001 and max(arrived.values()) == 1
    if mode == "trace":
        steps = {int(task.data["steps"]) for task in sqlite_server.tasks(title)}
        assert steps == {2}, steps
    assert report["tracebacks"] == 0, child.stderr[-3000:]
    assert sum("cannot write to the spool" in e for e in report["errors"]) == 1, report


def test_a_deleted_spool_neither_raises_nor_stops_delivery(
    sqlite_server: LiveServer, title: str, tmp_path: Path
) -> None:
    """The spool file is deleted while its calls wait: stats() and flush() from a new thread
    raise nothing, the calls already spooled still arrive, and the exit flush is quiet."""
    spool = tmp_path / "deleted.sqlite3"
    lstrace.configure(spool_path=spool, flush_interval=3600)
    llm = FakeListLLM(responses=["kept"])
    with lstrace.ls_session(project_name=title):
        sent = [str(uuid.uuid4()) for _ in range(20)]
        for run_id in sent:
            llm.invoke("wait for me", config={"run_id": uuid.UUID(run_id)})
    for path in tmp_path.glob("deleted.sqlite3*"):
        path.unlink()
    errors: list[BaseException] = []

    def from_a_new_thread() -> None:
        try:
            lstrace.stats()
            lstrace.flush(60)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=from_a_new_thread)
    thread.start()
    thread.join(120)
    assert errors == []
    assert sqlite_server.run_ids(title) == dict.fromkeys(sent, 1)
    _worker._at_exit()


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_children_of_every_start_method_deliver_what_they_captured(
    sqlite_server: LiveServer, title: str, tmp_path: Path, method: str
) -> None:
    """enable() at import, 200 calls in a multiprocessing child (issue 12.3): every one
    arrives, once, for fork, spawn and forkserver; nothing is left in the spool."""
    spool = tmp_path / "spool.sqlite3"
    child = subprocess.run(
        [
            *(sys.executable, "-m", "tests.start_method_app", method, str(spool), "200"),
            *(sqlite_server.url, sqlite_server.token, title),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert sqlite_server.task_count(title) == 200, child.stderr[-3000:]
    with contextlib.closing(sqlite3.connect(spool)) as db:
        assert held_calls(db) == 0
