"""langchain-anthropic against the Messages-API stub, captured into a real Label Studio.

A second provider SDK, with its own shapes: the system prompt outside the messages,
content as a list of blocks (text and ``tool_use``), usage as input/output tokens, a
stream of typed events. Each test checks the tasks against what the stub answered.
"""

from __future__ import annotations

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from pydantic import SecretStr

import lstrace
from tests.providers.conftest import delivered, joined
from tests.providers.stubs import AnthropicStub, Reply, ToolCall
from tests.providers.test_openai_tier import assert_usage
from tests.servers import Server

pytestmark = pytest.mark.providers

REQUESTED = "claude-3-5-haiku-latest"
SYSTEM = "You are a travel assistant."


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny and 21 C in {city}."


def claude(stub: AnthropicStub) -> ChatAnthropic:
    return ChatAnthropic(
        model=REQUESTED,
        base_url=stub.base_url,
        api_key=SecretStr("sk-ant-test"),
        max_retries=0,
    )


def test_chat_invoke(label_studio: Server, anthropic_stub: AnthropicStub, title: str) -> None:
    """A Claude call in chat mode: system prompt and question as the dialogue, the reply as
    the prediction, input/output tokens as the token columns."""
    anthropic_stub.script("Pack an umbrella for Oslo.")
    with lstrace.ls_session(project_name=title, mode="chat"):
        claude(anthropic_stub).invoke([SystemMessage(SYSTEM), HumanMessage("Oslo tips?")])
    [task] = delivered(label_studio, title, 1)
    [exchange] = anthropic_stub.exchanges
    assert exchange.body["system"] == SYSTEM
    assert task.data["prompt"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Oslo tips?"},
    ]
    assert task.texts == ["Pack an umbrella for Oslo."]
    assert_usage(task, exchange)


@pytest.mark.parametrize("streamed", [False, True], ids=["invoke", "stream"])
def test_text_and_tool_use(
    streamed: bool, label_studio: Server, anthropic_stub: AnthropicStub, title: str
) -> None:
    """A reply with a text block and a tool_use block, whole or streamed: the task's response
    shows both the text and the tool call; usage is the call's."""
    anthropic_stub.script(Reply("Let me check.", [ToolCall("get_weather", {"city": "Rome"})]))
    model = claude(anthropic_stub).bind_tools([get_weather])
    with lstrace.ls_session(project_name=title, mode="chat"):
        reply: AIMessage = (
            joined(model.stream("Weather in Rome?"))
            if streamed
            else model.invoke("Weather in Rome?")
        )
    [task] = delivered(label_studio, title, 1)
    [exchange] = anthropic_stub.exchanges
    assert [c["args"] for c in reply.tool_calls] == [{"city": "Rome"}]
    [text] = task.texts
    assert "Let me check." in text
    assert "get_weather" in text and "Rome" in text
    assert_usage(task, exchange)


def test_model_is_the_one_that_answered(
    label_studio: Server, anthropic_stub: AnthropicStub, title: str
) -> None:
    """data.model and model_version are the served snapshot (claude-3-5-haiku-20241022);
    data.requested_model is the alias the app asked for."""
    with lstrace.ls_session(project_name=title):
        claude(anthropic_stub).invoke("hello")
    [task] = delivered(label_studio, title, 1)
    [exchange] = anthropic_stub.exchanges
    assert (task.data["model"], task.model_version) == (exchange.served_model,) * 2
    assert task.data["requested_model"] == REQUESTED
