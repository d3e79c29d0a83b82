"""Tasks too large to send as they are. (The spool's privacy and that it holds no secret
need no server: tests/test_delivery_offline.py.)"""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage

import lstrace
from lstrace._delivery.task import TRUNCATION_MARK
from tests.live.conftest import LiveServer, call, fake_chat

pytestmark = pytest.mark.live

MARK = TRUNCATION_MARK.split("{")[0].strip()  # "[... truncated by lstrace:"


def test_oversized_task_is_truncated_visibly_and_delivered(
    live_server: LiveServer, title: str
) -> None:
    """A chat call far too large to send as it is (40 turns of 300,000 characters, a
    1,000,000-character answer) arrives as one task whose long texts end with lstrace's
    truncation marker; nothing is set aside or rejected."""
    turns = [
        (HumanMessage if i % 2 == 0 else AIMessage)(content=f"turn {i} " + "x" * 300_000)
        for i in range(40)
    ]
    model = fake_chat("y" * 1_000_000)
    with lstrace.ls_session(project_name=title, mode="chat"):
        run_id = call(model, turns)
    result = lstrace.flush(timeout=120)

    assert result.pending == 0
    stats = lstrace.stats()
    assert stats.failed == stats.dead == 0
    (task,) = live_server.tasks(title, include="id,data,predictions")
    assert task.data["run_id"] == run_id
    dialogue = task.data["prompt"]
    assert len(dialogue) == 40
    assert all(MARK in turn["content"] and turn["content"].startswith("turn ") for turn in dialogue)
    assert all(len(turn["content"]) < 300_000 for turn in dialogue)
    (answer,) = task.predictions[0].result[0]["value"]["text"]
    assert answer.startswith("yyy") and MARK in answer and len(answer) < 1_000_000
