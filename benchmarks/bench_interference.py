#!/usr/bin/env python3
"""What a background thread costs a CPU-bound caller, whatever it does (a measurement, not a test).

``bench_delivery.py`` reports lstrace's own CPU per call as the process CPU of a block of
calls minus the floor's (a do-nothing handler). Measured one at a time,
``profile_stages.py``'s stages add up to about 18 us; inside a block the same work costs
about twice that or more. This script shows where the difference goes, by running the same
fake chat-model calls with more and more of lstrace's path behind them, interleaved in
rounds::

    python benchmarks/bench_interference.py                       # needs no Label Studio
    python benchmarks/bench_interference.py --url http://127.0.0.1:8080 --token TOKEN

Variants, each over the same calls (``--block`` per round, ``--rounds`` rounds):

- ``floor``: a do-nothing handler on LangChain's configure hook (no extra thread);
- ``floor + idle thread``: the same, plus a thread that wakes every 25 ms and does nothing;
- ``capture, freed by a thread``: lstrace's handler captures each call; a plain thread
  takes the queued calls every 25 ms and drops them (LangChain's objects freed on another
  thread: no conversion, no spool, no sending);
- ``capture, converted by a thread``: the same thread also converts and encodes each call
  (``to_content``, ``shape``, JSON), as lstrace's spooler does, and drops the result;
- ``lstrace, server down``: lstrace itself, spooling to SQLite, with nothing to send to;
- ``lstrace, delivering`` (with ``--url``): lstrace delivering to that Label Studio.

Per variant: process CPU per call until its background is done (spooled, or delivered),
split into the caller thread's and the other threads', and the caller's median and p99
wall time per call. The caller's CPU above the floor's, where the caller runs the same
code, is what the other threads' work on the other core costs it. ``--pin CPU`` runs the
whole process on one CPU (``os.sched_setaffinity``), for comparison.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import contextvars
import functools
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backends import percentile
from bench_delivery import TOKEN, _NoopHandler, fake_model

DEAD_URL = "http://127.0.0.1:18119"  # nothing listens there
WAKE_S = 0.025  # as lstrace's spooler: half its 50 ms spool interval


class Taker:
    """A plain background thread that, every ``WAKE_S``, takes what the handler queued and
    does ``work`` with each call (nothing, or lstrace's conversion)."""

    def __init__(self, work: Callable[[Any], None] | None) -> None:
        self.queue: collections.deque[Any] = collections.deque()
        self.work = work
        self.active = False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-taker", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(WAKE_S)
            queue, work = self.queue, self.work
            while queue:
                call = queue.popleft()
                if work is not None:
                    work(call)
                del call
            if not self.active:
                self.done.set()

    def drain(self) -> None:
        self.done.clear()
        self.done.wait()


@dataclass
class Variant:
    name: str
    scope: Callable[[], contextlib.AbstractContextManager[Any]]
    drain: Callable[[], None] = lambda: None
    lat: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    caller: list[float] = field(default_factory=list)


def convert(call: Any, counters: Any) -> None:
    """What lstrace's spooler does to each call before SQLite: content, shaping, JSON."""
    from lstrace._capture.record import to_content
    from lstrace._capture.shaping import shape
    from lstrace._json import dumps

    content = shape(to_content(call), call.options, counters)
    if content is not None:
        dumps(content)


class Scopes:
    """The variants' scopes and drains: the floor's hook, lstrace sessions, the takers."""

    def __init__(self, token: str) -> None:
        from langchain_core.tracers.context import register_configure_hook

        self.hook: contextvars.ContextVar[Any] = contextvars.ContextVar("bench_noop", default=None)
        register_configure_hook(self.hook, inheritable=True)
        self.noop = _NoopHandler.make()
        self.token = token
        self.tag = uuid.uuid4().hex[:8]
        self.left_down = 0  # calls the server-down variant left undelivered (they stay)

    @contextlib.contextmanager
    def floor(self, taker: Taker | None = None) -> Iterator[None]:
        reset = self.hook.set(self.noop)
        if taker is not None:
            taker.active = True
        try:
            yield
        finally:
            self.hook.reset(reset)
            if taker is not None:
                taker.active = False

    def session(self, server: str, title: str) -> contextlib.AbstractContextManager[Any]:
        import lstrace

        name = f"bench-interference-{title}-{self.tag}"
        return lstrace.ls_session(project_name=name, mode="chat", url=server, api_key=self.token)

    @contextlib.contextmanager
    def taken(self, taker: Taker) -> Iterator[None]:
        """lstrace's handler captures; its hand-off goes to ``taker``, not to the worker."""
        from lstrace._delivery import worker

        real = worker.submit
        worker.submit = taker.queue.append
        taker.active = True
        try:
            with self.session(DEAD_URL, "taken"):
                yield
        finally:
            worker.submit = real
            taker.active = False

    @staticmethod
    def _counters() -> Any:
        from lstrace._delivery import worker

        running = worker.running()
        assert running is not None
        return running.counters

    def spooled(self) -> None:
        """Until the queue is in the spool; the server-down variant's calls stay there."""
        from lstrace._delivery import worker

        running = worker.running()
        while running is not None and (running.queue or running._in_flight):
            time.sleep(0.01)
        counters = self._counters()
        self.left_down = counters.get("captured") - counters.get("delivered")

    def delivered(self) -> None:
        """Until every call but the server-down variant's is delivered (not ``flush()``:
        it would wait for those too)."""
        deadline = time.monotonic() + 900
        counters = self._counters()
        while counters.get("captured") - counters.get("delivered") > self.left_down:
            if time.monotonic() > deadline:
                raise RuntimeError("lstrace did not deliver a block within 900 s")
            time.sleep(0.01)


def variants(url: str | None, token: str) -> list[Variant]:
    from lstrace._delivery.stats import Counters

    s = Scopes(token)
    idle, freed = Taker(None), Taker(None)
    converted = Taker(functools.partial(convert, counters=Counters()))
    found = [
        Variant("floor", s.floor),
        Variant("floor + idle thread", lambda: s.floor(idle), idle.drain),
        Variant("capture, freed by a thread", lambda: s.taken(freed), freed.drain),
        Variant("capture, converted by a thread", lambda: s.taken(converted), converted.drain),
        Variant("lstrace, server down", lambda: s.session(DEAD_URL, "down"), s.spooled),
    ]
    if url is not None:
        found.append(Variant("lstrace, delivering", lambda: s.session(url, "live"), s.delivered))
    return found


def caller_cpu() -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(threading.main_thread().ident or 0))


def run(url: str | None, token: str, rounds: int, block: int) -> list[Variant]:
    import lstrace

    lstrace.configure(spool_path=Path(tempfile.mkdtemp()) / "spool.sqlite3")
    model = fake_model()
    found = variants(url, token)
    for v in found:  # warm-up: imports, threads, projects, connections
        with v.scope():
            for i in range(200):
                model.invoke(f"warm up {i}")
        v.drain()
    for r in range(rounds):
        for v in found[r % len(found) :] + found[: r % len(found)]:
            gc.collect()
            cpu0, caller0 = time.process_time(), caller_cpu()
            with v.scope():
                for i in range(block):
                    t0 = time.perf_counter_ns()
                    model.invoke(f"question {i}")
                    v.lat.append(time.perf_counter_ns() - t0)
            caller1 = caller_cpu()
            v.drain()
            waiting = caller_cpu() - caller1  # the main thread's own waiting loop: not counted
            v.cpu.append((time.process_time() - cpu0 - waiting) / block * 1e6)
            v.caller.append((caller1 - caller0) / block * 1e6)
    return found


def report(found: list[Variant], pin: str) -> None:
    floor = found[0]
    f_cpu, f_caller = statistics.median(floor.cpu), statistics.median(floor.caller)
    f_med, f_p99 = percentile(floor.lat, 0.5), percentile(floor.lat, 0.99)
    print(
        f"CPU per call (us; median of rounds), caller latency; {pin}; load {os.getloadavg()[0]:.2f}"
    )
    head = f"{'variant':34} {'CPU':>6} {'+floor':>7} {'caller':>7} {'+floor':>7} {'others':>7}"
    print(head + f" {'median':>7} {'p99':>7} {'p99/floor':>9}")
    for v in found:
        cpu, caller = statistics.median(v.cpu), statistics.median(v.caller)
        med, p99 = percentile(v.lat, 0.5) / 1000, percentile(v.lat, 0.99) / 1000
        print(
            f"{v.name:34} {cpu:6.1f} {cpu - f_cpu:+7.1f} {caller:7.1f} {caller - f_caller:+7.1f}"
            f" {cpu - caller:7.1f} {med:7.0f} {p99:7.0f} {p99 / (f_p99 / 1000):8.2f}x"
        )
    print(
        "\nCPU: process CPU time (all threads) from a block's first call until its background"
        " is done (less the main thread's waiting for it); caller: the main thread's share;"
        f" others: the other threads'. Floor median {f_med / 1000:.0f} us."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running Label Studio, for the delivering variant")
    parser.add_argument("--token", default=TOKEN, help="its API token (legacy token)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--block", type=int, default=2000, help="calls per variant per round")
    parser.add_argument("--pin", type=int, help="run the whole process on this one CPU")
    args = parser.parse_args()
    pin = "not pinned"
    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})
        pin = f"pinned to CPU {args.pin}"
    report(run(args.url, args.token, args.rounds, args.block), pin)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
