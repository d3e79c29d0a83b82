"""The sender: from spooled rows to confirmed Label Studio imports, with the retry policy.

Runs only on the background worker thread. Per destination it takes the
oldest spooled rows, resolves the project, checks on the server for rows whose
earlier attempt may have arrived (exactly once), imports the rest in one bulk
request, and deletes them from the spool once confirmed.

Failure policy: 429/5xx/timeouts/connection errors back off exponentially with
full jitter, honouring Retry-After. 401/403/404 and unusable projects are
reported once, clearly, and the tasks stay spooled (re-tried every minute and
at once when a new key is given). A batch the server refuses is split until
the refused task is isolated; that task is set aside as dead, never silently lost.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from lstrace._client import LabelStudioClient
from lstrace._errors import DeliveryFailure, FailureKind
from lstrace._options import Destination
from lstrace._projects import Project, ProjectCache
from lstrace._spool import Row, Spool
from lstrace._stats import Counters
from lstrace._task import build_task

logger = logging.getLogger("lstrace")

HOLD_S = 60.0  # how long configuration failures wait before the next try


@dataclass
class Backoff:
    attempts: int = 0
    next_at: float = 0.0
    held: bool = False  # a configuration failure, not a transient one


class Sender:
    """Delivers spooled tasks; owns clients, the project cache and the backoff state."""

    def __init__(
        self,
        spool: Spool,
        counters: Counters,
        *,
        batch_size: int,
        max_batch_bytes: int,
        request_timeout: float,
        max_backoff: float,
        base_backoff: float = 0.5,
    ) -> None:
        self.spool = spool
        self.counters = counters
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.request_timeout = request_timeout
        self.max_backoff = max_backoff
        self.base_backoff = base_backoff
        self.keys: dict[str, str] = {}
        self.projects = ProjectCache()
        self.backoff: dict[str, Backoff] = {}
        self._clients: dict[tuple[str, str], LabelStudioClient] = {}
        self._reported: set[str] = set()

    # -- configuration ---------------------------------------------------------

    def set_key(self, url: str, api_key: str) -> None:
        """Use ``api_key`` for ``url``; a held destination of that server is retried at once."""
        if self.keys.get(url) == api_key:
            return
        self.keys[url] = api_key
        for state in self.backoff.values():
            state.next_at = 0.0
        self._reported.clear()

    def _client(self, dest: Destination) -> LabelStudioClient:
        key = self.keys.get(dest.url)
        if key is None:
            raise DeliveryFailure(
                FailureKind.AUTH,
                f"no Label Studio API key for {dest.url}: spooled tasks for {dest.describe()} "
                "wait until a scope with that url and a key is entered "
                "(or LABEL_STUDIO_API_KEY is set for `lstrace sync`).",
            )
        client = self._clients.get((dest.url, key))
        if client is None:
            client = LabelStudioClient(dest.url, key, timeout=self.request_timeout)
            self._clients[(dest.url, key)] = client
        return client

    # -- delivery ------------------------------------------------------------------

    def next_due(self) -> float | None:
        """Earliest time a backed-off destination may be tried again."""
        times = [b.next_at for b in self.backoff.values() if b.attempts]
        return min(times) if times else None

    def deliver(self, *, now: float, flush_interval: float, flushing: bool) -> int:
        """Send what is due; returns how many tasks were confirmed."""
        delivered = 0
        for dest in self.spool.destinations():
            state = self.backoff.get(dest.key)
            if state is not None and state.next_at > now:
                continue
            rows = self.spool.take(dest, self.batch_size)
            if not rows:
                continue
            due = (
                flushing or len(rows) >= self.batch_size or rows[0].created + flush_interval <= now
            )
            if not due:
                continue
            try:
                delivered += self._send(dest, rows)
            except DeliveryFailure as failure:
                self._failed(dest, rows, failure)
            else:
                self.backoff.pop(dest.key, None)
        return delivered

    def _send(self, dest: Destination, rows: Sequence[Row]) -> int:
        client = self._client(dest)
        project = self.projects.resolve(dest, client)
        confirmed = self._already_there(client, project, rows)
        rows = [r for r in rows if r.id not in confirmed]
        for chunk in self._chunks(project, rows):
            confirmed |= self._import(client, project, chunk)
        return len(confirmed)

    def _already_there(
        self, client: LabelStudioClient, project: Project, rows: Sequence[Row]
    ) -> set[int]:
        """Rows whose earlier, ambiguous attempt did arrive: forget them instead of re-sending."""
        maybe = [r for r in rows if r.maybe_sent]
        if not maybe:
            return set()
        there = client.existing_run_ids(project.id, [r.run_id for r in maybe])
        ids = {r.id for r in maybe if r.run_id in there}
        if ids:
            self.spool.delete(ids)
            self.counters.add("delivered", len(ids))
            logger.info(
                "lstrace: %d tasks had arrived despite a failed attempt; not re-sent", len(ids)
            )
        self.spool.mark_attempt([r.id for r in maybe if r.id not in ids], maybe_sent=False)
        return ids

    def _chunks(
        self, project: Project, rows: Sequence[Row]
    ) -> list[list[tuple[Row, dict[str, object]]]]:
        chunks: list[list[tuple[Row, dict[str, object]]]] = [[]]
        size = 0
        for row in rows:
            try:
                task = build_task(row.content, project.target)
            except Exception as exc:
                logger.exception("lstrace: could not build the task for run %s", row.run_id)
                self._dead([row], f"build:{type(exc).__name__}")
                continue
            task_size = len(json.dumps(task))
            if chunks[-1] and size + task_size > self.max_batch_bytes:
                chunks.append([])
                size = 0
            chunks[-1].append((row, task))
            size += task_size
        return [c for c in chunks if c]

    def _import(
        self,
        client: LabelStudioClient,
        project: Project,
        chunk: list[tuple[Row, dict[str, object]]],
    ) -> set[int]:
        ids = [row.id for row, _ in chunk]
        self.spool.mark_attempt(ids, maybe_sent=True)  # a crash mid-request leaves this mark
        try:
            client.import_tasks(project.id, [task for _, task in chunk])
        except DeliveryFailure as failure:
            if not failure.maybe_sent:
                self.spool.mark_attempt(ids, maybe_sent=False)
            if failure.kind is FailureKind.REJECTED and len(chunk) > 1:
                half = len(chunk) // 2
                return self._import(client, project, chunk[:half]) | self._import(
                    client, project, chunk[half:]
                )
            if failure.kind is FailureKind.REJECTED:
                self._dead([chunk[0][0]], failure.reason)
                logger.error("lstrace: task for run %s set aside: %s", chunk[0][0].run_id, failure)
                return set()
            raise
        self.spool.delete(ids)
        self.counters.add("delivered", len(ids))
        return set(ids)

    def _dead(self, rows: Sequence[Row], reason: str) -> None:
        self.spool.mark_dead([r.id for r in rows], reason)
        self.counters.add("failed", len(rows))
        self.counters.add(f"failed:{reason}", len(rows))

    def _failed(self, dest: Destination, rows: Sequence[Row], failure: DeliveryFailure) -> None:
        state = self.backoff.setdefault(dest.key, Backoff())
        state.attempts += 1
        self.counters.add("retried", len(rows))
        self.counters.add(f"retry:{failure.reason}", 1)
        if failure.kind is FailureKind.NOT_FOUND and dest.project_id is None:
            self.projects.forget(dest)  # the project was deleted: create it again
        if failure.kind is FailureKind.RETRY or (
            failure.kind is FailureKind.NOT_FOUND and dest.project_id is None
        ):
            delay = min(self.max_backoff, self.base_backoff * 2 ** min(state.attempts - 1, 20))
            delay = random.uniform(delay / 2, delay)
            if failure.retry_after is not None:
                delay = max(delay, min(failure.retry_after, self.max_backoff * 5))
            state.next_at = time.time() + delay
            state.held = False
            log = (
                logger.warning
                if state.attempts in (1, 5) or state.attempts % 50 == 0
                else logger.debug
            )
            log(
                "lstrace: %s; %d tasks kept, next try in %.1fs (attempt %d)",
                failure,
                len(rows),
                delay,
                state.attempts,
            )
            return
        state.next_at = time.time() + HOLD_S
        state.held = True
        message = str(failure)
        if message not in self._reported:
            self._reported.add(message)
            logger.error(
                "lstrace: %s (%s; tasks are kept in the spool at %s)",
                message,
                dest.describe(),
                self.spool.path,
            )
