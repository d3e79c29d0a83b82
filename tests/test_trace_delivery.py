"""Trace mode's delivery: steps spooled as they happen, one task per trace, exactly once;
traces that never end are sent as incomplete; memory stays bounded
(lstrace/_delivery/traces.py, lstrace/_delivery/spool.py)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models import FakeListLLM
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

import lstrace
from lstrace._capture import trace_record
from lstrace._delivery import traces as _traces
from lstrace._delivery import worker as _worker
from lstrace._delivery.spool import _SCHEMA
from lstrace._delivery.trace_task import build_trace_task
from lstrace._options import Destination
from lstrace.cli import main
from tests import readback
from tests.fakes import scripted, tool_call
from tests.spooled import spooled
from tests.test_task import text_target
from tests.test_trace import weather_agent
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent


def step_rows(spool: Path) -> int:
    """Steps of unfinished traces in the spool file."""
    if not spool.exists():
        return 0
    with sqlite3.connect(spool) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM trace_steps").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def test_steps_are_spooled_as_they_happen_and_become_one_row_at_the_end(
    lstrace_state: Path,
) -> None:
    """While the agent runs, its finished steps are already in the spool; when the root
    ends they become one task row (keyed by the root's run id) and the steps are gone."""
    seen: list[int] = []

    @tool
    def weather(city: str) -> str:
        """Weather for a city."""
        wait_for(lambda: step_rows(lstrace_state) >= 1, "the first step to be spooled")
        seen.append(step_rows(lstrace_state))
        return f"Sunny in {city}"

    model = scripted(tool_call("weather", {"city": "Paris"}), "Sunny.")
    agent = create_agent(model, tools=[weather])
    with lstrace.ls_session(project_name="unused", mode="trace"):
        agent.invoke({"messages": [HumanMessage("Paris?")]})
    [row] = spooled(lstrace_state, 1)
    assert seen == [1]
    assert row["kind"] == "trace" and [s["kind"] for s in row["steps"]] == [
        "model",
        "tool",
        "model",
    ]
    assert step_rows(lstrace_state) == 0


def test_a_trace_of_a_process_that_died_is_delivered_marked_incomplete(
    lstrace_state: Path,
) -> None:
    """A process killed in the middle of an agent run (os._exit inside a tool) leaves its
    spooled steps; the next process delivers that trace once, marked incomplete."""
    child = textwrap.dedent(
        """
        import os, lstrace
        from langchain.agents import create_agent
        from langchain_core.messages import HumanMessage
        from langchain_core.tools import tool
        from tests.fakes import scripted, tool_call

        @tool
        def crash(city: str) -> str:
            \"\"\"Dies.\"\"\"
            lstrace.flush(10)  # the model step is in the spool now
            os._exit(0)

        model = scripted(tool_call("crash", {"city": "Paris"}), "never")
        agent = create_agent(model, tools=[crash], system_prompt="You are a weather bot.")
        with lstrace.ls_session(project_name="trace: died", mode="trace"):
            agent.invoke({"messages": [HumanMessage("Weather in Paris?")]})
        """
    )
    env = {**os.environ, "LSTRACE_SPOOL_PATH": str(lstrace_state), "PYTHONPATH": str(REPO)}
    env["LABEL_STUDIO_URL"] = "http://127.0.0.1:9"  # the child never reaches a server
    subprocess.run([sys.executable, "-c", child], env=env, check=True, timeout=120)
    assert step_rows(lstrace_state) == 1
    assert _worker._get().ready.wait(10)  # a new worker adopts what the dead one left
    [row] = spooled(lstrace_state, 1)
    assert row["incomplete"] == "the process that ran it ended before the run did"
    task = build_trace_task(row, text_target("trace"))
    assert [t["who"].split(" · ")[0] for t in task["data"]["trajectory"]] == [
        "system",
        "user",
        "1. assistant",
        "lstrace",
    ]
    assert task["data"]["incomplete"] and "INCOMPLETE" in task["data"]["summary"]


def test_a_dead_processs_trace_reaches_label_studio_once(lstrace_state: Path) -> None:
    """The adopted incomplete trace is imported as one task."""
    body = {
        "seq": 0,
        "kind": "model",
        "run_id": "r1",
        "parent_run_id": None,
        "name": "m",
        "path": [],
        "latency_ms": 1.0,
        "captured_at": None,
        "error": None,
        "model": "m",
        "inputs": [{"role": "user", "content": "Hi?", "message": None}],
        "output": {"role": "assistant", "content": "Hello.", "message": None},
        "usage": {},
        "tools": [],
    }
    root = "00000000-0000-4000-8000-0000000e0001"
    dest = Destination(
        url=os.environ["LABEL_STUDIO_URL"],
        project_id=None,
        project_title="trace: adopted",
        label_config=lstrace.templates.get("trace"),
        mode="trace",
    )
    dest_spec = asdict(dest)  # the unversioned layout of spools before Destination.to_spec
    with sqlite3.connect(lstrace_state) as db:  # a spool left by a process that is gone
        db.executescript(_SCHEMA)
        db.execute("INSERT INTO destinations VALUES (?, ?)", (dest.key, json.dumps(dest_spec)))
        db.execute(
            "INSERT INTO trace_steps (dest, root, seq, body, created, owner) VALUES (?,?,?,?,?,?)",
            (dest.key, root, 0, json.dumps(body), time.time(), "gone-process"),
        )
    assert lstrace.sync(timeout=10).delivered == 1
    [task] = readback.tasks("trace: adopted")
    assert task["data"]["run_id"] == root
    assert readback.responses(task) == ["Hello."]
    assert lstrace.sync(timeout=5).delivered == 0  # nothing left: sent exactly once


def test_a_root_that_never_ends_is_sent_incomplete_after_the_idle_bound(
    lstrace_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream left half-read: once no step came for TRACE_IDLE_S, the trace is sent as
    incomplete; what it records afterwards is counted and dropped, never sent twice."""
    agent = weather_agent(tool_call("get_weather", {"city": "Paris"}), "Sunny in Paris.")
    with lstrace.ls_session(project_name="unused", mode="trace"):
        stream = agent.stream({"messages": [HumanMessage("Paris?")]}, stream_mode="updates")
        next(stream)  # the model asked for the tool; the run goes no further for now
        wait_for(lambda: step_rows(lstrace_state) == 1, "the model step to be spooled")
        monkeypatch.setattr(_traces, "TRACE_IDLE_S", 0.0)
        assert _worker._get().sweep_traces() == 1
        [row] = spooled(lstrace_state, 1)
        assert row["incomplete"].startswith("no new step for")
        list(stream)  # the run finishes after all
    lstrace.flush(5)
    stats = lstrace.stats()
    assert stats.dropped_by_reason == {"trace_late": 3}  # tool, model, end
    assert step_rows(lstrace_state) == 0


def test_thousands_of_steps_stay_bounded_with_visible_markers(
    lstrace_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain that calls a model 2,100 times: the first 2,000 steps are recorded, the rest
    counted and shown as a marker; past the trace's character budget, steps keep their
    place with their text replaced by a marker."""
    monkeypatch.setattr(_traces, "TRACE_MAX_CHARS", 200_000)
    llm = FakeListLLM(responses=["x" * 100])

    def loop(question: str) -> str:
        return "".join(llm.invoke(f"{question} {i}") for i in range(2_100))[:10]

    with lstrace.ls_session(project_name="unused", mode="trace"):
        RunnableLambda(loop).invoke("step")
    [row] = spooled(lstrace_state, 1, timeout=60)
    assert len(row["steps"]) == trace_record.MAX_TRACE_STEPS
    assert row["skipped"] == 100
    omitted = [s for s in row["steps"] if s.get("omitted")]
    assert 0 < len(omitted) < trace_record.MAX_TRACE_STEPS
    task = build_trace_task(row, text_target("trace"))
    texts = [t["text"] for t in task["data"]["trajectory"]]
    assert any("100 more steps not recorded by lstrace" in t for t in texts)
    assert any("step omitted by lstrace" in t for t in texts)
    # each text at most twice (shown, and in messages), plus a fixed cost per step
    assert len(json.dumps(task)) < 2 * _traces.TRACE_MAX_CHARS + 400 * len(row["steps"])


def leave_trace(spool: Path, title: str, root: str, owner: str, steps: int) -> None:
    """Write ``steps`` model steps of an unfinished trace into the spool file, as the
    process holding ``owner`` would have."""
    dest = Destination(
        url=os.environ["LABEL_STUDIO_URL"],
        project_id=None,
        project_title=title,
        label_config=lstrace.templates.get("trace"),
        mode="trace",
    )
    spec = asdict(dest)  # the unversioned layout of spools before Destination.to_spec
    with sqlite3.connect(spool) as db:
        db.executescript(_SCHEMA)
        db.execute("INSERT OR IGNORE INTO destinations VALUES (?, ?)", (dest.key, json.dumps(spec)))
        for seq in range(steps):
            body = {
                "seq": seq,
                "kind": "model",
                "run_id": f"{root}-{seq}",
                "parent_run_id": None,
                "name": "m",
                "path": [],
                "latency_ms": 1.0,
                "captured_at": None,
                "error": None,
                "model": "m",
                "inputs": [{"role": "user", "content": f"Question {seq}?", "message": None}],
                "output": {"role": "assistant", "content": f"Answer {seq}.", "message": None},
                "usage": {},
                "tools": [],
            }
            db.execute(
                "INSERT INTO trace_steps (dest, root, seq, body, created, owner)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (dest.key, root, seq, json.dumps(body), time.time(), owner),
            )


def test_status_shows_unfinished_traces_and_sync_sends_those_of_ended_processes(
    lstrace_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lstrace status`` counts the steps of unfinished traces waiting in the spool and
    says which belong to a process that ended; ``lstrace sync`` sends those (marked
    incomplete) even when no task waits, and leaves a running process's trace alone."""
    title = "trace: status"
    ended = "00000000-0000-4000-8000-0000000e0002"
    leave_trace(lstrace_state, title, ended, "gone-process", 2)
    leave_trace(lstrace_state, title, "00000000-0000-4000-8000-0000000e0003", "running", 1)
    with sqlite3.connect(lstrace_state) as db:  # a live process holds the second trace
        db.execute(
            "INSERT INTO owners VALUES ('running', ?, ?, ?)",
            (os.getpid(), os.uname().nodename, time.time()),
        )
    url = os.environ["LABEL_STUDIO_URL"]
    assert main(["status", "--spool", str(lstrace_state)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0] == f"spool        {lstrace_state}: 0 tasks waiting; 2 unfinished traces (3 steps)"
    )
    assert lines[1] == (
        f"             2 unfinished traces (3 steps) for project {title!r} on {url}: 1 of "
        "processes that ended (`lstrace sync` sends them marked incomplete)"
    )
    assert main(["sync", "--spool", str(lstrace_state), "--timeout", "30"]) == 0
    assert capsys.readouterr().out == (
        "lstrace sync: delivered 1 tasks; nothing waits in the spool.\n"
    )
    [task] = readback.tasks(title)
    assert task["data"]["run_id"] == ended and task["data"]["incomplete"]
    assert readback.responses(task) == ["Answer 1."]
    assert main(["status", "--spool", str(lstrace_state)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith(
        f"1 unfinished traces (1 steps) for project {title!r} on {url}: still running"
    )


def test_a_step_json_cannot_hold_costs_only_itself(lstrace_state: Path) -> None:
    """Trace mode (issue 12.1): a tool step whose input holds bytes cannot be stored as
    JSON. It alone is left out, counted as failed (convert, with the error's name); the
    steps before and after it in the same spool chunk, and the trace's task, are kept."""

    @tool
    def store_blob(data: Any) -> str:
        """Stores a blob."""
        return "stored"

    llm = FakeListLLM(responses=["first", "second"])

    @lstrace.ls_track(project_name="trace: bytes", mode="trace")
    def agent() -> str:
        llm.invoke("before")
        store_blob.invoke({"data": b"\x00raw"})
        return llm.invoke("after")

    assert agent() == "second"
    [row] = spooled(lstrace_state, 1)
    assert [(s["kind"], s["output"]["content"]) for s in row["steps"]] == [
        ("model", "first"),
        ("model", "second"),
    ]
    stats = lstrace.stats()
    assert stats.failed_by_reason == {"convert:TypeError": 1}
    assert stats.captured == 1 and stats.spooled == 1


def test_a_trace_end_that_overflows_the_queue_waits_for_its_steps(
    lstrace_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue is full when the root ends (a full queue makes the caller's thread spool
    its calls itself): the end still waits in the queue behind the trace's steps, and the
    task holds every step (it held none: the caller spooled the end, closing the trace
    before its steps reached the spool, which then waited there as an open trace)."""
    lstrace.configure(max_queue=2)
    llm = FakeListLLM(responses=["an answer"])
    with lstrace.ls_session(project_name="unused"):
        llm.invoke("opens the spool")
    spooled(lstrace_state, 1)
    gate = threading.Event()
    spool_queue = _worker.Worker._spool_queue

    def held_back(self: _worker.Worker) -> None:  # the spooler pops nothing until the gate
        assert gate.wait(60)
        spool_queue(self)

    monkeypatch.setattr(_worker.Worker, "_spool_queue", held_back)
    chain: RunnableLambda[str, str] = RunnableLambda(
        lambda q: llm.invoke(q) + llm.invoke("again " + q)
    )
    with lstrace.ls_session(project_name="unused", mode="trace"):
        chain.invoke("two steps, then the end")  # step, step (the queue is full), end
    gate.set()
    wait_for(lambda: _worker.stats().captured == 2, "the trace to be captured")
    wait_for(lambda: len(_worker.running().queue) == 0, "the queue to be spooled")  # type: ignore[union-attr]
    [_, trace] = spooled(lstrace_state, 2)
    assert [s["kind"] for s in trace["steps"]] == ["model", "model"]
    assert step_rows(lstrace_state) == 0
