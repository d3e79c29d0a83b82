"""What every example shares: a chat model, and a line saying where the tasks went.

The examples run offline with LangChain's fake chat model, which answers from a
script. With ``OPENAI_API_KEY`` set and ``langchain-openai`` installed they use a
real OpenAI model instead (``OPENAI_MODEL``, default ``gpt-4o-mini``);
``LSTRACE_EXAMPLE_MODELS=fake`` forces the fake one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

import lstrace


class ScriptedChatModel(GenericFakeChatModel):
    """LangChain's fake chat model, accepting tools: its script says which to call; the
    tools travel with each call, as with a real model, so trace mode lists them."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools])


def chat_model(*replies: str | AIMessage, **options: Any) -> BaseChatModel:
    """A real OpenAI chat model if configured, else a fake one answering ``replies`` in turn.

    ``options`` (``callbacks=...``) go to the model's constructor.
    """
    if os.environ.get("OPENAI_API_KEY") and os.environ.get("LSTRACE_EXAMPLE_MODELS") != "fake":
        try:
            from langchain_openai import ChatOpenAI
        except ImportError:
            pass
        else:
            return ChatOpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"), **options)
    script = [r if isinstance(r, AIMessage) else AIMessage(r) for r in replies]
    return ScriptedChatModel(messages=iter(script), **options)


def where_to_look(project_title: str, result: lstrace.FlushResult) -> None:
    """Print how many tasks were delivered and the Label Studio page that shows them."""
    url = os.environ.get("LABEL_STUDIO_URL", "http://localhost:8080").rstrip("/")
    delivered = lstrace.stats().delivered  # the whole run's: the sender may not wait for flush()
    print(f"\n{delivered} task(s) delivered, {result.pending} still waiting.")
    print(f"Open {_project_page(url, project_title)} (project {project_title!r}).")


def _project_page(url: str, title: str) -> str:
    try:
        from label_studio_sdk import LabelStudio

        client = LabelStudio(base_url=url, api_key=os.environ["LABEL_STUDIO_API_KEY"])
        ids = [p.id for p in client.projects.list(title=title) if p.title == title]
    except Exception:  # only a nicer link is lost
        ids = []
    return f"{url}/projects/{ids[0]}/data" if ids else f"{url}/projects"
