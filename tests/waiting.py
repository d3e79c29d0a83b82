"""Waiting for a condition in tests: poll until it holds, fail with what was awaited.

Tests wait for a condition, never for a time (a sleep that stands in for synchronisation
fails on a loaded machine). The deadline is generous: it only decides how long a broken
test takes to fail, never whether a working one passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

PATIENCE = 120.0  # seconds a condition may take on a loaded machine before the test fails


def eventually(
    read: Callable[[], T],
    done: Callable[[T], object],
    what: str,
    *,
    timeout: float = PATIENCE,
    every: float = 0.02,
) -> T:
    """What ``read()`` returns once ``done`` holds for it; fails the test (naming ``what``
    and the last value read) when it does not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value):
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}; last read: {value!r}"
            )
        time.sleep(every)
        value = read()
    return value


def wait_for(
    condition: Callable[[], object],
    what: str,
    *,
    timeout: float = PATIENCE,
    every: float = 0.02,
) -> None:
    """Return once ``condition()`` is true; fails the test like :func:`eventually`."""
    eventually(condition, bool, what, timeout=timeout, every=every)
