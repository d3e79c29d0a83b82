"""Fixtures of the provider tier: stub servers, the session's Label Studio, read-back.

The tier's tests (marker ``providers``) run real provider SDKs against the stubs of
:mod:`tests.providers.stubs` and read the tasks back from the real Label Studio that
``scripts/labelstudio.py`` starts for the session (``sqlite_session``, shared with the
live and browser tiers when they run in the same session). ``test_stubs.py`` uses the
stubs alone and runs offline.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, BaseMessage

import lstrace
from tests.providers.stubs import AnthropicStub, OpenAIStub
from tests.servers import Server


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStub]:
    """An OpenAI-compatible stub for this test."""
    with OpenAIStub() as stub:
        yield stub


@pytest.fixture
def anthropic_stub() -> Iterator[AnthropicStub]:
    """An Anthropic Messages-API stub for this test."""
    with AnthropicStub() as stub:
        yield stub


@pytest.fixture
def label_studio(
    sqlite_session: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Server:
    """lstrace pointed at the session's real Label Studio, with short batching windows."""
    monkeypatch.setenv("LABEL_STUDIO_URL", sqlite_session.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", sqlite_session.token)
    lstrace.configure(batch_size=100, flush_interval=0.2, max_backoff=2.0, request_timeout=60)
    caplog.set_level(logging.INFO, logger="lstrace")
    return sqlite_session


@pytest.fixture
def title() -> str:
    """A project title no other test uses."""
    return f"providers-{uuid.uuid4().hex[:12]}"


@dataclass
class Task:
    """A task as Label Studio stored it: its data and its one prediction (if any)."""

    id: int
    data: dict[str, Any]
    model_version: str | None
    texts: list[str]  # the prediction's TextArea texts


def delivered(server: Server, title: str, count: int) -> list[Task]:
    """Flush lstrace, check that ``count`` tasks were delivered and none is left, and read
    the project's tasks back from Label Studio, in import order."""
    result = lstrace.flush(timeout=60)
    assert (result.delivered, result.pending) == (count, 0), result
    tasks = []
    for task in server.sdk.tasks.list(project=server.project_id(title), fields="all"):
        [prediction] = task.predictions or [None]
        pred = (
            prediction if prediction is None or isinstance(prediction, dict) else vars(prediction)
        )
        texts = [t for r in (pred or {}).get("result", []) for t in r["value"].get("text", [])]
        tasks.append(Task(int(task.id), dict(task.data), (pred or {}).get("model_version"), texts))
    assert len(tasks) == count
    return sorted(tasks, key=lambda t: t.id)


def joined(chunks: Iterable[BaseMessage]) -> AIMessageChunk:
    """A stream's chunks added up into one message. A chat model's stream yields
    AIMessageChunk; a bound model's (``bind_tools``) is typed as yielding AIMessage."""
    full: AIMessageChunk | None = None
    for chunk in chunks:
        assert isinstance(chunk, AIMessageChunk), chunk
        full = chunk if full is None else full + chunk
    assert full is not None, "an empty stream"
    return full
