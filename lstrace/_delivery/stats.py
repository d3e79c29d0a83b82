"""Counters of what happened to captured calls, and the result of a flush."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Stats:
    """A snapshot of lstrace's counters for this process.

    ``pending`` counts tasks not yet confirmed by Label Studio (in memory and in
    this process's part of the spool); ``dead`` counts spooled tasks Label
    Studio refused for good, kept for inspection. ``dropped_by_reason`` counts
    calls left out on purpose (``sampled``, ``filter``, ``before_send``...);
    ``failed_by_reason`` counts calls that could not be delivered.
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


@dataclass(frozen=True)
class FlushResult:
    """What :func:`lstrace.flush` achieved before it returned."""

    delivered: int  # confirmed by Label Studio during this flush
    pending: int  # still waiting, in memory or in the spool
    spool_path: Path | None  # where pending tasks wait

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

    def get(self, name: str) -> int:
        return self._counts[name]

    def by_prefix(self, prefix: str) -> dict[str, int]:
        with self._lock:
            return {
                k[len(prefix) :]: v for k, v in self._counts.items() if k.startswith(prefix) and v
            }
