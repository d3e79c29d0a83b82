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

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from lstrace._client import Client, Connect, encode_json, open_client
from lstrace._delivery.projects import Project, ProjectCache
from lstrace._delivery.repair import Repair
from lstrace._delivery.spool import Row, Spool
from lstrace._delivery.stats import Counters, Failed
from lstrace._delivery.task import build_pair_task, build_task
from lstrace._delivery.trace_task import build_trace_task
from lstrace._errors import DeliveryFailure, FailureKind
from lstrace._labelconfig import PairTarget, Target
from lstrace._options import Destination
from lstrace._secrets import Access, has_redacted_credentials

logger = logging.getLogger("lstrace")

HOLD_S = 60.0  # how long configuration failures wait before the next try


PAIR_TIMEOUT_S = 60  # a pairwise call without a partner by then is set aside


@dataclass
class Unit:
    """The spooled rows one task is built from (one, or two for a pair), and the task
    encoded once as the JSON the import sends."""

    rows: list[Row]
    body: bytes


def pair_up(rows: Sequence[Row]) -> tuple[list[list[Row]], list[Row]]:
    """Pairs in capture order: a call with two generations alone, others two by two per
    ``pair_group``. Returns the pairs and the rows still waiting for a partner."""
    pairs: list[list[Row]] = []
    waiting: dict[str, Row] = {}
    for row in rows:
        group = row.content.get("pair_group")
        if group is None:
            pairs.append([row])
        elif group in waiting:
            pairs.append([waiting.pop(group), row])
        else:
            waiting[group] = row
    return pairs, list(waiting.values())


def own_target(dest: Destination) -> Target | None:
    """The target of the destination's own label config, known without the server, when
    its tasks can be built one call at a time (not a pair, not a bare ``project_id``)."""
    target = dest.offline_target
    return target if isinstance(target, Target) else None


@dataclass
class Backlog:
    """Rows waiting in the spool for one destination."""

    dest: Destination
    count: int
    oldest: float  # created time of the oldest row


@dataclass
class Backoff:
    attempts: int = 0
    next_at: float = 0.0


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
        keys: Mapping[str, Access],
        connect: Connect = open_client,
        base_backoff: float = 0.5,
    ) -> None:
        self.spool = spool
        self.counters = counters
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.request_timeout = request_timeout
        self.max_backoff = max_backoff
        self.base_backoff = base_backoff
        self.keys = keys  # url -> URL as given and key: the process's one map, kept by scopes
        self.connect = connect
        self.projects = ProjectCache()
        self.backoff: dict[str, Backoff] = {}
        self._clients: dict[tuple[str, str], Client] = {}
        self._reported: set[str] = set()
        self._surrogates_reported = False
        self._warmed: set[str] = set()  # destinations whose project was looked up early
        self._own_targets: dict[str, Target | None] = {}  # see _built_for
        # What waits in the spool, per destination, kept in memory so that deciding
        # whether a batch is due never reads the spool (the spooler adds, we subtract).
        self._backlog: dict[str, Backlog] = {}
        self._backlog_lock = threading.Lock()
        # Per pairwise destination: the rows its last pass found no partner for.
        self._lonely: dict[str, list[int]] = {}
        # batches sent again after an ambiguous attempt, checked later for duplicates
        self.repair = Repair(spool, counters, request_timeout=request_timeout, client=self._client)

    # -- the backlog -----------------------------------------------------------------

    def reload_backlog(self) -> None:
        """Count what this process owns in the spool (at start, and after adopting rows)."""
        found = self.spool.backlog()
        with self._backlog_lock:
            self._backlog = {k: Backlog(d, n, oldest) for k, (d, n, oldest) in found.items()}
        self.repair.reload()

    def note_spooled(self, dest: Destination, added: int, created: float) -> bool:
        """The spooler stored ``added`` new rows for ``dest`` (called from its thread).
        True when that makes the destination due sooner than the sender last computed (its
        first rows, or its batch now full): only then does the sender need waking."""
        if added <= 0:
            return False
        with self._backlog_lock:
            entry = self._backlog.get(dest.key)
            if entry is None:
                self._backlog[dest.key] = Backlog(dest, added, created)
                return True
            before = entry.count
            entry.count += added
            return before < self.batch_size <= entry.count

    def waiting(self) -> int:
        """Rows this process still has to deliver, as the backlog counts them (no query)."""
        with self._backlog_lock:
            return sum(entry.count for entry in self._backlog.values())

    def unpaired(self) -> tuple[list[int], bool]:
        """The rows of pairwise calls waiting for a partner, in the destinations where they
        are all that waits (as the last pass left them, nothing spooled since), and whether
        that is everything waiting. They cannot be sent before a partner comes."""
        ids: list[int] = []
        everything = True
        with self._backlog_lock:
            for key, entry in self._backlog.items():
                lonely = self._lonely.get(key, [])
                if lonely and entry.count == len(lonely):
                    ids += lonely
                elif entry.count:
                    everything = False
        return ids, everything and bool(ids)

    def _refresh_backlog(self, dest: Destination) -> None:
        found = self.spool.backlog(dest).get(dest.key)
        with self._backlog_lock:
            if found is None:
                self._backlog.pop(dest.key, None)
                self._lonely.pop(dest.key, None)
            else:
                self._backlog[dest.key] = Backlog(*found)

    # -- configuration ---------------------------------------------------------

    def retry_held(self) -> None:
        """A key changed: try every backed-off destination at once and report afresh."""
        for state in self.backoff.values():
            state.next_at = 0.0
        self._reported.clear()

    def close(self) -> None:
        """Close the clients' connections (the sender thread has stopped)."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _client(self, dest: Destination) -> Client:
        access = self.keys.get(dest.url)
        key = access.api_key if access is not None else None
        if key is None:
            # One message per server, so it is logged once however many projects wait.
            raise DeliveryFailure(
                FailureKind.AUTH,
                f"no Label Studio API key for {dest.url}: set LABEL_STUDIO_API_KEY or pass "
                "api_key=... (Label Studio: Account & Settings > Access Token). The captured "
                "calls wait in the spool; a later scope with a key sends them, or "
                "`lstrace sync` does",
            )
        assert access is not None
        if has_redacted_credentials(access.url):
            raise DeliveryFailure(
                FailureKind.AUTH,
                f"the credentials in the URL {dest.url} are never stored: enter a scope with "
                "that url as before (credentials and all), or run `lstrace sync --url <it>`",
            )
        client = self._clients.get((access.url, key))
        if client is None:
            client = self.connect(access.url, key, self.request_timeout)
            self._clients[(access.url, key)] = client
        return client

    # -- delivery ------------------------------------------------------------------

    def next_due(self, flush_interval: float) -> float | None:
        """When the next destination becomes due (a batch full or old enough, backoff over)."""
        times = []
        with self._backlog_lock:
            entries = list(self._backlog.values())
        for entry in entries:
            due = time.time() if entry.count >= self.batch_size else entry.oldest + flush_interval
            state = self.backoff.get(entry.dest.key)
            times.append(max(due, state.next_at) if state is not None else due)
        check = self.repair.next_due()
        if check is not None:
            times.append(check)
        return min(times) if times else None

    def deliver(self, *, now: float, flush_interval: float, flushing: bool) -> int:
        """Send what is due; returns how many calls were confirmed."""
        delivered = 0
        with self._backlog_lock:
            entries = list(self._backlog.values())
        for entry in entries:
            dest = entry.dest
            state = self.backoff.get(dest.key)
            if state is not None and state.next_at > now:
                continue
            full = entry.count >= self.batch_size
            if not (flushing or full or entry.oldest + flush_interval <= now):
                self._warm_up(dest)
                continue
            rows = self.spool.take(dest, self.batch_size)
            confirmed: set[int] = set()  # filled as chunks are confirmed, kept if one fails
            try:
                if rows:
                    self._send(dest, rows, confirmed)
            except DeliveryFailure as failure:
                self._failed(dest, [r for r in rows if r.id not in confirmed], failure)
            else:
                self.backoff.pop(dest.key, None)
            finally:
                delivered += len(confirmed)
                self._refresh_backlog(dest)
        self.repair.run(now)
        return delivered

    def _warm_up(self, dest: Destination) -> None:
        """Resolve (or create) the project while its first batch fills, once per destination,
        so the first import goes out as soon as the batch is due. A failure here is left to
        the send, which reports and retries it."""
        if dest.key in self._warmed:
            return
        self._warmed.add(dest.key)
        try:
            self.projects.resolve(dest, self._client(dest))
        except DeliveryFailure:
            logger.debug("lstrace: early project lookup failed for %s", dest.describe())

    def _send(self, dest: Destination, rows: Sequence[Row], confirmed: set[int]) -> None:
        """Send ``rows``, adding the id of each row confirmed to ``confirmed`` as it is."""
        client = self._client(dest)
        project = self.projects.resolve(dest, client)
        units = self._units(dest, project, rows)
        confirmed |= self._already_there(client, dest, project, units)
        units = [u for u in units if u.rows[0].id not in confirmed]
        for chunk in self._chunks(units):
            confirmed |= self._import(client, project, chunk)

    def _units(self, dest: Destination, project: Project, rows: Sequence[Row]) -> list[Unit]:
        """One task per row, or, for a Pairwise project, per pair of rows. A row spooled
        with its import body built for the project's target is sent as it is."""
        units: list[Unit] = []
        target = project.target
        if isinstance(target, PairTarget):
            pairs, lonely = pair_up(rows)
            stale = [r for r in lonely if time.time() - r.created > PAIR_TIMEOUT_S]
            if stale:
                logger.warning(
                    "lstrace: %d pairwise calls found no partner within %ds; set aside (a pair "
                    "needs two calls of one scope with the same prompt or pair_by value)",
                    len(stale),
                    PAIR_TIMEOUT_S,
                )
                self._dead(stale, "unpaired")
            with self._backlog_lock:
                self._lonely[dest.key] = [r.id for r in lonely if r not in stale]
            for pair in pairs:
                second = pair[1].content if len(pair) > 1 else None
                self._add_unit(
                    units, pair, partial(build_pair_task, pair[0].content, second, target)
                )
        else:
            as_stored = isinstance(target, Target) and self._built_for(dest) == target
            for row in rows:
                if as_stored and row.task is not None:
                    units.append(Unit([row], row.task))
                    continue
                content = row.content
                build = build_trace_task if content.get("kind") == "trace" else build_task
                self._add_unit(units, [row], partial(build, content, target))
                row.drop_content()  # the unit holds the encoded task
        return units

    def _built_for(self, dest: Destination) -> Target | None:
        """The target the spooler built ``dest``'s tasks for (:func:`own_target`)."""
        if dest.key not in self._own_targets:
            try:
                self._own_targets[dest.key] = own_target(dest)
            except Exception:
                self._own_targets[dest.key] = None
        return self._own_targets[dest.key]

    def _add_unit(
        self, units: list[Unit], rows: list[Row], build: Callable[[], dict[str, Any]]
    ) -> None:
        try:
            units.append(Unit(rows, self._encode(build(), rows[0].run_id)))
        except Exception as exc:
            logger.exception("lstrace: could not build the task for run %s", rows[0].run_id)
            self._dead(rows, "build", type(exc).__name__)

    def _encode(self, task: dict[str, Any], run_id: str) -> bytes:
        """The task as JSON; lone surrogates (text no UTF-8 can hold, from a bad decode in
        the app) become U+FFFD, so the task is sent rather than failing every attempt."""
        try:
            return encode_json(task)
        except (UnicodeEncodeError, TypeError, ValueError):
            repaired = _without_surrogates(task)
            if repaired == task:
                raise  # some other value the encoder refuses: the caller sets the task aside
        body = encode_json(repaired)
        if not self._surrogates_reported:
            self._surrogates_reported = True
            logger.warning(
                "lstrace: the task for run %s held lone surrogates (text that is not valid "
                "Unicode); they were replaced by U+FFFD. Later tasks are repaired the same "
                "way without another warning.",
                run_id,
            )
        return body

    def _already_there(
        self, client: Client, dest: Destination, project: Project, units: Sequence[Unit]
    ) -> set[int]:
        """Rows whose earlier, ambiguous attempt did arrive: forget them instead of re-sending."""
        maybe = [u for u in units if any(r.maybe_sent for r in u.rows)]
        if not maybe:
            return set()
        there = client.existing_run_ids(project.id, [u.rows[0].run_id for u in maybe])
        ids = {r.id for u in maybe if u.rows[0].run_id in there for r in u.rows}
        if ids:
            self.counters.add("delivered", len(ids))  # before the delete: see _import
            self.spool.delete(ids)
            logger.info(
                "lstrace: %d calls had arrived despite a failed attempt; not re-sent", len(ids)
            )
        # The rest is sent again, and the earlier attempt may still land (a slow server, a
        # proxy holding it): remembered, to be checked for duplicates (repair.py). The rows
        # keep maybe_sent until confirmed, so every later attempt checks first too.
        again = [u.rows[0].run_id for u in maybe if u.rows[0].run_id not in there]
        self.repair.remember(dest, project.id, again)
        return ids

    def _chunks(self, units: Sequence[Unit]) -> list[list[Unit]]:
        """Units split so that no import body exceeds ``max_batch_bytes``."""
        chunks: list[list[Unit]] = [[]]
        size = 0
        for unit in units:
            unit_size = len(unit.body) + 1
            if chunks[-1] and size + unit_size > self.max_batch_bytes:
                chunks.append([])
                size = 0
            chunks[-1].append(unit)
            size += unit_size
        return [c for c in chunks if c]

    def _import(self, client: Client, project: Project, chunk: list[Unit]) -> set[int]:
        ids = [row.id for unit in chunk for row in unit.rows]
        self.spool.mark_attempt(ids, maybe_sent=True)  # a crash mid-request leaves this mark
        try:
            client.import_tasks(project.id, [unit.body for unit in chunk])
        except DeliveryFailure as failure:
            if not failure.maybe_sent:  # rows an earlier attempt may have sent stay marked
                fresh = [row.id for unit in chunk for row in unit.rows if not row.maybe_sent]
                self.spool.mark_attempt(fresh, maybe_sent=False)
            if failure.kind is FailureKind.REJECTED and len(chunk) > 1:
                half = len(chunk) // 2
                return self._import(client, project, chunk[:half]) | self._import(
                    client, project, chunk[half:]
                )
            if failure.kind is FailureKind.REJECTED:
                status = str(failure.status) if failure.status is not None else None
                self._dead(chunk[0].rows, "rejected", status)
                logger.error(
                    "lstrace: task for run %s set aside: %s", chunk[0].rows[0].run_id, failure
                )
                return set()
            raise
        # Counted before the rows leave the spool: a flush that finds nothing pending must
        # already see them delivered (the other order let it report delivered=0, pending=0).
        self.counters.add("delivered", len(ids))
        self.spool.delete(ids)
        return set(ids)

    def _dead(self, rows: Sequence[Row], reason: Failed, detail: str | None = None) -> None:
        """Set rows aside in the spool (``lstrace set-aside`` lists them), counted as failed."""
        self.spool.mark_dead(
            [r.id for r in rows], reason if detail is None else f"{reason}:{detail}"
        )
        self.counters.lost(reason, len(rows), detail)

    def _failed(self, dest: Destination, rows: Sequence[Row], failure: DeliveryFailure) -> None:
        state = self.backoff.setdefault(dest.key, Backoff())
        state.attempts += 1
        self.counters.add("retried", len(rows))
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
            # A blip is retried unseen (INFO); an outage that lasts gets a WARNING, which
            # Python prints even where the app set up no logging.
            log = (
                logger.warning
                if state.attempts == 5 or state.attempts % 50 == 0
                else logger.info
                if state.attempts == 1
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
        message = str(failure)
        if message not in self._reported:
            self._reported.add(message)
            logger.error(
                "lstrace: %s (%s; tasks are kept in the spool at %s)",
                message,
                dest.describe(),
                self.spool.path,
            )


def _without_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_surrogates(v) for v in value]
    return value
