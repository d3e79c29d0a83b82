"""The background worker: the hand-off queue, the threads that spool and send, flush and exit.

Modelled on sentry-python's worker: the hand-off on the hot path is an O(1)
``deque.append`` of the call (its conversation and reply already read, as the run
ended); one daemon thread per process drains the queue into the
spool (within ``spool_interval``), another has the :class:`Sender` deliver. A full
queue sends records straight to the spool from the caller's thread, never
drops them. After ``fork()`` the child starts its own worker and spool owner;
at interpreter exit a bounded flush runs and says what is left.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing.util
import os
import sqlite3
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

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
from lstrace._errors import SpoolFull
from lstrace._json import dumps
from lstrace._secrets import Access, redact_url

if TYPE_CHECKING:
    from lstrace._capture.record import CapturedCall
    from lstrace._options import Destination, Options

logger = logging.getLogger("lstrace")

T = TypeVar("T")

SPOOL_CHUNK = 200  # calls converted and committed per spool transaction
# At exit the spooler may take this long to write what is still in memory (local work,
# however short shutdown_timeout is): on a loaded machine 1 s lost calls that 2 s kept.
SPOOL_AT_EXIT_S = 10.0


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


@dataclass(frozen=True)
class Leftover:
    """What a closed worker could not deliver, and where it waits."""

    delivered: int  # confirmed by Label Studio during the closing flush
    in_spool: int  # this process's tasks left in the spool
    # captured calls the spooler could not write before the end, and those (or trace
    # steps) held in memory because the file could not take them: lost with the process
    in_memory: int
    spool_path: Path | None  # None: only the in-memory fallback spool held them
    unpaired: int = 0  # pairwise calls without a partner, set aside as the process ended
    # of in_spool: tasks whose import was in flight (or failed without an answer) when the
    # flush gave up, so they may have arrived
    maybe_arrived: int = 0

    @property
    def pending(self) -> int:
        return self.in_spool + self.in_memory

    def messages(self) -> list[str]:
        """The lines the exit flush prints (none when nothing is left)."""
        lines = []
        if self.unpaired:
            lines.append(
                f"lstrace: {self.unpaired} pairwise calls found no partner before the process "
                f"ended; they are set aside in the spool at {self.spool_path}, never sent: "
                "`lstrace set-aside` lists them (`--retry` sends each alone, its other side "
                "empty)."
            )
        if self.in_spool and self.spool_path is None:
            lines.append(
                f"lstrace: {self.in_spool} tasks were not delivered to Label Studio and are "
                "lost: the spool file could not be opened (see the error above). Set "
                "LSTRACE_SPOOL_PATH or lstrace.configure(spool_path=...) to a writable file."
            )
        elif self.in_spool:
            unsent = self.in_spool - self.maybe_arrived
            if unsent:
                lines.append(
                    f"lstrace: {unsent} tasks were not yet delivered to Label Studio; they "
                    f"wait in the spool at {self.spool_path} and will be sent the next time "
                    "lstrace runs, or now with `lstrace sync`."
                )
            if self.maybe_arrived:
                lines.append(
                    f"lstrace: {self.maybe_arrived} tasks may have arrived in Label Studio: "
                    "their import was still in flight (or failed without an answer) when "
                    f"lstrace stopped waiting. They stay in the spool at {self.spool_path}; "
                    "the next process that uses lstrace, or `lstrace sync`, checks which "
                    "arrived before sending the rest."
                )
        if self.in_memory:
            lines.append(
                f"lstrace: {self.in_memory} captured calls could not be written to the spool "
                "before exit and are lost; see the log above for why."
            )
        return lines


class Worker:
    """One process's queue, spool and threads, and the key of each server it sends to.

    Lifecycle: created on first use; :meth:`close` (flush, stop, say what is left) or
    :meth:`discard` (stop without sending) end it; in a forked child it is
    :meth:`forked` and a successor takes over its keys.
    """

    def __init__(self, settings: Settings, keys: dict[str, Access] | None = None) -> None:
        self.settings = settings
        # destination url (credentials redacted) -> the URL as given and its key; in
        # memory only. Scope entries and sync fill it; the sender reads it.
        self.keys: dict[str, Access] = dict(keys or {})
        self.running = True  # False once closed, discarded, or inherited by a forked child
        self.queue: deque[CapturedCall | Step] = deque()
        self.counters = Counters()
        self.owner = uuid.uuid4().hex
        self.pid = os.getpid()
        self._path = settings.spool_path or default_path()
        self._wake = threading.Event()  # wakes the sender
        self._queued = threading.Event()  # wakes the spooler
        self.ready = threading.Event()  # set once the spool is open and orphans adopted
        self._sleeping = True
        self._idle = threading.Condition()
        self._flushing = 0
        self._flush_passes = 0
        self._stopping = False
        self._in_flight = 0  # calls taken off the queue, not yet in the spool
        self._handoff = threading.Lock()  # held by the spooler around a chunk's commit
        self._key_changed = False
        self._sender: Sender | None = None
        self._spool: Spool | None = None
        self._overflow_lock = threading.Lock()
        self._refused_kinds: set[str] = set()
        self._spool_error_reported = False
        self._owners_checked_at = 0.0  # see _watch_owners
        self._others_seen = False  # other processes were registered in the spool
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

    def remember(self, url: str, given_url: str, api_key: str | None) -> None:
        """How to reach the server of destinations with ``url``: the URL as the user gave
        it, and the key (None keeps the key already known)."""
        known = self.keys.get(url)
        access = Access(given_url, api_key or (known.api_key if known else None))
        if access != known:
            self.keys[url] = access
            if access.api_key is not None:
                self.key_changed()

    def key_changed(self) -> None:
        """A scope (or sync) brought a new key: held destinations are retried at once, and
        tasks other processes left for that server are taken over."""
        self._key_changed = True
        self._wake.set()

    @property
    def spool_path(self) -> Path | None:
        """The spool file (None: the in-memory fallback, the file could not be opened)."""
        spool = self._spool
        return spool.path if spool is not None else self._path

    def waiting_urls(self) -> set[str]:
        """Servers that tasks this process owns or could take over wait for (``sync``)."""
        self.ready.wait()
        return self._spool.waiting_urls() if self._spool is not None else set()

    def flush(self, timeout: float) -> FlushResult:
        """Deliver what is pending, for at most ``timeout`` seconds; returns early when all
        that is pending are pairwise calls waiting for a partner (nothing can be sent)."""
        deadline = time.time() + max(0.0, timeout)
        self.ready.wait(max(0.0, timeout))
        # Rows that ended processes left for these servers are taken over now rather than
        # at the next heartbeat (up to 10 s away), so this flush sends and counts them.
        with contextlib.suppress(sqlite3.Error):  # reported by the sender; flush never raises
            self.take_over()
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
            counted = 0.0
            while True:
                # The spool is counted (a query over this process's rows) at most once a
                # second while the sender's in-memory backlog says rows wait: polling it
                # every wake-up cost the flushing thread more CPU than the sending.
                now = time.time()
                done = now >= deadline or self._blocked_past(deadline, passes)
                lonely = self._only_unpaired(passes)
                if lonely:  # a pass during this flush found no partner for any of them
                    pending = lonely
                    break
                if done or self._waiting_hint() == 0 or now - counted >= 1.0:
                    counted = now
                    pending = self.pending()
                    if pending == 0 or done:
                        break
                with self._idle:
                    self._idle.wait(min(0.05, max(0.0, deadline - time.time())))
        finally:
            with self._idle:
                self._flushing -= 1
        delivered = self.counters.get("delivered") - start
        partnerless = pending if pending and pending == self._only_unpaired(passes) else 0
        return FlushResult(delivered, pending, self.spool_path, partnerless)

    def _only_unpaired(self, passes_at_start: int) -> int:
        """How many pairwise calls wait for a partner, when they are all that is pending and
        a sending pass ran since ``passes_at_start`` (else 0)."""
        sender = self._sender
        if sender is None or self._flush_passes <= passes_at_start:
            return 0
        with self._handoff:  # nothing between the queue and the spool meanwhile
            if self.queue or self._in_flight:
                return 0
            ids, everything = sender.unpaired()
        return len(ids) if everything else 0

    def pending(self) -> int:
        # Read in hand-off order (queue, in flight, spool): a call moving along is never missed.
        # The hand-off lock keeps a chunk from being counted both in flight and in the spool.
        with self._handoff:
            waiting = len(self.queue) + self._in_flight
            spool = self._spool
            return waiting + (spool.count(mine=True) if spool is not None else 0)

    def _waiting_hint(self) -> int:
        """What :meth:`pending` would say, from memory only (the sender's backlog)."""
        sender = self._sender
        waiting = sender.waiting() if sender is not None else 1
        return len(self.queue) + self._in_flight + waiting

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
            duplicates_removed=c.get("duplicates_removed"),
            duplicates_annotated=c.get("duplicates_annotated"),
            duplicate_checks_expired=c.get("duplicate_checks_expired"),
        )

    def close(self, timeout: float, *, final: bool = False) -> Leftover:
        """Flush for at most ``timeout`` seconds, stop the threads and hand this process's
        rows back to the spool; returns what is left. ``final``: the process ends, so a
        pairwise call still waiting for a partner will not get one: it is set aside."""
        self.running = False
        flushed = self.flush(timeout)
        self._stop(timeout=1.0, spooling=SPOOL_AT_EXIT_S)
        spool, sender = self._spool, self._sender
        stopped = not self._thread.is_alive() and not self._spooler.is_alive()
        unpaired = 0
        if final and stopped and spool is not None and sender is not None:
            lonely, _ = sender.unpaired()
            if lonely:
                spool.mark_dead(lonely, "unpaired")
                self.counters.lost("unpaired", len(lonely))
                unpaired = len(lonely)
        # rows and steps the file could not take (disk full) die with the process: lost
        rows, steps = spool.held() if spool is not None else (0, 0)
        in_spool = spool.count(mine=True) - rows if spool is not None else 0
        maybe = min(in_spool, spool.count_maybe_sent()) if spool is not None and in_spool else 0
        if spool is not None and stopped:
            spool.release()
        # what is still in memory only if the spooler could not finish: said, not hidden
        in_memory = len(self.queue) + rows + steps
        return Leftover(flushed.delivered, in_spool, in_memory, self.spool_path, unpaired, maybe)

    def discard(self) -> None:
        """Stop without sending (tests); the spooled rows stay for the next process."""
        self.running = False
        self._stop(timeout=5.0)
        if self._spool is not None:
            self._spool.release()
            self._spool.close()

    def forked(self) -> None:
        """In a forked child: this worker's threads did not survive, and its spool rows
        are the parent's. A successor (with these keys) starts on first use."""
        self.running = False

    def _stop(self, timeout: float, spooling: float | None = None) -> None:
        """Stop both threads, waiting ``timeout`` for each; the spooler, which ends once
        the queue is in the spool, up to ``spooling`` (it returns at once when the queue is
        empty)."""
        self._stopping = True
        self._queued.set()
        self._wake.set()
        self._spooler.join(timeout if spooling is None else max(timeout, spooling))
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
            keys=self.keys,
            connect=s.connect,
        )
        self.take_over()
        self.sweep_traces()
        self._sender.reload_backlog()
        self.ready.set()  # the spooler starts now
        last_beat = time.time()
        while True:
            self._wake.wait(self._wait_time())
            self._wake.clear()
            try:
                self._step()
                self._watch_owners(time.time())
                if time.time() - last_beat > 10:
                    last_beat = time.time()
                    self._spool.heartbeat()
                    self.take_over()  # reloads the backlog itself when it took rows
                    if self.sweep_traces():
                        self._sender.reload_backlog()
            except sqlite3.Error as exc:  # the spool file: disk full, deleted, locked
                if not self._spool_error_reported:
                    self._spool_error_reported = True
                    logger.error(
                        "lstrace: the sender cannot update the spool (%s); it keeps trying", exc
                    )
                time.sleep(0.5)
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
            self.take_over()
            self._sender.retry_held()
        if self._stopping:
            return  # the spooler keeps what is left; delivery resumes in the next process
        flushing = self._flushing > 0
        self._sender.deliver(
            now=time.time(), flush_interval=self.settings.flush_interval, flushing=flushing
        )
        if flushing:
            self._flush_passes += 1

    def take_over(self) -> int:
        """Take over the tasks that processes which ended left for servers this process
        has a key for (tasks for other servers stay where ``lstrace status`` lists them);
        returns how many. Any thread, once :attr:`ready` is set."""
        spool, sender = self._spool, self._sender
        if spool is None or sender is None:
            return 0
        urls = {url for url, access in self.keys.items() if access.api_key is not None}
        adopted = spool.adopt_orphans(urls)
        if adopted:
            logger.info("lstrace: %d tasks left by an earlier process will be sent", adopted)
            sender.reload_backlog()
        return adopted

    def _watch_owners(self, now: float) -> None:
        """At most once a second: when another process registered in the spool has ended,
        take over its rows now rather than at the next heartbeat (up to 10 s away). The
        sender wakes once a second for this only while other processes are registered."""
        spool = self._spool
        if spool is None or now - self._owners_checked_at < 1.0:
            return
        self._owners_checked_at = now
        ended = spool.others_ended()
        self._others_seen = ended is not None
        if ended:
            self.take_over()

    def _wait_time(self) -> float:
        wait = 1.0 if self._others_seen else 10.0
        due = self._sender.next_due(self.settings.flush_interval) if self._sender else None
        if due is not None:
            wait = min(wait, max(0.01, due - time.time()))
        return wait

    def _spool_queue(self) -> None:
        queue = self.queue
        todo = len(queue)  # what is queued now; a caller that keeps adding waits for a round
        while todo > 0:  # in chunks: the first calls are committed soon even behind a long queue
            try:
                with self._handoff:  # popped, committed and no longer in flight at one moment
                    self._in_flight = min(todo, SPOOL_CHUNK)
                    calls = [queue.popleft() for _ in range(self._in_flight)]
                    due_sooner = self._store(calls)
                    todo -= self._in_flight
                    self._in_flight = 0
            finally:
                if self._in_flight:
                    todo -= self._in_flight
                    self._in_flight = 0
            # Woken only when a destination became due sooner (its first rows, a full
            # batch) or a flush sends everything: otherwise the sender already sleeps until
            # the batch is due, and a wake-up per chunk cost a thread switch for nothing.
            if due_sooner or self._flushing:
                self._wake.set()

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

    def _store(self, calls: list[CapturedCall | Step]) -> bool:
        """Convert and spool ``calls``; True when a destination became due sooner (see
        :meth:`Sender.note_spooled`)."""
        assert self._spool is not None
        due_sooner = False
        steps = [c for c in calls if isinstance(c, Step)]
        if steps:  # trace mode: steps are spooled as they come, a task when the root ends
            for dest, n in _traces.store(self._spool, steps, self.counters, self._refused).items():
                if self._sender is not None:
                    due_sooner |= self._sender.note_spooled(dest, n, time.time())
        refused: set[str] = set()  # run ids of calls that could not be stored

        def refuse(content: dict[str, Any], exc: Exception) -> None:
            refused.add(str(content.get("run_id")))
            self._refused(content, exc)

        # The content alone: the sender builds the task from it when it sends. Storing the
        # import body beside it doubled every row, and SQLite's cost per row (insert, the
        # attempt mark, delete) grows with its size more than building the task costs.
        # Each call is converted (from the conversation and reply record.settle read as
        # its run ended), encoded and let go of at once (its content is a dozen dicts): a
        # chunk of them alive until the commit set off garbage collections that also
        # traversed the app's young objects.
        items: list[tuple[Destination, str, str]] = []
        calls_only = [c for c in calls if not isinstance(c, Step)]
        calls.clear()
        captured = len(calls_only)
        for call in _one_by_one(calls_only):
            try:
                content = shape(to_content(call), call.options, self.counters)
            except Exception as exc:
                logger.exception("lstrace: could not convert the call of run %s", call.run_id)
                self.counters.lost("convert", detail=type(exc).__name__)
                continue
            if content is None:
                continue
            try:
                run_id = str(content["run_id"])
                items.append((call.options.destination, run_id, dumps(content)))
            except Exception as exc:  # a value JSON cannot hold
                refuse(content, exc)
        self.counters.add("captured", captured)
        added = self._spool.add_encoded(items, refused=refuse) if items else 0
        self.counters.add("spooled", added)
        if self._sender is not None:
            # by key: hashing a Destination hashes its whole label config, per call
            dests = {dest.key: dest for dest, _, _ in items}
            kept = [dest.key for dest, run_id, _ in items if run_id not in refused]
            for key, n in Counter(kept).items():
                due_sooner |= self._sender.note_spooled(dests[key], min(n, added), time.time())
        return due_sooner

    def _refused(self, content: dict[str, Any], exc: Exception) -> None:
        """A call the spool could not store (a value JSON cannot hold): counted, and
        logged once per kind of error so a stream of them does not flood the log."""
        kind = type(exc).__name__
        if isinstance(exc, SpoolFull):  # the file and the memory bound are both full
            self.counters.lost("spool_full")
            return  # the spool logged it once
        self.counters.lost("convert", detail=kind)
        if kind not in self._refused_kinds:
            self._refused_kinds.add(kind)
            logger.error(
                "lstrace: the call (or trace step) of run %s could not be stored (%s: %s); it is "
                "counted as failed in lstrace.stats() (convert:%s), other calls are not affected",
                content.get("run_id"),
                kind,
                exc,
                kind,
            )

    def _overflow(self, call: CapturedCall | Step) -> None:
        """The queue is full: spool this call from the caller's thread rather than drop it."""
        if self._spool is None:
            self.queue.append(call)  # the spool is still opening: the bound is soft for a moment
            return
        if isinstance(call, Step) and call.kind == "end":
            # Queued all the same (one small record per trace past the bound): the end
            # closes its trace, so it must follow the trace's steps still in the queue.
            # Other steps may be spooled out of order: a trace's steps are read by seq.
            self.queue.append(call)
            self._queued.set()
            return
        with self._overflow_lock:
            self.counters.add("overflowed")
            try:
                if self._store([call]):
                    self._wake.set()
            except Exception as exc:  # never into the app: counted, like any call lost here
                self.counters.lost("convert", detail=type(exc).__name__)

    def _open_spool(self) -> Spool:
        try:
            return Spool(self._path, self.owner)
        except Exception as exc:
            logger.error(
                "lstrace: cannot open the spool at %s (%s); tasks are kept in memory only until "
                "sent. Set LSTRACE_SPOOL_PATH or lstrace.configure(spool_path=...) "
                "to a writable file.",
                self._path,
                exc,
            )
            return Spool(None, self.owner)


def _one_by_one(items: list[T]) -> Iterator[T]:
    """``items`` in order, each let go of by the list as it is handed out (the list is
    emptied): what was handed out lives only as long as its consumer keeps it."""
    items.reverse()
    while items:
        yield items.pop()


# -- the process's worker, used by the handler, the scopes and the public API -----------


class _Current:
    """The process's settings and worker (a holder: module state without ``global``)."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.worker: Worker | None = None  # not running once closed or forked
        self.lock = threading.Lock()


_current = _Current()


def _get() -> Worker:
    """The running worker, started on first use; a successor of a closed (or forked) one
    keeps its keys."""
    worker = _current.worker
    if worker is None or not worker.running:
        with _current.lock:
            worker = _current.worker
            if worker is None or not worker.running:
                keys = worker.keys if worker is not None else None
                worker = _current.worker = Worker(_current.settings, keys)
                _register_process_exit()
    return worker


def submit(call: CapturedCall | Step) -> None:
    """Hand a captured call to this process's worker (O(1))."""
    worker = _current.worker
    (worker if worker is not None and worker.running else _get()).submit(call)


def count_lost(reason: Loss, n: int = 1) -> None:
    """Count calls lost before they reached the worker (sampled out, abandoned runs)."""
    _get().counters.lost(reason, n)


def prepare(options: Options) -> None:
    """Called at scope entry: remember the key for the server and start the worker.

    With capture off nothing starts; a scope without a key keeps the key known for
    its server, if any (its calls wait in the spool until one is given)."""
    if options.enabled:
        _get().remember(options.destination.url, options.url, options.api_key)


def configure(**changes: Any) -> Settings:
    """Replace settings; a running worker is flushed and its successor uses them."""
    new = replace(_current.settings, **{k: v for k, v in changes.items() if v is not None})
    shutdown(timeout=new.shutdown_timeout, report=False)
    _current.settings = new
    return new


def running() -> Worker | None:
    """The running worker, if one was started (and not closed) in this process."""
    worker = _current.worker
    return worker if worker is not None and worker.running else None


def flush(timeout: float) -> FlushResult:
    worker = running()
    if worker is None:
        return FlushResult(0, 0, None)
    return worker.flush(timeout)


def stats() -> Stats:
    return _get().stats()


def sync(*, api_key: str | None, url: str | None, timeout: float) -> FlushResult:
    """Deliver what earlier processes left in the spool, using ``api_key`` for every server."""
    worker = _get()
    worker.ready.wait(timeout)
    urls = worker.waiting_urls()
    given = url.rstrip("/") if url is not None else None
    for server in urls if given is None else urls & {given, redact_url(given)}:
        known = worker.keys.get(server)
        if api_key or (known is not None and known.api_key):
            worker.remember(server, given or (known.url if known else server), api_key)
    worker.take_over()  # here, so that the flush below counts (and waits for) those tasks
    worker.key_changed()
    return worker.flush(timeout)


def shutdown(
    *, timeout: float | None = None, report: bool = True, final: bool = False
) -> FlushResult | None:
    """Flush for at most ``timeout`` seconds, stop the worker, hand back what is left
    (and, with ``report``, print the exit lines on stderr). ``final``: the process ends
    (see :meth:`Worker.close`)."""
    with _current.lock:
        worker = running()
        if worker is None:
            return None
        worker.running = False  # from now on a call starts a successor
    left = worker.close(
        _current.settings.shutdown_timeout if timeout is None else timeout, final=final
    )
    for line in left.messages() if report else []:
        print(line, file=sys.stderr)
    return FlushResult(left.delivered, left.pending, left.spool_path)


def reset() -> None:
    """Stop the worker without sending and forget its keys and settings (tests)."""
    with _current.lock:
        worker, _current.worker = _current.worker, None
    if worker is not None and worker.pid == os.getpid():
        worker.discard()
    _current.settings = Settings()


def _at_exit() -> None:
    try:
        shutdown(final=True)
    except Exception:
        logger.exception("lstrace: error during the exit flush")


def _register_process_exit() -> None:
    """multiprocessing children end with os._exit, skipping atexit; they do run
    multiprocessing's finalizers, so the exit flush registers there too (it runs once)."""
    multiprocessing.util.Finalize(None, _at_exit, exitpriority=10)


class _ExitFlushAfterFork:
    """A multiprocessing child clears the finalizers before it runs its target, and a
    spawn or forkserver child imports the app (which may call ``enable()`` and so start a
    worker, registering its exit flush) before that: each child registers it again right
    after the clearing (multiprocessing's after-fork hooks run then, for every start method)."""

    def __call__(self, _: object) -> None:
        if running() is not None:
            _register_process_exit()


_exit_flush_after_fork = _ExitFlushAfterFork()
multiprocessing.util.register_after_fork(_exit_flush_after_fork, _exit_flush_after_fork)


def _after_fork_in_child() -> None:
    _current.lock = threading.Lock()  # another thread may have held it at the fork
    if _current.worker is not None:
        _current.worker.forked()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
