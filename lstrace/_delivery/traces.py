"""Trace mode in the spool: steps stored as they come, one task row per trace.

Runs on the background threads. Each finished step is shaped (truncated, masked) and
spooled at once, so a process that dies mid-trace loses nothing it captured. When the
root ends, the trace's steps become its one task row (:func:`assemble`) in the same
transaction that deletes them, with the scope's ``filter`` and ``before_send`` applied
to the whole trace. :func:`sweep` finds traces that will not end: those of a process
that is gone (delivered at once, marked incomplete) and those of this process with no
new step for ``TRACE_IDLE_S`` (sent as incomplete; later steps are counted and dropped).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstrace._capture import trace_record as _trace
from lstrace._capture.shaping import before_send, safe_mask
from lstrace._capture.trace_record import Step, map_step_texts, step_content
from lstrace._delivery.spool import Spool, owner_alive
from lstrace._delivery.stats import Counters
from lstrace._delivery.task import truncate
from lstrace._options import CallInfo, Destination, Options

logger = logging.getLogger("lstrace")

TRACE_IDLE_S = 600.0  # a trace with no new step for this long is sent as incomplete
TRACE_MAX_CHARS = 2_000_000  # step text kept per trace; past it steps show a marker
OMITTED = "[... step omitted by lstrace: the trace is over {limit:,} characters ...]"


def store(
    spool: Spool,
    steps: Sequence[Step],
    counters: Counters,
    refused: Callable[[dict[str, Any], Exception], None] | None = None,
) -> dict[Destination, int]:
    """Spool ``steps`` in order; an ``end`` step turns its trace into one task row. A step
    the spool cannot store (a value JSON cannot hold) is handed to ``refused``, which
    counts it; the others are stored.

    Returns the task rows added per destination (for the sender's backlog)."""
    added: dict[Destination, int] = {}
    waiting: list[tuple[Destination, str, int, dict[str, Any]]] = []
    for step in steps:
        if step.trace.abandoned:
            counters.lost("trace_late")  # the trace was already sent as incomplete
            continue
        dest, root = step.options.destination, str(step.trace.root)
        try:
            content = shape_step(step_content(step), step.options, counters)
        except Exception as exc:
            logger.exception("lstrace: could not convert a step of trace %s", root)
            counters.lost("convert", detail=type(exc).__name__)
            continue
        if step.kind != "end":
            waiting.append((dest, root, step.seq, content))
            continue
        spool.add_steps(waiting, refused)  # everything before the end is in the spool first
        waiting = []
        counters.add("captured")
        if close(spool, dest, root, content, step.options, counters, refused):
            counters.add("spooled")
            added[dest] = added.get(dest, 0) + 1
    spool.add_steps(waiting, refused)
    return added


def shape_step(content: dict[str, Any], options: Options, counters: Counters) -> dict[str, Any]:
    """Truncation, then the mask, applied to every text of one step."""
    content = map_step_texts(content, lambda text: truncate(text, options.max_field_chars))
    if options.mask is not None:
        content = map_step_texts(content, safe_mask(options.mask, counters))
    return content


def close(
    spool: Spool,
    dest: Destination,
    root: str,
    end: dict[str, Any],
    options: Options | None,
    counters: Counters,
    refused: Callable[[dict[str, Any], Exception], None] | None = None,
) -> bool:
    """Build the trace's task row from its spooled steps; False when it was dropped. A
    task neither the file nor memory can hold (disk full) goes to ``refused`` (by default
    counted as ``spool_full``)."""

    def build(steps: Iterator[tuple[int, str]]) -> dict[str, Any] | None:
        content = assemble(end, steps)
        return _decide(content, options, counters) if options is not None else content

    def full(content: dict[str, Any], exc: Exception) -> None:
        counters.lost("spool_full")

    return spool.close_trace(dest, root, build, refused or full)


def assemble(end: dict[str, Any], steps: Iterator[tuple[int, str]]) -> dict[str, Any]:
    """The trace's content: the root's end plus its steps in order, within the size bound."""
    kept: list[dict[str, Any]] = []
    size = 0
    for length, body in steps:
        step = json.loads(body)
        size += length
        if size > TRACE_MAX_CHARS:
            step = _stub(step)
        kept.append(step)
    models = [s["model"] for s in kept if s.get("kind") == "model" and s.get("model")]
    usage: dict[str, int] = {}
    for step in kept:
        for key, n in (step.get("usage") or {}).items():
            usage[key] = usage.get(key, 0) + int(n)
    return {
        **end,
        "run_id": end["run_id"],
        "kind": "trace",
        "model": models[0] if models else (end.get("name") or "trace"),
        "models": list(dict.fromkeys(models)),
        "steps": kept,
        "usage": usage,
    }


def _stub(step: dict[str, Any]) -> dict[str, Any]:
    """A step past the trace's size bound: who and what, its texts replaced by a marker."""
    marker = OMITTED.format(limit=TRACE_MAX_CHARS)
    keep = ("seq", "kind", "run_id", "parent_run_id", "name", "path", "model", "latency_ms")
    stub = {k: step[k] for k in keep if k in step}
    stub["omitted"] = True
    if step.get("kind") == "model":
        stub["inputs"] = []
        stub["output"] = {"role": "assistant", "content": marker, "message": None}
    else:
        stub["input"], stub["output"] = "", marker
    return stub


def _decide(content: dict[str, Any], options: Options, counters: Counters) -> dict[str, Any] | None:
    """capture_errors, ``filter`` (sees the trace as one call) and ``before_send``."""
    if content.get("error") and not options.capture_errors:
        counters.lost("error")
        return None
    if options.filter is not None:
        try:
            keep = bool(options.filter(call_info(content)))
        except Exception:
            logger.exception("lstrace: filter raised; the trace is kept")
            counters.add("filter_failed")
            keep = True
        if not keep:
            counters.lost("filter")
            return None
    return before_send(content, options, counters, "trace")


def call_info(content: dict[str, Any]) -> CallInfo:
    """What ``filter`` sees of a trace: its root, with the input as the prompt."""
    return CallInfo(
        model=content["model"],
        run_type="trace",
        prompt=content.get("input") or "",
        dialogue=[{"role": "user", "content": content.get("input") or ""}],
        tags=content.get("tags") or [],
        metadata=content.get("metadata") or {},
        error=content.get("error"),
    )


def sweep(spool: Spool, counters: Counters, *, now: float | None = None) -> dict[Destination, int]:
    """Send the traces that will not end as incomplete; returns task rows added."""
    now = time.time() if now is None else now
    live = _trace.open_traces()
    added: dict[Destination, int] = {}
    for dest, root, holder, newest in spool.open_traces():
        if holder == "live" or (holder == "mine" and now - newest < TRACE_IDLE_S):
            continue  # running (here or in another process), or its end is on the way
        if holder == "mine" and root in live:
            _trace.abandon(root)
        why = (
            f"no new step for {int(now - newest)} s; sent as it was"
            if holder == "mine"
            else "the process that ran it ended before the run did"
        )
        end = {
            "seq": _trace.MAX_TRACE_STEPS + 1,
            "kind": "end",
            "run_id": root,
            "name": "",
            "input": "",
            "output": "",
            "error": None,
            "tags": [],
            "metadata": {},
            "incomplete": why,
        }
        if close(spool, dest, root, end, None, counters):
            counters.add("captured")
            counters.add("spooled")
            added[dest] = added.get(dest, 0) + 1
            logger.warning("lstrace: trace %s sent as incomplete: %s", root, why)
    return added


@dataclass(frozen=True)
class OpenTraces:
    """Unfinished traces of one destination waiting in a spool file."""

    destination: Destination
    traces: int
    steps: int
    orphaned: int  # of processes that are gone: the next process sends them as incomplete


def peek_open(path: Path) -> list[OpenTraces]:
    """The unfinished traces in the spool file at ``path``, per destination, for
    ``lstrace status`` and ``sync``. Read-only (never creates the file or claims a row);
    a spool from before trace mode has none. Raises ``sqlite3.Error`` for an unreadable file.
    """
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        if "trace_steps" not in tables:
            return []
        owners = db.execute("SELECT token, pid, host, heartbeat FROM owners").fetchall()
        rows = db.execute(
            "SELECT d.spec, s.root, MAX(s.owner), COUNT(*) FROM trace_steps s"
            " JOIN destinations d ON d.key = s.dest GROUP BY s.dest, s.root ORDER BY MIN(s.id)"
        ).fetchall()
    finally:
        db.close()
    now = time.time()
    live = {token for token, pid, host, beat in owners if owner_alive(pid, host, beat, now)}
    found: dict[str, list[Any]] = {}
    for spec, _root, owner, steps in rows:
        entry = found.setdefault(spec, [0, 0, 0])
        entry[0] += 1
        entry[1] += int(steps)
        entry[2] += owner not in live
    return [
        OpenTraces(Destination.from_spec(json.loads(spec)), traces, steps, orphaned)
        for spec, (traces, steps, orphaned) in found.items()
    ]
