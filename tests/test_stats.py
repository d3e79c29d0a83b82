"""Every loss is counted through one function with a closed set of reasons, and every
reason reaches ``lstrace.stats()`` (lstrace/_delivery/stats.py)."""

from __future__ import annotations

from typing import get_args
from uuid import uuid4

import pytest

import lstrace
from lstrace import ls_session
from lstrace._capture import handler as _handler
from lstrace._capture.scope import active
from lstrace._delivery import worker as _worker
from lstrace._delivery.stats import Dropped, Failed, Loss


def test_every_loss_reason_shows_in_stats() -> None:
    """Each reason of the closed set lands in dropped_by_reason (left out on purpose) or in
    failed_by_reason and the failed total (could not be delivered); a detail shows after a
    colon."""
    for reason in get_args(Loss):
        _worker.count_lost(reason)
    _worker.count_lost("rejected", 2)
    stats = lstrace.stats()
    assert stats.dropped_by_reason == {reason: 1 for reason in get_args(Dropped)}
    assert stats.failed_by_reason == {
        reason: 3 if reason == "rejected" else 1 for reason in get_args(Failed)
    }
    assert stats.failed == len(get_args(Failed)) + 2


def test_runs_that_never_end_are_counted_as_abandoned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the bound on pending runs the oldest run is forgotten, and counted as
    ``abandoned`` in stats() (it used to be counted where stats() never looked)."""
    monkeypatch.setattr(_handler, "_MAX_PENDING", 2)
    with ls_session(project_name="stats: abandoned"):
        scope = active()
        assert scope is not None
        for _ in range(3):  # three LLM runs start, none ends
            scope.handler.on_llm_start({}, ["never answered"], run_id=uuid4())
    assert lstrace.stats().dropped_by_reason == {"abandoned": 1}
