"""The spool on disk (private, no secrets) and tasks too large to send as they are."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import lstrace
from lstrace._delivery.task import TRUNCATION_MARK
from tests.live.conftest import DEAD_PORT, LiveServer, call, fake_chat, spool_rows

pytestmark = pytest.mark.live

SECRET = "sk-lstrace-test-secret-0123456789abcdef"  # a key nobody may write down
MARK = TRUNCATION_MARK.split("{")[0].strip()  # "[... truncated by lstrace:"


def _spool_files(spool: Path) -> list[Path]:
    return [p for p in (spool, Path(f"{spool}-wal"), Path(f"{spool}-shm")) if p.exists()]


def test_spool_file_and_directory_are_private(tmp_path: Path) -> None:
    """The spool file, its WAL and shared-memory files are mode 0600 and a directory that
    lstrace creates for it is mode 0700, so other local users cannot read captured calls."""
    spool = tmp_path / "new" / "dir" / "spool.sqlite3"
    lstrace.configure(spool_path=spool)
    model = fake_chat()
    with lstrace.ls_session(project_name="private", url=f"http://127.0.0.1:{DEAD_PORT}"):
        for _ in range(20):
            call(model)
    lstrace.flush(timeout=1)

    assert spool_rows(spool) == 20
    files = _spool_files(spool)
    assert len(files) >= 2  # the database and its WAL at least
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(0o600)}
    assert stat.S_IMODE(spool.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("delivered", [False, True], ids=["server-down", "delivered"])
def test_no_api_key_in_the_spool_files(
    sqlite_server: LiveServer, lstrace_state: Path, delivered: bool
) -> None:
    """No API key is ever written to the spool: not while tasks wait for a server that is
    down, not after they were delivered (when SQLite pages may still hold old rows)."""
    spool = lstrace_state
    model = fake_chat()
    if delivered:
        key, url = sqlite_server.token, sqlite_server.url
    else:
        key, url = SECRET, f"http://127.0.0.1:{DEAD_PORT}"
    with lstrace.ls_session(project_name="no-secrets", url=url, api_key=key):
        for _ in range(30):
            call(model, f"a question with metadata {key[:4]}")
    result = lstrace.flush(timeout=60 if delivered else 1)

    assert result.pending == (0 if delivered else 30)
    assert spool_rows(spool) == result.pending
    files = _spool_files(spool)
    assert files
    for path in files:
        assert key.encode() not in path.read_bytes(), path


def test_oversized_task_is_truncated_visibly_and_delivered(
    live_server: LiveServer, title: str
) -> None:
    """A chat call far too large to send as it is (40 turns of 300,000 characters, a
    1,000,000-character answer) arrives as one task whose long texts end with lstrace's
    truncation marker; nothing is set aside or rejected."""
    from langchain_core.messages import AIMessage, HumanMessage

    turns = [
        (HumanMessage if i % 2 == 0 else AIMessage)(content=f"turn {i} " + "x" * 300_000)
        for i in range(40)
    ]
    model = fake_chat("y" * 1_000_000)
    with lstrace.ls_session(project_name=title, mode="chat"):
        run_id = call(model, turns)
    result = lstrace.flush(timeout=120)

    assert result.pending == 0
    stats = lstrace.stats()
    assert stats.failed == stats.dead == 0
    (task,) = live_server.tasks(title, include="id,data,predictions")
    assert task.data["run_id"] == run_id
    dialogue = task.data["prompt"]
    assert len(dialogue) == 40
    assert all(MARK in turn["content"] and turn["content"].startswith("turn ") for turn in dialogue)
    assert all(len(turn["content"]) < 300_000 for turn in dialogue)
    (answer,) = task.predictions[0].result[0]["value"]["text"]
    assert answer.startswith("yyy") and MARK in answer and len(answer) < 1_000_000
