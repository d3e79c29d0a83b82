"""What the spool stores for a call: its content only, built into a task when it is sent.

An earlier lstrace stored the import body beside the content (the ``task`` column); the
sender still sends such a body as stored when the project's target is the one it was
built for, and builds the task from the stored content otherwise (a project whose config
differs, a bare project_id, a pair). Offline: no key is given, so nothing is sent.
"""

from __future__ import annotations

import gc
import itertools
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import FakeListLLM

import lstrace
from lstrace import _json
from lstrace._delivery import spool as spool_module
from lstrace._delivery.projects import Project
from lstrace._delivery.sender import Sender
from lstrace._delivery.spool import Row, Spool
from lstrace._delivery.stats import Counters
from lstrace._delivery.task import build_task
from lstrace._labelconfig import DEFAULT_CONFIGS, Mode, Target, default_target
from lstrace._options import Destination
from tests.spooled import live_calls, spooled


def stored_tasks(path: Path) -> list[bytes | None]:
    """The import body stored with each call (None for every call of a chunk row)."""
    with sqlite3.connect(path) as db:
        tasks = [task for (task,) in db.execute("SELECT task FROM tasks ORDER BY id")]
        return tasks + [None] * (live_calls(db) - len(tasks))


def offline_sender(spool: Spool) -> Sender:
    """A sender of ``spool`` with batches of 10 and no key (it never reaches a server)."""
    return Sender(
        spool,
        Counters(),
        batch_size=10,
        max_batch_bytes=1_000_000,
        request_timeout=1.0,
        max_backoff=1.0,
        keys={},
    )


@pytest.mark.parametrize("mode", ["chat", "prompt"])
def test_a_spooled_call_holds_its_content_only(
    mode: Mode, lstrace_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spooled call of a mode's default project is its content alone: no import body
    beside it (that doubled every row, and SQLite's cost per row grows with its size).
    The sender builds the task for the project's target from it (below)."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    llm = FakeListLLM(responses=["first answer", "second answer"])
    with lstrace.ls_session(project_name="spool format", mode=mode):
        llm.invoke("first question")
        llm.invoke("second question")
    contents = spooled(lstrace_state, 2)
    assert [c["responses"] for c in contents] == [["first answer"], ["second answer"]]
    assert stored_tasks(lstrace_state) == [None, None]


def test_a_pairwise_call_is_spooled_without_a_body(
    lstrace_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pairs are built from two calls when sent: nothing is built at spooling."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    with lstrace.ls_session(project_name="spool format pairs", mode="pairwise"):
        FakeListLLM(responses=["a"]).invoke("q")
    spooled(lstrace_state, 1)
    assert stored_tasks(lstrace_state) == [None]


def test_the_sender_sends_the_stored_body_only_for_the_target_it_was_built_for(
    tmp_path: Path,
) -> None:
    """A row's stored body goes out as it is when the project's target is the
    destination's own; for a project with another target the task is built again from
    the stored content; a row without a body is built as before."""
    dest = Destination("http://127.0.0.1:1", None, "format", DEFAULT_CONFIGS["chat"], "chat")
    spool = Spool(tmp_path / "spool.sqlite3", uuid.uuid4().hex)
    content: dict[str, Any] = {
        "run_id": str(uuid.uuid4()),
        "parent_run_id": None,
        "prompt": "q",
        "dialogue": [{"role": "user", "content": "q"}],
        "responses": ["a"],
        "response_message": None,
        "model": "m",
        "run_type": "chat_model",
        "tags": [],
        "metadata": {},
        "pair_group": None,
        "usage": {},
        "latency_ms": 1.0,
        "captured_at": "2026-01-15T09:30:00+00:00",
        "error": None,
    }
    bare = {**content, "run_id": str(uuid.uuid4())}
    marker = b'{"stored":"as built at spooling"}'
    spool.add([(dest, content), (dest, bare)], [marker, None])
    rows = spool.take(dest, 10)
    sender = offline_sender(spool)
    own = default_target("chat")
    other = Target("answer", "text", "text", "Text")
    assert isinstance(own, Target)
    as_stored = sender._units(dest, Project(1, own), rows)
    assert [u.body for u in as_stored] == [marker, _json.encode(build_task(bare, own))]
    rebuilt = sender._units(dest, Project(1, other), rows)
    expected = [_json.encode(build_task(c, other)) for c in (content, bare)]
    assert [u.body for u in rebuilt] == expected
    spool.close()


def test_a_spool_written_before_the_body_column_is_still_read(tmp_path: Path) -> None:
    """A spool file whose tasks table lacks the ``task`` column (an earlier lstrace) gets
    it on open; its rows are taken with no stored body and their content intact."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE destinations (key TEXT PRIMARY KEY, spec TEXT NOT NULL);"
            "CREATE TABLE tasks (id INTEGER PRIMARY KEY AUTOINCREMENT, dest TEXT NOT NULL,"
            " run_id TEXT NOT NULL, body TEXT NOT NULL, created REAL NOT NULL, owner TEXT,"
            " attempts INTEGER NOT NULL DEFAULT 0, maybe_sent INTEGER NOT NULL DEFAULT 0,"
            " dead TEXT);"
        )
    dest = Destination("http://127.0.0.1:1", None, "old", DEFAULT_CONFIGS["prompt"], "prompt")
    owner = uuid.uuid4().hex
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO destinations VALUES (?, ?)", (dest.key, "{}"))
        db.execute(
            "INSERT INTO tasks (dest, run_id, body, created, owner) VALUES (?, ?, ?, ?, ?)",
            (dest.key, "r1", '{"run_id": "r1", "prompt": "old"}', 0.0, owner),
        )
    spool = Spool(path, owner)
    [row] = spool.take(dest, 10)
    assert (row.task, row.content) == (None, {"run_id": "r1", "prompt": "old"})
    spool.close()


def test_the_sender_is_woken_only_when_a_destination_becomes_due_sooner(tmp_path: Path) -> None:
    """The spooler wakes the sender for a destination's first rows (a new due time) and
    when its batch fills, not for every chunk in between (the sender sleeps until then)."""
    dest = Destination("http://127.0.0.1:1", None, "wake", DEFAULT_CONFIGS["chat"], "chat")
    spool = Spool(tmp_path / "spool.sqlite3", uuid.uuid4().hex)
    sender = offline_sender(spool)
    woken = [sender.note_spooled(dest, n, 0.0) for n in (0, 4, 4, 4, 4)]
    assert woken == [False, True, False, True, False]  # nothing; first rows; 8; 12 >= 10; 16
    assert sender.waiting() == 16
    spool.close()


def _rows_as_tuples(rows: list[Row]) -> list[tuple[Any, ...]]:
    return [(r.id, r.run_id, r.maybe_sent, r.created, r.size, r.task, r.content) for r in rows]


def test_a_batch_is_taken_alike_in_one_json_step_and_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """take() reads a batch as one JSON array (one step into SQLite); a SQLite without
    JSON functions is read row by row. Both give the same rows, in id order: a stored
    import body, a body stored as a BLOB, an attempt's mark, another process's rows and
    rows past the limit left out."""
    dest = Destination("http://127.0.0.1:1", None, "take", DEFAULT_CONFIGS["chat"], "chat")
    spool = Spool(tmp_path / "spool.sqlite3", uuid.uuid4().hex)
    items = [(dest, {"run_id": f"r{i}", "prompt": f"q{i} \u00e9\u6f22 \"'\\"}) for i in range(6)]
    for item, task in zip(items, [None, b'{"stored":1}', None, None, None, None], strict=True):
        spool.add([item], [task])  # a row each, as older versions wrote them
    with sqlite3.connect(tmp_path / "spool.sqlite3") as db:
        db.execute("UPDATE tasks SET body = CAST(body AS BLOB) WHERE run_id = 'r2'")
        db.execute("UPDATE tasks SET owner = 'another' WHERE run_id = 'r3'")
    ids = [r.id for r in spool.take(dest, 10)]
    spool.mark_attempt(ids[:1], maybe_sent=True)
    in_one_step = spool.take(dest, 4)
    monkeypatch.setattr(spool_module._sqlite, "json", False)
    row_by_row = spool.take(dest, 4)
    assert _rows_as_tuples(in_one_step) == _rows_as_tuples(row_by_row)
    assert [r.run_id for r in in_one_step] == ["r0", "r1", "r2", "r4"]
    assert [r.task for r in in_one_step] == [None, b'{"stored":1}', None, None]
    assert in_one_step[0].maybe_sent and not in_one_step[1].maybe_sent
    assert in_one_step[2].content == {"run_id": "r2", "prompt": "q2 \u00e9\u6f22 \"'\\"}
    spool.close()


def test_a_sqlite_without_json_functions_is_read_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """take() notices once that SQLite has no JSON functions and reads row by row."""
    dest = Destination("http://127.0.0.1:1", None, "nojson", DEFAULT_CONFIGS["chat"], "chat")
    spool = Spool(tmp_path / "spool.sqlite3", uuid.uuid4().hex)
    spool.add([(dest, {"run_id": "r0", "prompt": "q"})])
    calls = []

    def no_json(where: str, args: tuple[Any, ...]) -> list[Row]:
        calls.append(where)
        raise sqlite3.OperationalError("no such function: json_group_array")

    monkeypatch.setattr(spool_module._sqlite, "json", True)
    monkeypatch.setattr(spool, "_take_listed", no_json)
    assert [r.run_id for r in spool.take(dest, 10)] == ["r0"]
    assert [r.run_id for r in spool.take(dest, 10)] == ["r0"]
    assert len(calls) == 1 and spool_module._sqlite.json is False
    spool.close()


def test_a_chunk_is_inserted_in_statements_of_powers_of_two_rows(tmp_path: Path) -> None:
    """Rows of one call (a pairwise destination's) go in by statements of 128, 64, ...
    rows (a few cached statements, not one per count): every row once, in order; a row
    already there is not counted again."""
    assert spool_module._insert_parts(200) == [128, 64, 8]
    assert all(sum(spool_module._insert_parts(n)) == n for n in range(1, 600))
    dest = Destination("http://127.0.0.1:1", None, "parts", DEFAULT_CONFIGS["pairwise"], "pairwise")
    spool = Spool(tmp_path / "spool.sqlite3", uuid.uuid4().hex)
    first = [(dest, {"run_id": f"r{i}", "prompt": "q"}) for i in range(201)]
    assert spool.add(first) == 201  # a new destination: in one transaction with it
    again = first[195:] + [(dest, {"run_id": f"s{i}", "prompt": "q"}) for i in range(300)]
    assert spool.add(again) == 300
    assert [r.run_id for r in spool.take(dest, 1000)] == [f"r{i}" for i in range(201)] + [
        f"s{i}" for i in range(300)
    ]
    spool.close()


def test_built_rows_let_go_of_their_decoded_content(tmp_path: Path) -> None:
    """Once a row's task is built and encoded, the row no longer holds the decoded
    content: a batch waits for the import's answer, and thousands of decoded dicts kept
    alive across it were traversed by every garbage collection of the app meanwhile. The
    content is still there to read (decoded again from the stored JSON)."""
    dest = Destination("http://127.0.0.1:1", None, "format", DEFAULT_CONFIGS["chat"], "chat")
    spool = Spool(tmp_path / "spool.sqlite3", uuid.uuid4().hex)
    contents = [
        {
            "run_id": str(uuid.uuid4()),
            "prompt": f"q {i}",
            "dialogue": [{"role": "user", "content": f"q {i}"}],
            "responses": [f"a {i}"],
            "model": "m",
            "metadata": {"i": i},
        }
        for i in range(5)
    ]
    spool.add([(dest, c) for c in contents])
    rows = spool.take(dest, 10)
    own = default_target("chat")
    assert isinstance(own, Target)
    units = offline_sender(spool)._units(dest, Project(1, own), rows)
    assert [u.body for u in units] == [_json.encode(build_task(c, own)) for c in contents]
    held = [x for x in gc.get_referents(*rows) if isinstance(x, dict)]
    assert held == []
    assert [r.content["prompt"] for r in rows] == [c["prompt"] for c in contents]
    spool.close()


def chat_dest(title: str = "format") -> Destination:
    return Destination("http://127.0.0.1:1", None, title, DEFAULT_CONFIGS["chat"], "chat")


def contents_of(n: int) -> list[dict[str, Any]]:
    return [
        {"run_id": str(uuid.uuid4()), "prompt": f"q {i}", "responses": [f"a {i}"], "model": "m"}
        for i in range(n)
    ]


def table_rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_the_calls_of_one_pass_for_one_destination_are_one_row(tmp_path: Path) -> None:
    """The spooler's pass stores its calls for one destination as one chunk row: SQLite's
    work per row (insert, take, attempt mark, delete) is done once for them all. Each call
    is still taken, counted and seen on its own, with an id of its own."""
    dest = chat_dest()
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path, uuid.uuid4().hex)
    contents = contents_of(5)
    assert spool.add_encoded([(dest, c["run_id"], _json.dumps(c)) for c in contents]) == 5
    assert (table_rows(path, "chunks"), table_rows(path, "tasks")) == (1, 0)
    assert (spool.count(), spool.count(mine=True), spool.count_maybe_sent()) == (5, 5, 0)
    assert spool.backlog()[dest.key][1] == 5
    assert spool_module.peek(path)[0] == [(dest, 5)]
    rows = spool.take(dest, 10)
    assert [r.content for r in rows] == contents
    assert [r.run_id for r in rows] == [c["run_id"] for c in contents]
    assert len({r.id for r in rows}) == 5 and not any(r.maybe_sent for r in rows)
    spool.delete(r.id for r in rows)
    assert (table_rows(path, "chunks"), spool.count()) == (0, 0)
    spool.close()


def test_calls_leave_a_chunk_row_one_by_one(tmp_path: Path) -> None:
    """Part of a chunk row taken, marked, delivered or set aside: the rest waits in it with
    its own marks, and a call set aside moves to a row of its own (``lstrace set-aside``
    lists it with its content, and can send it again)."""
    dest = chat_dest()
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path, uuid.uuid4().hex)
    contents = contents_of(6)
    spool.add([(dest, c) for c in contents])
    first = spool.take(dest, 3)
    assert [r.run_id for r in first] == [c["run_id"] for c in contents[:3]]
    spool.mark_attempt([r.id for r in first], maybe_sent=True)
    assert spool.count_maybe_sent() == 3
    spool.delete(r.id for r in first)
    assert (spool.count(), spool.count_maybe_sent()) == (3, 0)

    rest = spool.take(dest, 10)
    assert [r.run_id for r in rest] == [c["run_id"] for c in contents[3:]]
    spool.mark_attempt([r.id for r in rest], maybe_sent=True)
    spool.mark_attempt([rest[0].id], maybe_sent=False)  # answered: it did not arrive
    assert [r.maybe_sent for r in spool.take(dest, 10)] == [False, True, True]
    assert spool.count_maybe_sent() == 2

    spool.mark_dead([rest[1].id], "rejected:400")
    aside = spool_module.set_aside(path)
    assert [(a.run_id, a.reason, a.content) for a in aside] == [
        (contents[4]["run_id"], "rejected:400", contents[4])
    ]
    assert (spool.count(), spool.count_dead(), spool.count_maybe_sent()) == (2, 1, 1)
    assert [r.run_id for r in spool.take(dest, 10)] == [
        contents[3]["run_id"],
        contents[5]["run_id"],
    ]

    spool.delete([rest[0].id, rest[2].id])
    assert (table_rows(path, "chunks"), spool.count()) == (0, 0)
    assert spool_module.revive(path, [aside[0].id]) == 1
    spool.adopt_orphans({dest.url})
    (again,) = spool.take(dest, 10)
    assert (again.run_id, again.content) == (contents[4]["run_id"], contents[4])
    spool.close()


def test_pairwise_calls_and_a_lone_call_are_rows_of_their_own(tmp_path: Path) -> None:
    """A pairwise destination's calls are paired one by one when sent (``lstrace status``
    counts the unpaired from the rows), and a single call needs no chunk."""
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path, uuid.uuid4().hex)
    pairs = Destination(
        "http://127.0.0.1:1", None, "pairs", DEFAULT_CONFIGS["pairwise"], "pairwise"
    )
    spool.add([(pairs, c) for c in contents_of(4)])
    spool.add([(chat_dest(), c) for c in contents_of(1)])
    assert (table_rows(path, "chunks"), table_rows(path, "tasks")) == (0, 5)
    spool.close()


def test_a_chunk_row_of_a_process_that_ended_is_taken_over(tmp_path: Path) -> None:
    """Rows handed back at a clean shutdown (or left by a process that died) are taken
    over by the next process, chunk rows as whole, each call counted."""
    dest = chat_dest()
    path = tmp_path / "spool.sqlite3"
    before = Spool(path, uuid.uuid4().hex)
    contents = contents_of(4)
    before.add([(dest, c) for c in contents])
    before.release()
    before.close()
    after = Spool(path, uuid.uuid4().hex)
    assert after.count(mine=True) == 0
    assert after.waiting_urls() == {dest.url}
    assert after.adopt_orphans({dest.url}) == 4
    assert [r.content for r in after.take(dest, 10)] == contents
    after.close()


def test_calls_are_taken_in_the_order_they_were_spooled_whatever_their_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk row spooled before a row of one call is taken first: a retry after an
    ambiguous attempt takes the same batch again (a newer row first split it, one more
    import request)."""
    dest = chat_dest()
    spool = Spool(None, uuid.uuid4().hex)
    clock = itertools.count(1000.0)  # each spooling a second later
    monkeypatch.setattr(time, "time", lambda: next(clock))
    older, newer = contents_of(3), contents_of(1)
    spool.add([(dest, c) for c in older])
    spool.add([(dest, c) for c in newer])
    monkeypatch.undo()
    assert [r.run_id for r in spool.take(dest, 3)] == [c["run_id"] for c in older]
    assert [r.run_id for r in spool.take(dest, 10)] == [c["run_id"] for c in older + newer]
    spool.close()
