"""Duplicate repair: a batch sent again after an ambiguous attempt may land twice.

Label Studio has no idempotency key. When an import times out (or its connection drops,
or it answers 5xx), the sender asks the server which run ids arrived before it sends the
rest again (exactly once, :meth:`Sender._already_there`); but an import a slow server or a
proxy still holds lands *after* that check, next to the copy sent again. So every batch sent
again after an ambiguous attempt is remembered in the spool (table ``rechecks``, so a
restart keeps it; taken over with the tasks by the next process) and its run ids are
looked up again, on the sender's thread:

- first ``request_timeout`` after it was sent again (by then the server has answered
  again, and a request it held for as long as the client waited has landed);
- then :func:`grace` after it was sent again: ten times ``request_timeout``, at least
  60 s (5 minutes with the default 30 s).

Each check deletes the extra copies nobody annotated: of a run's copies, those with an
annotation (submitted or skipped) or a draft are kept, and if none has one, the oldest
(lowest task id). Annotated copies are never deleted; several annotated copies of one run
are all kept, counted (``duplicates_annotated``) and logged. A check that fails (server
down, key refused) is retried with backoff (5 s, doubling, at most 5 minutes); a batch that
could still not be checked :data:`EXPIRE_S` after it was sent again is dropped and counted
(``duplicate_checks_expired``).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from lstrace._client import Client, TaskCopy
from lstrace._delivery.spool import Recheck, Spool
from lstrace._delivery.stats import Counters
from lstrace._errors import DeliveryFailure, FailureKind
from lstrace._options import Destination

logger = logging.getLogger("lstrace")

MIN_GRACE_S = 60.0
EXPIRE_S = 24 * 3600.0  # a batch whose check keeps failing is given up after this
RETRY_S = 5.0  # first wait after a failed check (doubled per failure)
MAX_RETRY_S = 300.0


def grace(request_timeout: float) -> float:
    """How long after a batch was sent again its last duplicate check runs."""
    return max(MIN_GRACE_S, 10 * request_timeout)


def extra_copies(copies: Sequence[TaskCopy]) -> tuple[list[int], int]:
    """The ids of the copies to delete, and how many annotated duplicates are kept: per run
    id, every annotated copy stays, and the oldest when none is annotated."""
    by_run: dict[str, list[TaskCopy]] = {}
    for copy in sorted(copies, key=lambda c: c.id):
        by_run.setdefault(copy.run_id, []).append(copy)
    extra: list[int] = []
    annotated = 0
    for same in by_run.values():
        marked = [c for c in same if c.annotations > 0]
        keep = marked or same[:1]
        extra += [c.id for c in same if c not in keep]
        annotated += max(0, len(marked) - 1)
    return extra, annotated


class Repair:
    """Remembers batches sent again after an ambiguous attempt and checks them for duplicates;
    only the sender's thread calls it."""

    def __init__(
        self,
        spool: Spool,
        counters: Counters,
        *,
        request_timeout: float,
        client: Callable[[Destination], Client],
    ) -> None:
        self.spool = spool
        self.counters = counters
        self.first = max(1.0, request_timeout)
        self.grace = grace(request_timeout)
        self._client = client
        self._next: float | None = None  # the soonest due check, once known
        self._known = False
        self._unsaved: dict[int, Recheck] = {}  # the spool file could not take these
        self._reported = False
        self._reported_unsaved = False

    def remember(self, dest: Destination, project: int, run_ids: Sequence[str]) -> None:
        """A batch is about to be sent again after an ambiguous attempt."""
        if not run_ids:
            return
        now = time.time()
        due = now + self.first
        try:
            self.spool.add_recheck(dest, project, run_ids, due)
        except sqlite3.Error as exc:  # disk full: remembered while this process runs
            i = -(len(self._unsaved) + 1)
            self._unsaved[i] = Recheck(i, dest, project, list(run_ids), now, due, 0, 0)
            if not self._reported_unsaved:
                self._reported_unsaved = True
                logger.warning(
                    "lstrace: cannot remember in the spool which batches to check for "
                    "duplicates (%s); this process checks them while it runs",
                    exc,
                )
        if self._known:
            self._next = due if self._next is None else min(self._next, due)

    def reload(self) -> None:
        """Rows were taken over from an ended process: read the spool again."""
        self._known = False

    def next_due(self) -> float | None:
        """When the next check is due (None: nothing to check)."""
        if not self._known:
            try:
                dues = [r.due for r in self._all()]
            except sqlite3.Error:  # the spool unreadable (the sender reports it): asked again
                return None
            self._next = min(dues) if dues else None
            self._known = True
        return self._next

    def run(self, now: float) -> int:
        """Make the checks due by ``now``; returns how many copies were deleted."""
        due = self.next_due()
        if due is None or due > now:
            return 0
        removed = 0
        for recheck in [r for r in self._all() if r.due <= now]:
            removed += self._check(recheck, now)
        self._known = False
        return removed

    def _all(self) -> list[Recheck]:
        return [*self.spool.rechecks(), *self._unsaved.values()]

    def _check(self, recheck: Recheck, now: float) -> int:
        try:
            client = self._client(recheck.dest)
            extra, annotated = extra_copies(client.copies(recheck.project, recheck.run_ids))
            if extra:
                client.delete_tasks(recheck.project, extra)
        except DeliveryFailure as failure:
            if failure.kind is FailureKind.NOT_FOUND and recheck.dest.project_id is None:
                self._done(recheck)  # the project is gone, and its duplicates with it
                return 0
            self._failed(recheck, now, failure)
            return 0
        last = now >= recheck.created + self.grace
        if not last:
            annotated = 0  # counted once, by the last check, which sees them again
        if extra or annotated:
            self._report(recheck, len(extra), annotated)
        self.counters.add("duplicates_removed", len(extra))
        self.counters.add("duplicates_annotated", annotated)
        if last:
            self._done(recheck)
        else:
            self._later(recheck, recheck.created + self.grace, checked=True)
        return len(extra)

    def _failed(self, recheck: Recheck, now: float, failure: DeliveryFailure) -> None:
        if now - recheck.created > EXPIRE_S:
            self.counters.add("duplicate_checks_expired")
            self._done(recheck)
            logger.warning(
                "lstrace: gave up checking %d tasks sent again to %s for duplicates: the check "
                "kept failing for %d hours (%s); a duplicate may remain",
                len(recheck.run_ids),
                recheck.dest.describe(),
                EXPIRE_S // 3600,
                failure,
            )
            return
        delay = min(MAX_RETRY_S, RETRY_S * 2 ** min(recheck.failures, 20))
        self._later(recheck, now + delay, checked=False)
        logger.debug("lstrace: duplicate check failed (%s); next try in %.0fs", failure, delay)

    def _report(self, recheck: Recheck, removed: int, annotated: int) -> None:
        where = recheck.dest.describe()
        if removed:
            log = logger.info if self._reported else logger.warning
            self._reported = True
            log(
                "lstrace: deleted %d duplicate tasks from %s: an import that timed out reached "
                "Label Studio after the batch was sent again (copies nobody annotated; one "
                "copy of each call is kept)",
                removed,
                where,
            )
        if annotated:
            logger.warning(
                "lstrace: %d duplicate tasks in %s were annotated and are kept (an import that "
                "timed out reached Label Studio after the batch was sent again)",
                annotated,
                where,
            )

    def _later(self, recheck: Recheck, due: float, *, checked: bool) -> None:
        if recheck.id < 0:
            self._unsaved[recheck.id] = replace(
                recheck,
                due=due,
                checks=recheck.checks + checked,
                failures=0 if checked else recheck.failures + 1,
            )
        else:
            self.spool.recheck_later(recheck.id, due, checked=checked)

    def _done(self, recheck: Recheck) -> None:
        if recheck.id < 0:
            self._unsaved.pop(recheck.id, None)
        else:
            self.spool.recheck_done(recheck.id)
