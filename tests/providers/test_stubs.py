"""The provider stubs answer the real SDKs as the providers do (offline, no Label Studio).

These pin what the provider tier relies on: the SDKs parse every reply shape the
stubs produce (text, n choices, tool calls, streams with usage, structured output,
completions, errors), the served model differs from the requested one, and usage is
counted once per call. They run inside the offline suite's vcrpy cassette, which must
let stub traffic through and record none of it.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAI
from openai import RateLimitError
from pydantic import BaseModel, SecretStr

from tests.providers.conftest import joined
from tests.providers.stubs import AnthropicStub, Choices, Fail, OpenAIStub, Reply, ToolCall


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny in {city}."


class Person(BaseModel):
    name: str
    age: int


def chat(stub: OpenAIStub, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=stub.base_url,
        api_key=SecretStr("sk-test"),
        max_retries=0,
        **options,
    )


def test_chat_reply_reports_the_served_model_and_usage(
    openai_stub: OpenAIStub, cassette: Any
) -> None:
    """A chat reply carries the served snapshot and the usage the stub counted; vcrpy lets
    the request through and records nothing."""
    openai_stub.script("Paris is the capital.")
    reply = chat(openai_stub).invoke("What is the capital of France?")
    [exchange] = openai_stub.exchanges
    assert reply.content == "Paris is the capital."
    assert reply.response_metadata["model_name"] == "gpt-4o-mini-2024-07-18"
    assert exchange.requested_model == "gpt-4o-mini"
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["total_tokens"] == exchange.usage["total_tokens"] == 13
    assert len(cassette.data) == 0


def test_default_responder_quotes_the_last_user_message(openai_stub: OpenAIStub) -> None:
    """With the script used up, the stub quotes the last user message."""
    assert chat(openai_stub).invoke("hello there").content == "Stub reply to: hello there"


def test_n_choices_share_one_usage(openai_stub: OpenAIStub) -> None:
    """n=2 gives two distinct generations; the usage counts both completions once."""
    openai_stub.script(Choices("one two", "three"))
    result = chat(openai_stub, n=2).generate([[HumanMessage("count")]])
    [exchange] = openai_stub.exchanges
    assert [g.text for g in result.generations[0]] == ["one two", "three"]
    assert exchange.usage["completion_tokens"] == 3
    assert exchange.body["n"] == 2


def test_tool_calls_plain_and_streamed(openai_stub: OpenAIStub) -> None:
    """A scripted ToolCall arrives as a LangChain tool call, whole or streamed."""
    openai_stub.script(ToolCall("get_weather", {"city": "Paris"}, id="call_1"))
    openai_stub.script(ToolCall("get_weather", {"city": "Rome"}, id="call_2"))
    model = chat(openai_stub).bind_tools([get_weather])
    whole = model.invoke("weather?")
    streamed = joined(model.stream("weather?"))
    assert [(c["name"], c["args"], c["id"]) for c in whole.tool_calls] == [
        ("get_weather", {"city": "Paris"}, "call_1")
    ]
    assert [(c["name"], c["args"]) for c in streamed.tool_calls] == [
        ("get_weather", {"city": "Rome"})
    ]
    assert openai_stub.exchanges[0].body["tools"][0]["function"]["name"] == "get_weather"


def test_stream_with_usage(openai_stub: OpenAIStub) -> None:
    """Streaming sends word deltas and, with stream_usage, one final usage chunk."""
    openai_stub.script("Once upon a time")
    chunks = list(chat(openai_stub, stream_usage=True).stream("a story"))
    full = joined(chunks)
    [exchange] = openai_stub.exchanges
    assert len(chunks) > 4
    assert full.content == "Once upon a time"
    assert exchange.body["stream_options"] == {"include_usage": True}
    assert full.usage_metadata is not None
    assert full.usage_metadata["total_tokens"] == exchange.usage["total_tokens"]
    assert full.response_metadata["model_name"] == "gpt-4o-mini-2024-07-18"


def test_structured_output_json_schema_and_function_calling(openai_stub: OpenAIStub) -> None:
    """A dict turn answers a json_schema request; a ToolCall answers function calling."""
    openai_stub.script({"name": "Ada", "age": 36}, ToolCall("Person", {"name": "Bob", "age": 3}))
    model = chat(openai_stub)
    assert model.with_structured_output(Person).invoke("who?") == Person(name="Ada", age=36)
    by_tool = model.with_structured_output(Person, method="function_calling").invoke("who?")
    assert by_tool == Person(name="Bob", age=3)
    assert openai_stub.exchanges[0].body["response_format"]["type"] == "json_schema"


def test_completions_batch_and_stream(openai_stub: OpenAIStub) -> None:
    """/v1/completions answers a batch of prompts (one turn each) and streams."""
    openai_stub.script("first", "second", "streamed reply")
    llm = OpenAI(
        model="gpt-3.5-turbo-instruct", base_url=openai_stub.base_url, api_key=SecretStr("sk-test")
    )
    result = llm.generate(["p1", "p2"])
    pieces = list(llm.stream("p3"))
    assert [[g.text for g in gens] for gens in result.generations] == [["first"], ["second"]]
    assert "".join(pieces) == "streamed reply"
    assert openai_stub.exchanges[0].served_model == "gpt-3.5-turbo-instruct-0914"


def test_fail_turn_is_a_provider_error(openai_stub: OpenAIStub) -> None:
    """A Fail turn comes back as the SDK's own error for that status."""
    openai_stub.script(Fail(429, "slow down"))
    with pytest.raises(RateLimitError, match="slow down"):
        chat(openai_stub).invoke("hi")
    assert openai_stub.exchanges[0].status == 429
    assert openai_stub.answered("/v1/chat/completions") == []


def test_anthropic_text_tools_and_stream(anthropic_stub: AnthropicStub) -> None:
    """The Messages API stub: text with the served model and usage, tool_use blocks
    whole and streamed (with the input tokens in the final delta)."""
    anthropic_stub.script(
        "Hello!",
        Reply("Let me check.", [ToolCall("get_weather", {"city": "Rome"})]),
        Reply("Checking.", [ToolCall("get_weather", {"city": "Oslo"})]),
    )
    model = ChatAnthropic(
        model="claude-3-5-haiku-latest",
        base_url=anthropic_stub.base_url,
        api_key=SecretStr("sk-ant-test"),
        max_retries=0,
    )
    hello = model.invoke([("system", "Be brief."), ("user", "hi")])
    tools = model.bind_tools([get_weather])
    whole = tools.invoke("weather?")
    streamed = joined(tools.stream("weather?"))
    first, _, third = anthropic_stub.exchanges
    assert hello.content == "Hello!"
    assert hello.response_metadata["model_name"] == "claude-3-5-haiku-20241022"
    assert hello.usage_metadata is not None
    assert hello.usage_metadata["input_tokens"] == first.usage["input_tokens"]
    assert [c["args"] for c in whole.tool_calls] == [{"city": "Rome"}]
    assert [c["args"] for c in streamed.tool_calls] == [{"city": "Oslo"}]
    assert streamed.usage_metadata is not None
    assert streamed.usage_metadata["total_tokens"] == sum(
        third.usage[k] for k in ("input_tokens", "output_tokens")
    )
