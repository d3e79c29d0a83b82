"""A LangGraph tool-calling agent on langchain-openai (the OpenAI stub), into Label Studio.

``langchain.agents.create_agent`` runs a LangGraph graph: the model asks for a tool, the
tool runs, the model answers. Each model call is one task; LangGraph's own bookkeeping
(``langgraph_step``, ``graph:step:N``...) is not the user's and must stay out of the
columns, while the conversation's ``thread_id`` stays.
"""

from __future__ import annotations

import json

import pytest
from langchain.agents import create_agent
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

import lstrace
from tests.providers.conftest import Task, delivered
from tests.providers.stubs import OpenAIStub, ToolCall
from tests.providers.test_openai_tier import assert_usage, chat
from tests.servers import Server

pytestmark = pytest.mark.providers

QUESTION = "What's the weather in Paris?"
FINAL = "It is sunny in Paris, 21 C: a good day for a walk."
BOOKKEEPING_METADATA = (
    "langgraph_step",
    "langgraph_node",
    "langgraph_triggers",
    "langgraph_path",
    "langgraph_checkpoint_ns",
    "checkpoint_ns",
)


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny and 21 C in {city}."


def run_agent(server: Server, stub: OpenAIStub, title: str) -> tuple[Task, Task]:
    """The agent answers QUESTION (one tool call, then FINAL) on thread "t-1"; its tasks."""
    stub.script(ToolCall("get_weather", {"city": "Paris"}, id="call_w"), FINAL)
    agent = create_agent(
        chat(stub),
        tools=[get_weather],
        system_prompt="You are a travel assistant.",
        checkpointer=InMemorySaver(),
    )
    with lstrace.ls_session(project_name=title, mode="chat", tags=["agent"]):
        state = agent.invoke(
            {"messages": [("user", QUESTION)]}, {"configurable": {"thread_id": "t-1"}}
        )
    assert state["messages"][-1].content == FINAL
    first, second = delivered(server, title, 2)
    return first, second


def test_agent_calls_become_tasks(
    label_studio: Server, openai_stub: OpenAIStub, title: str
) -> None:
    """Two model calls, two tasks: the tool call, then the answer after the tool's result;
    each with the conversation so far, its usage and the user's tag."""
    first, second = run_agent(label_studio, openai_stub, title)
    assert [t["role"] for t in first.data["prompt"]] == ["system", "user"]
    [call] = first.texts
    assert "get_weather" in call and "Paris" in call
    assert [t["role"] for t in second.data["prompt"]] == ["system", "user", "assistant", "tool"]
    assert second.data["prompt"][3]["content"] == "Sunny and 21 C in Paris."
    assert second.texts == [FINAL]
    for task, exchange in zip((first, second), openai_stub.exchanges, strict=True):
        assert_usage(task, exchange)
        assert "agent" in task.data["tags"].split(", ")
        assert json.loads(task.data["metadata"]).get("thread_id") == "t-1"


def test_no_langgraph_bookkeeping_in_columns(
    label_studio: Server, openai_stub: OpenAIStub, title: str
) -> None:
    """Tags and metadata hold what the user set (and thread_id), none of LangGraph's
    step counters, node names, triggers, paths or checkpoint namespaces."""
    for task in run_agent(label_studio, openai_stub, title):
        tags = task.data["tags"].split(", ")
        metadata = json.loads(task.data["metadata"])
        assert not [t for t in tags if t.startswith(("seq:step:", "graph:step:"))], tags
        assert not set(BOOKKEEPING_METADATA) & set(metadata), metadata
        assert metadata.get("thread_id") == "t-1"
