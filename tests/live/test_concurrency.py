"""Many callers at once: threads, asyncio tasks, forked processes."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from pathlib import Path

import pytest

import lstrace
from tests.live.conftest import LiveServer, acall, call, child, fake_chat, spool_rows

pytestmark = pytest.mark.live


def test_threads_and_asyncio_tasks_each_in_their_own_scope(
    live_server: LiveServer, title: str
) -> None:
    """8 threads (a project each, 100 calls each) and 500 concurrent asyncio tasks (a scope
    each, spread over 4 projects, 2 calls each) capture at the same time: every task
    arrives once, in its scope's project, carrying its own scope's metadata."""
    lstrace.configure(batch_size=200, flush_interval=0.2)
    model = fake_chat()
    expected: dict[str, tuple[str, str]] = {}  # run_id -> (project title, scope label)
    lock = threading.Lock()
    start = threading.Barrier(9)

    def thread_work(i: int) -> None:
        project, label = f"{title}-t{i}", f"t{i}"
        with lstrace.ls_session(project_name=project, metadata={"scope": label}):
            start.wait()
            for n in range(100):
                run_id = call(model, f"{label} {n}")
                with lock:
                    expected[run_id] = (project, label)

    async def task_work(i: int) -> None:
        project, label = f"{title}-a{i % 4}", f"a{i}"
        async with lstrace.ls_session(project_name=project, metadata={"scope": label}):
            for n in range(2):
                expected[await acall(model, f"{label} {n}")] = (project, label)
                await asyncio.sleep(0)  # let the other tasks interleave inside their scopes

    async def all_tasks() -> None:
        await asyncio.gather(*(task_work(i) for i in range(500)))

    threads = [threading.Thread(target=thread_work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    start.wait()
    asyncio.run(all_tasks())
    for thread in threads:
        thread.join()
    result = lstrace.flush(timeout=180)

    assert result.pending == 0
    assert len(expected) == 8 * 100 + 500 * 2
    found: dict[str, tuple[str, str]] = {}
    for project in sorted({p for p, _ in expected.values()}):
        for task in live_server.tasks(project):
            run_id = task.data["run_id"]
            assert run_id not in found, f"{run_id} arrived twice"
            found[run_id] = (project, json.loads(task.data["metadata"])["scope"])
    assert found == expected


def test_forked_children_get_their_own_sender(
    live_server: LiveServer, title: str, tmp_path: Path
) -> None:
    """A parent that already captured forks an ``os.fork()`` child and a ``multiprocessing``
    (fork) child, and keeps capturing: all 500 calls arrive once, none is sent by two
    processes, and no process leaves anything behind in the spool."""
    spool = tmp_path / "fork.sqlite3"
    proc = child(
        "fork", "--spool", str(spool), "--url", live_server.url, "--key", live_server.token,
        "--title", title, "--n", "100", "--batch-size", "20",
    )  # fmt: skip
    out, err = proc.communicate(timeout=240)

    assert proc.returncode == 0, err
    reports = [line.split() for line in out.splitlines() if not line.startswith("flushed")]
    assert Counter(who for who, _, _ in reports) == {
        "parent": 300,
        "fork-child": 100,
        "mp-child": 100,
    }
    arrived = live_server.run_ids(title)
    assert set(arrived) == {run_id for _, run_id, _ in reports}
    assert max(arrived.values()) == 1
    assert spool_rows(spool) == 0
