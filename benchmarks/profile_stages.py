#!/usr/bin/env python3
"""Where lstrace's CPU goes, stage by stage, for one captured call (a profile, not a test).

Runs each stage of the path a call takes on its own, over real captured calls (a fake
chat model under ``ls_session``), and prints its CPU time per call::

    python benchmarks/profile_stages.py --url http://127.0.0.1:8080 --token TOKEN

Each figure is the thread CPU time (``time.thread_time``) of one stage over a batch of
``--batch`` calls, divided by the batch, and the *minimum* over ``--repeats`` repetitions:
other processes on the machine can only add to a measurement, so the minimum is the
figure least disturbed by them (the spread is printed too). The stages, in the order a
call goes through them:

- hand-off: the caller thread's CPU per ``invoke`` inside ``ls_session`` minus the same
  with a do-nothing handler on the same configure hook (the handler's callbacks and
  the queue append);
- conversion (``to_content``) and shaping (``shape``): the spooler's per-call work;
- spool insert (``Spool.add`` of the contents, one transaction per ``SPOOL_CHUNK``);
- take (``Spool.take`` of a batch);
- task build (``Sender._units``: each row's content decoded, built into its task for the
  project's target and encoded, once, when it is sent);
- HTTP: ``import_tasks`` of the built bodies to Label Studio (our CPU only: the thread
  sleeps while the server works), with the attempt mark before it;
- delete: the confirmed rows leave the spool.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import itertools
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

TOKEN = "0123456789abcdef0123456789abcdef01234567"


def fake_model() -> Any:
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    return GenericFakeChatModel(messages=itertools.repeat(AIMessage(content="a fake reply")))


def measure(fn: Callable[[], Any], per: int, repeats: int) -> list[float]:
    """us of thread CPU per item for each repetition of ``fn`` (which handles ``per`` items)."""
    out = []
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        out.append((time.thread_time() - t0) / per * 1e6)
    return out


def timed(fn: Callable[[], T], per: int) -> tuple[T, float]:
    """What ``fn`` returns, and its thread CPU time in us per item (``per`` items)."""
    t0 = time.thread_time()
    out = fn()
    return out, (time.thread_time() - t0) / per * 1e6


def invoke_cost(model: Any, scope: Callable[[], Any], n: int, repeats: int) -> list[float]:
    def run() -> None:
        with scope():
            for i in range(n):
                model.invoke(f"question {i}")

    return measure(run, n, repeats)


def main() -> int:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--token", default=TOKEN)
    parser.add_argument("--mode", default="chat", choices=["chat", "prompt"])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--mask", action="store_true", help="with masking.default")
    args = parser.parse_args()

    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.tracers.context import register_configure_hook

    import lstrace
    from lstrace import masking
    from lstrace._capture.record import CapturedCall, to_content
    from lstrace._capture.shaping import shape
    from lstrace._client import open_client
    from lstrace._delivery import worker as worker_mod
    from lstrace._delivery.projects import ProjectCache
    from lstrace._delivery.sender import Sender
    from lstrace._delivery.spool import Spool
    from lstrace._delivery.stats import Counters
    from lstrace._labelconfig import Target

    lstrace.configure(spool_path=Path(tempfile.mkdtemp()) / "spool.sqlite3")
    model = fake_model()
    n, reps = args.batch, args.repeats
    extra: dict[str, Any] = {"mask": masking.default} if args.mask else {}
    title = f"bench-stages-{uuid.uuid4().hex[:8]}"

    def session() -> Any:
        return lstrace.ls_session(
            project_name=title, mode=args.mode, url=args.url, api_key=args.token, **extra
        )

    noop_var: contextvars.ContextVar[Any] = contextvars.ContextVar("noop", default=None)
    register_configure_hook(noop_var, inheritable=True)

    class DoNothing(BaseCallbackHandler):
        run_inline = True

    @contextlib.contextmanager
    def floor() -> Iterator[None]:
        token = noop_var.set(DoNothing())
        try:
            yield
        finally:
            noop_var.reset(token)

    results: dict[str, list[float]] = {}
    # 1. hand-off, on the caller's thread: the background threads run too, but their CPU
    # is not this thread's
    invoke_cost(model, session, 200, 1)
    invoke_cost(model, floor, 200, 1)
    traced = invoke_cost(model, session, n, reps)
    base = invoke_cost(model, floor, n, reps)
    # minimum minus minimum: each the figure least disturbed by the rest of the machine
    results["hand-off (caller, minus floor)"] = [min(traced) - min(base)]
    lstrace.flush(timeout=600)

    # The captured calls themselves, taken off the hand-off instead of the queue.
    calls: list[CapturedCall] = []
    original = worker_mod.submit
    worker_mod.submit = calls.append  # type: ignore[assignment]
    try:
        with session():
            for i in range(n):
                model.invoke(f"question {i}")
    finally:
        worker_mod.submit = original
    options = calls[0].options
    counters = Counters()
    results["conversion (to_content)"] = measure(lambda: [to_content(c) for c in calls], n, reps)
    contents = [to_content(c) for c in calls]
    results["shaping (shape)"] = measure(
        lambda: [shape(c, options, counters) for c in contents], n, reps
    )
    shaped = [shape(c, options, counters) for c in contents]
    dest = options.destination

    spool = Spool(Path(tempfile.mkdtemp()) / "stages.sqlite3", uuid.uuid4().hex)
    chunk = worker_mod.SPOOL_CHUNK
    items = [(dest, c) for c in shaped if c is not None]
    client = open_client(args.url, args.token, 120.0)
    project = ProjectCache().resolve(dest, client)
    assert isinstance(project.target, Target)
    sender = Sender(
        spool,
        counters,
        batch_size=n,
        max_batch_bytes=8_000_000,
        request_timeout=120.0,
        max_backoff=60.0,
        keys={},
    )

    def insert() -> None:
        for start in range(0, len(items), chunk):
            spool.add(items[start : start + chunk])

    def reset_runs() -> None:  # a fresh run id each repetition: the spool ignores duplicates
        for c in shaped:
            assert c is not None
            c["run_id"] = str(uuid.uuid4())

    insert_times, take_times, build_times, delete_times, http_times = [], [], [], [], []

    def send(ids: list[int], bodies: list[bytes]) -> None:
        spool.mark_attempt(ids, maybe_sent=True)
        client.import_tasks(project.id, bodies)

    for _ in range(reps):
        reset_runs()
        insert_times.append(timed(insert, n)[1])
        rows, us = timed(lambda: spool.take(dest, n), n)
        take_times.append(us)
        units, us = timed(partial(sender._units, dest, project, rows), n)
        build_times.append(us)
        ids = [r.id for r in rows]
        http_times.append(timed(partial(send, ids, [u.body for u in units]), n)[1])
        delete_times.append(timed(partial(spool.delete, ids), n)[1])
    results["spool insert (Spool.add)"] = insert_times
    results["take (Spool.take)"] = take_times
    results["task build at send (Sender._units)"] = build_times
    results["HTTP (mark attempt + import_tasks)"] = http_times
    results["delete (Spool.delete)"] = delete_times
    client.close()

    total = sum(min(v) for v in results.values())
    mode = args.mode + (", masking.default" if args.mask else "")
    print(f"CPU per call by stage ({mode} mode; min of {reps} x {n} calls; us)")
    for name, values in results.items():
        spread = f"{min(values):.1f}-{max(values):.1f}"
        print(f"  {name:<40} {min(values):7.1f}   (spread {spread}, median "
              f"{statistics.median(values):.1f})")  # fmt: skip
    print(f"  {'total':<40} {total:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
