"""Fake models for tests: LangChain's own fakes, plus tool calling for agents.

LangChain's fake chat models do not implement ``bind_tools``, which agents
(``langchain.agents.create_agent``, LangGraph's prebuilt agent) call first.
:class:`ToolCallingFakeChatModel` adds just that: the scripted replies decide
which tools get called, exactly as a real model's replies would.
:func:`freeze_today` fixes the date lstrace formats project names with.
"""

from __future__ import annotations

import datetime as _dt
import types
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from lstrace import _options


class ToolCallingFakeChatModel(GenericFakeChatModel):
    """A ``GenericFakeChatModel`` that accepts ``bind_tools``; replies are scripted.

    Like a real chat model, binding passes the tools (in OpenAI's layout) with every
    call, so they show in the run's ``invocation_params``."""

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        # The script already says which tool to call; the tools only travel along.
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools])


def scripted(*replies: AIMessage | str) -> ToolCallingFakeChatModel:
    """A fake chat model that answers with ``replies``, in order, once each."""
    return ToolCallingFakeChatModel(messages=iter(replies))


def tool_call(name: str, args: dict[str, Any], call_id: str = "call_1") -> AIMessage:
    """An assistant reply asking for one tool call."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id}])


class _FrozenDatetime(_dt.datetime):
    """A datetime whose ``now()`` is always FROZEN_NOW."""

    @classmethod
    def now(cls, tz: _dt.tzinfo | None = None) -> _FrozenDatetime:
        return cls(2026, 1, 15, 9, 30)


FROZEN_NOW = _FrozenDatetime.now()


def freeze_today(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make lstrace resolve project names on 2026-01-15, so date-named projects replay any day.

    Only lstrace's option resolution sees the frozen clock. Returns the default title.
    """
    monkeypatch.setattr(_options, "_dt", types.SimpleNamespace(datetime=_FrozenDatetime))
    return FROZEN_NOW.strftime(_options.DEFAULT_PROJECT_NAME)
