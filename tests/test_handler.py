"""The host app's contract (lstrace/_capture/handler.py, lstrace/_delivery/worker.py):
whatever goes wrong inside lstrace is logged and counted, never raised into the LLM call,
and the model's own exceptions reach the caller unchanged."""

from __future__ import annotations

import inspect
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import FakeListLLM, GenericFakeChatModel

import lstrace
from lstrace import ls_session
from lstrace._capture import handler as _handler
from lstrace._capture import sampling as _sampling
from lstrace._delivery import worker as _worker
from tests import readback
from tests.waiting import wait_for

LLM = FakeListLLM(responses=["still answered"])


def broken(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("lstrace bug injected by the test")


def test_a_failing_conversion_is_logged_and_counted_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """If turning a call into content fails, the LLM call still returns; the failure is
    logged with the run id and counted as failed (not silently lost)."""
    monkeypatch.setattr(_worker, "to_content", broken)
    with ls_session(project_name="handler: conversion"):
        assert LLM.invoke("convert me") == "still answered"
    result = lstrace.flush(timeout=60)
    stats = lstrace.stats()
    assert (result.pending, stats.captured, stats.failed, stats.delivered) == (0, 1, 1, 0)
    assert stats.failed_by_reason == {"convert:RuntimeError": 1}
    assert "could not convert the call of run" in caplog.text


@pytest.mark.parametrize("where", ["start", "end"])
def test_a_failing_capture_hook_never_reaches_the_caller(
    where: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in the callback itself (at run start or end) is logged; the LLM and chat
    model calls return their normal results."""
    if where == "start":
        monkeypatch.setattr(_handler, "CapturedCall", broken)
    else:
        monkeypatch.setattr(_worker, "submit", broken)
    chat = GenericFakeChatModel(messages=iter(["chat still answered"]))
    with ls_session(project_name="handler: hook"):
        assert LLM.invoke("llm call") == "still answered"
        assert chat.invoke("chat call").content == "chat still answered"
    assert f"could not capture the {where}" in caplog.text
    assert lstrace.stats().captured == 0
    assert lstrace.stats().dropped_by_reason == {"capture_error": 2}  # lost, and counted
    assert not _handler._pending  # nothing left behind


class _BrokenTable(dict[Any, Any]):
    """A pending-runs table whose every read and write fails."""

    get = pop = __setitem__ = __contains__ = __len__ = broken


def _call_with_placeholders(method: Any) -> None:
    """Call a callback with ``None`` for each positional parameter and a fresh run id."""
    positional = [
        p
        for p in inspect.signature(method).parameters.values()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    method(*[None] * len(positional), run_id=uuid.uuid4(), parent_run_id=uuid.uuid4())


def test_every_callback_is_guarded(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Each callback the handler implements (LLM, chat, chain, tool, retriever: start, end,
    error) swallows an internal failure; a traceback is logged the first time for each kind
    of callback, not on every call."""
    monkeypatch.setattr(_handler, "_pending", _BrokenTable())
    monkeypatch.setattr(_sampling, "note", broken)
    monkeypatch.setattr(_sampling, "forget", broken)
    with ls_session(project_name="handler: guarded") as scope:
        handler = scope.handler
    callbacks = sorted(
        name
        for name in vars(_handler.ScopeHandler)
        if name.startswith("on_") and hasattr(BaseCallbackHandler, name)
    )
    assert len(callbacks) == 13, callbacks  # start/end/error of llm, chain, tool, retriever

    def tracebacks() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "lstrace" and r.levelno >= logging.ERROR]

    for name in callbacks:
        before = len(tracebacks())
        _call_with_placeholders(getattr(handler, name))
        logged = tracebacks()[before:]
        assert len(logged) <= 1, name
        assert all(r.exc_info and "lstrace bug injected" in str(r.exc_info[1]) for r in logged)
    first_round = len(tracebacks())
    assert first_round >= 6  # at least: LLM start, chat start, end, error; link, unlink
    for _ in range(2):
        for name in callbacks:
            _call_with_placeholders(getattr(handler, name))
    assert len(tracebacks()) == first_round


def test_the_models_own_exception_reaches_the_caller_unchanged() -> None:
    """A failing model raises its own exception object; no task is made (capture_errors is off)
    and no pending run is left behind."""
    error = ConnectionError("provider down")

    class FailingLLM(FakeListLLM):
        def _call(self, *args: Any, **kwargs: Any) -> str:
            raise error

    with ls_session(project_name="handler: model error"), pytest.raises(ConnectionError) as info:
        FailingLLM(responses=["never"]).invoke("will fail")
    assert info.value is error
    assert not _handler._pending
    assert lstrace.flush(timeout=2).pending == 0
    assert lstrace.stats().captured == 0


def test_an_unusable_spool_path_falls_back_to_memory_and_still_delivers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A spool path that cannot be created (under a regular file) is reported with the fix;
    the call returns and its task is still delivered from memory."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the spool's directory should be")
    lstrace.configure(spool_path=blocker / "spool.sqlite3", flush_interval=3600)
    with ls_session(project_name="handler: broken spool"):
        assert LLM.invoke("spool is broken") == "still answered"
    readback.flushed(1)
    assert "cannot open the spool" in caplog.text
    assert "LSTRACE_SPOOL_PATH" in caplog.text
    assert lstrace.flush().spool_path is None  # said plainly: nothing is on disk
    assert set(readback.by_prompt("handler: broken spool")) == {"spool is broken"}


def test_an_unreachable_server_never_blocks_or_fails_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With Label Studio down, calls return at once; flush reports the task as still pending
    (kept in the spool), it does not raise."""
    caplog.set_level(logging.INFO, logger="lstrace")
    with ls_session(project_name="handler: server down", url="http://127.0.0.1:18099"):
        answers = [LLM.invoke(f"call {i}") for i in range(3)]
    assert answers == ["still answered"] * 3
    result = lstrace.flush(timeout=1)
    assert (result.delivered, result.pending) == (0, 3)
    # A busy machine may end the 1 s flush before the sender's first attempt: wait for the
    # attempt itself (a condition, not a time), then read what it counted and logged.
    wait_for(
        lambda: "3 tasks kept" in caplog.text and lstrace.stats().retried >= 3,
        "the attempt to be counted and logged",
    )
    stats = lstrace.stats()
    assert (stats.captured, stats.spooled, stats.pending, stats.failed) == (3, 3, 3, 0)
    assert stats.retried >= 3
    assert "3 tasks kept" in caplog.text
    assert os.environ["LABEL_STUDIO_API_KEY"] not in caplog.text  # the key is never logged
