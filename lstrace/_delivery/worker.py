"""The background worker: the hand-off queue, the threads that spool and send, flush and exit.

Modelled on sentry-python's worker: capture on the hot path is an O(1)
``deque.append``; one daemon thread per process drains the queue into the
spool (within ``spool_interval``), another has the :class:`Sender` deliver. A full
queue sends records straight to the spool from the caller's thread, never
drops them. After ``fork()`` the child starts its own worker and spool owner;
at interpreter exit a bounded flush runs and says what is left.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Everything the threads run is imported here, on the thread importing lstrace: a thread
# that imports races an application importing the same module (it sees it half-initialised),
# and a fork() that lands while a thread holds an import lock deadlocks the child.
from lstrace._capture.record import to_content
from lstrace._capture.shaping import shape
from lstrace._capture.trace_record import Step
from lstrace._client import Connect, open_client
from lstrace._delivery import traces as _traces
from lstrace._delivery.sender import Sender
from lstrace._delivery.spool import Spool, default_path
from lstrace._delivery.stats import Counters, FlushResult, Loss, Stats
from lstrace._secrets import Access, redact_url

if TYPE_CHECKING:
    from lstrace._capture.record import CapturedCall
    from lstrace._options import Destination, Options

logger = logging.getLogger("lstrace")

SPOOL_CHUNK = 200  # calls converted and committed per spool transaction


@dataclass(frozen=True)
class Settings:
    """Process-wide delivery settings (see :func:`lstrace.configure`)."""

    spool_path: Path | None = None  # None: LSTRACE_SPOOL_PATH or the per-user data dir
    batch_size: int = 1000  # Label Studio spends ~1 ms a task plus ~45 ms a request
    flush_interval: float = 1.0  # max seconds a task waits for its batch to fill
    spool_interval: float = 0.05  # max seconds a captured call stays only in memory
    # A captured call holds LangChain's objects (about 4 KB for a short chat call): this
    # bound keeps a CPU-saturating caller within a few MB; past it callers spool themselves.
    max_queue: int = 1_000
    max_batch_bytes: int = 8_000_000
    request_timeout: float = 30.0
    max_backoff: float = 60.0
    shutdown_timeout: float = 5.0
    connect: Connect = open_client  # the seam: offline tests pass a fake client


class Worker:
    """One process's queue, spool and sender thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue: deque[CapturedCall | Step] = deque()
        self.counters = Counters()
        self.owner = uuid.uuid4().hex
        self.pid = os.getpid()
        self.spool_path: Path | None = settings.spool_path or default_path()
        self._wake = threading.Event()  # wakes the sender
        self._queued = threading.Event()  # wakes the spooler
        self.ready = threading.Event()  # set once the spool is open and orphans adopted
        self._sleeping = True
        self._idle = threading.Condition()
        self._flushing = 0
        self._flush_passes = 0
        self._stopping = False
        self._in_flight = 0  # calls taken off the queue, not yet in the spool
        self._key_changed = False
        self._sender: Sender | None = None
        self._spool: Spool | None = None
        self._overflow_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="lstrace-sender", daemon=True)
        # Spooling has a thread of its own: a send can block for request_timeout, and a
        # captured call must reach the spool within spool_interval whatever the network does.
        self._spooler = threading.Thread(
            target=self._spool_loop, name="lstrace-spooler", daemon=True
        )
        self._thread.start()
        self._spooler.start()

    # -- called from user threads ---------------------------------------------------

    def submit(self, call: CapturedCall | Step) -> None:
        """Hand off a captured call in O(1); the hot path."""
        queue = self.queue
        if len(queue) >= self.settings.max_queue:
            self._overflow(call)
            return
        queue.append(call)
        if self._sleeping:
            self._sleeping = False
            self._queued.set()

    def key_changed(self) -> None:
        """A scope (or sync) brought a new key: held destinations are retried at once."""
        self._key_changed = True
        self._wake.set()

    def flush(self, timeout: float) -> FlushResult:
        """Deliver what is pending, for at most ``timeout`` seconds."""
        deadline = time.time() + max(0.0, timeout)
        self.ready.wait(max(0.0, timeout))
        # Everything captured before flush() goes to the spool first, so it leaves in as few
        # imports as possible rather than in whatever part the spooler had reached.
        self._queued.set()
        while (self.queue or self._in_flight) and time.time() < deadline:
            time.sleep(0.002)
        start = self.counters.get("delivered")
        passes = self._flush_passes
        with self._idle:
            self._flushing += 1
        try:
            self._wake.set()
            while True:
                pending = self.pending()
                if pending == 0 or time.time() >= deadline or self._blocked_past(deadline, passes):
                    break
                with self._idle:
                    self._idle.wait(min(0.05, max(0.0, deadline - time.time())))
        finally:
            with self._idle:
                self._flushing -= 1
        return FlushResult(self.counters.get("delivered") - start, pending, self.spool_path)

    def pending(self) -> int:
        # Read in hand-off order (queue, in flight, spool): a call moving along is never missed.
        waiting = len(self.queue) + self._in_flight
        spool = self._spool
        return waiting + (spool.count(mine=True) if spool is not None else 0)

    def stats(self) -> Stats:
        spool = self._spool
        c = self.counters
        return Stats(
            captured=c.get("captured"),
            delivered=c.get("delivered"),
            retried=c.get("retried"),
            spooled=c.get("spooled"),
            pending=self.pending(),
            failed=c.get("failed"),
            dead=spool.count_dead() if spool is not None else 0,
            mask_failed=c.get("mask_failed"),
            filter_failed=c.get("filter_failed"),
            failed_by_reason=c.by_prefix("failed:"),
            dropped_by_reason=c.by_prefix("dropped:"),
            overflowed=c.get("overflowed"),
        )

    def stop(self, timeout: float) -> None:
        self._stopping = True
        self._queued.set()
        self._wake.set()
        self._spooler.join(timeout)
        self._thread.join(timeout)

    # -- the thread -------------------------------------------------------------------

    def _blocked_past(self, deadline: float, passes_at_start: int) -> bool:
        """True when a full sending pass ran during this flush and every destination
        left is backed off beyond ``deadline`` (server down, key refused)."""
        sender = self._sender
        if sender is None or self.queue or self._in_flight:
            return False
        if self._flush_passes <= passes_at_start:
            return False
        states = list(sender.backoff.values())
        return bool(states) and all(s.next_at > deadline for s in states)

    def _run(self) -> None:
        self._spool = self._open_spool()
        s = self.settings
        self._sender = Sender(
            self._spool,
            self.counters,
            batch_size=s.batch_size,
            max_batch_bytes=s.max_batch_bytes,
            request_timeout=s.request_timeout,
            max_backoff=s.max_backoff,
            keys=_keys,
            connect=s.connect,
        )
        adopted = self._spool.adopt_orphans()
        if adopted:
            logger.info("lstrace: %d tasks left by an earlier process will be sent", adopted)
        self.sweep_traces()
        self._sender.reload_backlog()
        self.ready.set()  # the spooler starts now
        last_beat = time.time()
        while True:
            self._wake.wait(self._wait_time())
            self._wake.clear()
            try:
                self._step()
                if time.time() - last_beat > 10:
                    last_beat = time.time()
                    self._spool.heartbeat()
                    if self._spool.adopt_orphans() | self.sweep_traces():
                        self._sender.reload_backlog()
            except Exception:
                logger.exception("lstrace: the sender hit an unexpected error; it keeps going")
                time.sleep(0.5)
            with self._idle:
                self._idle.notify_all()
            if self._stopping:
                break
        self._sender.close()

    def _spool_loop(self) -> None:
        self.ready.wait()
        while True:
            self._sleeping = not self.queue
            # Half the interval: the commit itself takes time, and the promise is the whole.
            self._queued.wait(self.settings.spool_interval / 2 if self.queue else 1.0)
            self._queued.clear()
            try:
                if self.queue:
                    self._spool_queue()
            except Exception:
                logger.exception("lstrace: the spooler hit an unexpected error; it keeps going")
                time.sleep(0.5)
            if self._stopping and not self.queue:
                break

    def _step(self) -> None:
        assert self._sender is not None
        if self._key_changed:
            self._key_changed = False
            self._sender.retry_held()
        if self._stopping:
            return  # the spooler keeps what is left; delivery resumes in the next process
        flushing = self._flushing > 0
        self._sender.deliver(
            now=time.time(), flush_interval=self.settings.flush_interval, flushing=flushing
        )
        if flushing:
            self._flush_passes += 1

    def _wait_time(self) -> float:
        wait = 10.0
        due = self._sender.next_due(self.settings.flush_interval) if self._sender else None
        if due is not None:
            wait = min(wait, max(0.01, due - time.time()))
        return wait

    def _spool_queue(self) -> None:
        queue = self.queue
        todo = len(queue)  # what is queued now; a caller that keeps adding waits for a round
        while todo > 0:  # in chunks: the first calls are committed soon even behind a long queue
            self._in_flight = min(todo, SPOOL_CHUNK)  # before popping: no gap in pending()
            try:
                self._store([queue.popleft() for _ in range(self._in_flight)])
            finally:
                todo -= self._in_flight
                self._in_flight = 0
            self._wake.set()  # the sender decides whether a batch is due

    def sweep_traces(self) -> int:
        """Traces that will not end (their process is gone, or idle too long) become tasks;
        runs at start and every heartbeat. Returns how many."""
        spool = self._spool
        if spool is None:
            return 0
        added = _traces.sweep(spool, self.counters)
        if self._sender is not None:
            for dest, n in added.items():
                self._sender.note_spooled(dest, n, time.time())
        return sum(added.values())

    def _store(self, calls: list[CapturedCall | Step]) -> None:
        assert self._spool is not None
        steps = [c for c in calls if isinstance(c, Step)]
        if steps:  # trace mode: steps are spooled as they come, a task when the root ends
            for dest, n in _traces.store(self._spool, steps, self.counters).items():
                if self._sender is not None:
                    self._sender.note_spooled(dest, n, time.time())
        items: list[tuple[Destination, dict[str, Any]]] = []
        calls_only = [c for c in calls if not isinstance(c, Step)]
        for call in calls_only:
            try:
                content = shape(to_content(call), call.options, self.counters)
                if content is not None:
                    items.append((call.options.destination, content))
            except Exception as exc:
                logger.exception("lstrace: could not convert the call of run %s", call.run_id)
                self.counters.lost("convert", detail=type(exc).__name__)
        self.counters.add("captured", len(calls_only))
        added = self._spool.add(items) if items else 0
        self.counters.add("spooled", added)
        if self._sender is not None:
            for dest, n in Counter(dest for dest, _ in items).items():
                self._sender.note_spooled(dest, min(n, added), time.time())

    def _overflow(self, call: CapturedCall | Step) -> None:
        """The queue is full: spool this call from the caller's thread rather than drop it."""
        if self._spool is None:
            self.queue.append(call)  # the spool is still opening: the bound is soft for a moment
            return
        with self._overflow_lock:
            self.counters.add("overflowed")
            self._store([call])

    def _open_spool(self) -> Spool:
        try:
            return Spool(self.spool_path, self.owner)
        except Exception as exc:
            logger.error(
                "lstrace: cannot open the spool at %s (%s); tasks are kept in memory only until "
                "sent. Set LSTRACE_SPOOL_PATH or lstrace.configure(spool_path=...) "
                "to a writable file.",
                self.spool_path,
                exc,
            )
            self.spool_path = None
            return Spool(None, self.owner)


# -- module-level access, used by the handler and the public API -----------------------

_settings = Settings()
_worker: Worker | None = None
_lock = threading.Lock()
# destination url (credentials redacted) -> the URL as given and its key; memory only
_keys: dict[str, Access] = {}


def _get() -> Worker:
    global _worker
    worker = _worker
    if worker is None:
        with _lock:
            worker = _worker
            if worker is None:
                worker = _worker = Worker(_settings)
                _register_process_exit()
    return worker


def submit(call: CapturedCall | Step) -> None:
    """Hand a captured call to this process's worker (O(1))."""
    (_worker or _get()).submit(call)


def count_lost(reason: Loss, n: int = 1) -> None:
    """Count calls lost before they reached the worker (sampled out, abandoned runs)."""
    _get().counters.lost(reason, n)


def prepare(options: Options) -> None:
    """Called at scope entry: remember the key for the server and start the worker.

    With capture off nothing starts; a scope without a key keeps the key known for
    its server, if any (its calls wait in the spool until one is given)."""
    if not options.enabled:
        return
    url = options.destination.url
    worker = _get()
    known = _keys.get(url)
    access = Access(options.url, options.api_key or (known.api_key if known else None))
    if access != known:
        _keys[url] = access
        if access.api_key is not None:
            worker.key_changed()


def configure(**changes: Any) -> Settings:
    """Replace settings; a running worker is flushed and restarted with them."""
    global _settings
    new = replace(_settings, **{k: v for k, v in changes.items() if v is not None})
    shutdown(timeout=new.shutdown_timeout, report=False)
    _settings = new
    return new


def flush(timeout: float) -> FlushResult:
    worker = _worker
    if worker is None:
        return FlushResult(0, 0, None)
    return worker.flush(timeout)


def stats() -> Stats:
    return _get().stats()


def sync(*, api_key: str | None, url: str | None, timeout: float) -> FlushResult:
    """Deliver what earlier processes left in the spool, using ``api_key`` for every server."""
    worker = _get()
    worker.ready.wait(timeout)
    spool = worker._spool
    urls = {d.url for d in spool.destinations()} if spool is not None else set()
    given = url.rstrip("/") if url is not None else None
    for server in urls if given is None else urls & {given, redact_url(given)}:
        known = _keys.get(server)
        key = api_key or (known.api_key if known else None)
        if key:
            _keys[server] = Access(given or (known.url if known else server), key)
    worker.key_changed()
    return worker.flush(timeout)


def shutdown(*, timeout: float | None = None, report: bool = True) -> FlushResult | None:
    """Flush for at most ``timeout`` seconds, stop the worker, hand back what is left."""
    global _worker
    with _lock:
        worker, _worker = _worker, None
    if worker is None:
        return None
    flushed = worker.flush(_settings.shutdown_timeout if timeout is None else timeout)
    worker.stop(timeout=1.0)
    spool = worker._spool
    in_spool = spool.count(mine=True) if spool is not None else 0
    in_memory = len(worker.queue)  # only if the spooler could not finish: said, not hidden
    if spool is not None and not worker._thread.is_alive() and not worker._spooler.is_alive():
        spool.release()
    result = FlushResult(flushed.delivered, in_spool + in_memory, flushed.spool_path)
    if report and in_spool and worker.spool_path is None:  # the in-memory fallback spool
        print(
            f"lstrace: {in_spool} tasks were not delivered to Label Studio and are lost: the "
            "spool file could not be opened (see the error above). Set LSTRACE_SPOOL_PATH or "
            "lstrace.configure(spool_path=...) to a writable file.",
            file=sys.stderr,
        )
    elif report and in_spool:
        print(
            f"lstrace: {in_spool} tasks were not yet delivered to Label Studio; they wait in "
            f"the spool at {worker.spool_path} and will be sent the next time lstrace runs, "
            "or now with `lstrace sync`.",
            file=sys.stderr,
        )
    if report and in_memory:
        print(
            f"lstrace: {in_memory} captured calls could not be written to the spool before "
            "exit and are lost; see the log above for why.",
            file=sys.stderr,
        )
    return result


def reset() -> None:
    """Stop the worker without sending and forget all state (tests, ``configure``)."""
    global _worker, _settings
    with _lock:
        worker, _worker = _worker, None
    if worker is not None:
        worker.stop(timeout=5.0)
        if worker._spool is not None:
            worker._spool.release()
            worker._spool.close()
    _keys.clear()
    _settings = Settings()


def _at_exit() -> None:
    try:
        shutdown()
    except Exception:
        logger.exception("lstrace: error during the exit flush")


def _register_process_exit() -> None:
    """multiprocessing children end with os._exit, skipping atexit; they do run
    multiprocessing's finalizers, so the exit flush registers there too (it runs once)."""
    import multiprocessing.util

    multiprocessing.util.Finalize(None, _at_exit, exitpriority=10)


def _after_fork_in_child() -> None:
    global _worker, _lock
    _worker = None  # the parent's thread and queue did not survive the fork: start afresh
    _lock = threading.Lock()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
