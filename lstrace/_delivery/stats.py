"""Counters of what happened to captured calls, and the result of a flush."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

# Why a captured call did not become a task: the closed set of reasons lstrace counts.
# Left out on purpose, or by a guard (``Stats.dropped_by_reason``):
Dropped = Literal[
    "sampled",  # its trace was sampled out (sample_rate)
    "filter",  # the filter returned False
    "before_send",  # before_send returned None
    "before_send_error",  # before_send raised: dropped rather than sent unredacted
    "abandoned",  # a run that never ended, forgotten past the pending-runs bound
    "capture_error",  # lstrace's own callback failed (logged): the call was not captured
    "error",  # a trace that raised, with capture_errors off
    "trace_late",  # a step of a trace already sent as incomplete
]
# Could not be delivered (``Stats.failed``, ``Stats.failed_by_reason``); set aside in the
# spool when the call got that far:
Failed = Literal[
    "convert",  # the captured call could not be turned into task content
    "build",  # the task could not be built for the project's label config
    "rejected",  # Label Studio refused the task for good
    "unpaired",  # a pairwise call that found no partner in time
    "spool_full",  # the spool file could not be written and the memory bound was reached
]
Loss = Literal[Dropped, Failed]
_DROPPED: frozenset[str] = frozenset(get_args(Dropped))


@dataclass(frozen=True)
class Stats:
    """A snapshot of lstrace's counters for this process.

    ``pending`` counts tasks not yet confirmed by Label Studio (in memory and in
    this process's part of the spool); ``dead`` counts spooled tasks Label
    Studio refused for good, kept for inspection. ``dropped_by_reason`` counts
    calls left out on purpose, or by a guard (``sampled``, ``filter``,
    ``before_send``, ``before_send_error``, ``abandoned``, ``capture_error``, ``error``,
    ``trace_late``); ``failed_by_reason``
    counts calls that could not be delivered (``convert:<error>``, ``build:<error>``,
    ``rejected:<status>``, ``unpaired``, ``spool_full``). ``overflowed`` counts calls a caller's
    thread spooled itself because the queue was full (none is lost).

    Duplicate repair (a batch sent again after an ambiguous attempt that landed after all):
    ``duplicates_removed`` counts extra copies deleted from Label Studio,
    ``duplicates_annotated`` annotated extra copies kept (never deleted), and
    ``duplicate_checks_expired`` batches that could not be checked within 24 hours.
    """

    captured: int
    delivered: int
    retried: int
    spooled: int
    pending: int
    failed: int
    dead: int
    mask_failed: int = 0
    filter_failed: int = 0
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    overflowed: int = 0  # calls the caller's thread spooled itself: the queue was full
    duplicates_removed: int = 0  # extra copies of a task deleted by the duplicate repair
    duplicates_annotated: int = 0  # extra copies kept because someone annotated them
    duplicate_checks_expired: int = 0  # batches the duplicate check never reached


@dataclass(frozen=True)
class FlushResult:
    """What :func:`lstrace.flush` achieved before it returned."""

    delivered: int  # confirmed by Label Studio during this flush
    pending: int  # still waiting, in memory or in the spool
    spool_path: Path | None  # where pending tasks wait
    # All that is pending are this many pairwise calls waiting for a partner (a call of the
    # same scope with the same prompt or pair_by value): flush() does not wait for them.
    # Set aside as unpaired after 60 s alone, or when the process ends.
    waiting_for_partner: int = 0

    @property
    def complete(self) -> bool:
        return self.pending == 0


class Counters:
    """Thread-safe counters; only the background sender and rare paths touch them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def lost(self, reason: Loss, n: int = 1, detail: str | None = None) -> None:
        """Count ``n`` calls lost for ``reason`` (``detail``: a status or an error's name,
        shown as ``reason:detail`` in ``Stats``); the one way every loss is counted."""
        key = reason if detail is None else f"{reason}:{detail}"
        with self._lock:
            if reason in _DROPPED:
                self._counts[f"dropped:{key}"] += n
            else:
                self._counts["failed"] += n
                self._counts[f"failed:{key}"] += n

    def get(self, name: str) -> int:
        return self._counts[name]

    def by_prefix(self, prefix: str) -> dict[str, int]:
        with self._lock:
            return {
                k[len(prefix) :]: v for k, v in self._counts.items() if k.startswith(prefix) and v
            }
