"""langchain-openai against the OpenAI stub, captured into a real Label Studio.

Each test makes the calls an app makes (chat, streaming with ``stream_usage``, tool
calls, ``n=2``, ``with_structured_output``, the completions LLM), reads the tasks back
from the session's Label Studio and checks them against what the stub answered: the
prompt or conversation, the response as the prediction, the token usage, the model.
Checks that wait for a fix are separate tests marked ``xfail(strict=True)`` naming the
issue point, so they fail the day the fix lands until the marker goes.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAI
from pydantic import BaseModel, SecretStr

import lstrace
from tests.providers.conftest import Task, delivered
from tests.providers.stubs import Choices, Exchange, OpenAIStub, ToolCall
from tests.servers import Server

pytestmark = pytest.mark.providers

SYSTEM = "You are Ada, a concise assistant."
QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France."
SERVED = "gpt-4o-mini-2024-07-18"


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny and 21 C in {city}."


class Capital(BaseModel):
    country: str
    city: str


def chat(stub: OpenAIStub, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=stub.base_url,
        api_key=SecretStr("sk-test"),
        max_retries=0,
        **options,
    )


def conversation() -> list[Any]:
    return [SystemMessage(SYSTEM), HumanMessage(QUESTION)]


def assert_usage(task: Task, exchange: Exchange) -> None:
    """The task's token columns are the provider's usage for the call, counted once."""
    usage = exchange.usage
    prompt = usage["prompt_tokens"] if "prompt_tokens" in usage else usage["input_tokens"]
    completion = (
        usage["completion_tokens"] if "completion_tokens" in usage else usage["output_tokens"]
    )
    assert (task.data["prompt_tokens"], task.data["completion_tokens"]) == (prompt, completion)
    assert task.data["total_tokens"] == prompt + completion


# -- each kind of call: data, prediction, usage ------------------------------------------------


def test_chat_invoke(label_studio: Server, openai_stub: OpenAIStub, title: str) -> None:
    """A chat call in chat mode: the conversation as the task's dialogue, the reply as the
    prediction, the provider's usage as the token columns."""
    openai_stub.script(ANSWER)
    with lstrace.ls_session(project_name=title, mode="chat"):
        reply = chat(openai_stub).invoke(conversation())
    [task] = delivered(label_studio, title, 1)
    [exchange] = openai_stub.exchanges
    assert reply.content == ANSWER
    assert task.data["prompt"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": QUESTION},
    ]
    assert task.texts == [ANSWER]
    assert_usage(task, exchange)


def test_chat_stream_with_usage(label_studio: Server, openai_stub: OpenAIStub, title: str) -> None:
    """A streamed chat call with stream_usage: one task holding the whole reply, with the
    usage of the stream's final chunk."""
    story = "Once upon a time a small robot learned to paint the sunset."
    openai_stub.script(story)
    with lstrace.ls_session(project_name=title):
        pieces = [c.content for c in chat(openai_stub, stream_usage=True).stream("A story?")]
    [task] = delivered(label_studio, title, 1)
    [exchange] = openai_stub.exchanges
    assert len(pieces) > 5 and "".join(map(str, pieces)) == story
    assert exchange.body["stream_options"] == {"include_usage": True}
    assert task.data["prompt"] == "A story?"
    assert task.texts == [story]
    assert_usage(task, exchange)


def test_tool_call_then_answer(label_studio: Server, openai_stub: OpenAIStub, title: str) -> None:
    """A model bound to a tool: the call that asks for the tool shows the tool call as its
    response; the follow-up with the tool's result shows the tool turn and the answer."""
    openai_stub.script(ToolCall("get_weather", {"city": "Paris"}, id="call_1"), "Sunny, 21 C.")
    model = chat(openai_stub).bind_tools([get_weather])
    with lstrace.ls_session(project_name=title, mode="chat"):
        asked = model.invoke([HumanMessage("Weather in Paris?")])
        result = get_weather.invoke(asked.tool_calls[0])
        model.invoke([HumanMessage("Weather in Paris?"), asked, result])
    first, second = delivered(label_studio, title, 2)
    [call] = first.texts
    assert "get_weather" in call and "Paris" in call
    assert [turn["role"] for turn in second.data["prompt"]] == ["user", "assistant", "tool"]
    assert "Sunny and 21 C in Paris." in second.data["prompt"][2]["content"]
    assert second.texts == ["Sunny, 21 C."]
    for task, exchange in zip((first, second), openai_stub.exchanges, strict=True):
        assert_usage(task, exchange)


def test_structured_output(label_studio: Server, openai_stub: OpenAIStub, title: str) -> None:
    """with_structured_output (json_schema): the app gets the parsed object; the task holds
    the model's JSON as the response."""
    openai_stub.script({"country": "France", "city": "Paris"})
    with lstrace.ls_session(project_name=title):
        capital = chat(openai_stub).with_structured_output(Capital).invoke(QUESTION)
    [task] = delivered(label_studio, title, 1)
    [exchange] = openai_stub.exchanges
    assert capital == Capital(country="France", city="Paris")
    assert exchange.body["response_format"]["type"] == "json_schema"
    assert task.data["prompt"] == QUESTION
    assert task.texts == ['{"country": "France", "city": "Paris"}']
    assert_usage(task, exchange)


def test_n_2_in_pairwise_mode(label_studio: Server, openai_stub: OpenAIStub, title: str) -> None:
    """n=2 in pairwise mode: one task, the two choices side by side."""
    openai_stub.script(Choices("Paris.", "It is Paris, on the Seine."))
    with lstrace.ls_session(project_name=title, mode="pairwise"):
        chat(openai_stub, n=2).invoke(QUESTION)
    [task] = delivered(label_studio, title, 1)
    assert task.data["prompt"] == QUESTION
    assert (task.data["answer_a"], task.data["answer_b"]) == (
        "Paris.",
        "It is Paris, on the Seine.",
    )


def test_n_2_usage_is_counted_once(
    label_studio: Server, openai_stub: OpenAIStub, title: str
) -> None:
    """n=2: the task's usage is the provider's usage for the call, not twice it."""
    openai_stub.script(Choices("Paris.", "It is Paris, on the Seine."))
    with lstrace.ls_session(project_name=title, mode="pairwise"):
        chat(openai_stub, n=2).invoke(QUESTION)
    [task] = delivered(label_studio, title, 1)
    [exchange] = openai_stub.exchanges
    assert_usage(task, exchange)


def test_completions_llm(label_studio: Server, openai_stub: OpenAIStub, title: str) -> None:
    """The completions LLM (langchain_openai.OpenAI), invoked and streamed: prompt mode
    tasks with the prompt, the completion and (for the invoke) the usage."""
    openai_stub.script("Paris.", "Rome is the capital of Italy.")
    llm = OpenAI(
        model="gpt-3.5-turbo-instruct", base_url=openai_stub.base_url, api_key=SecretStr("sk-t")
    )
    with lstrace.ls_session(project_name=title):
        llm.invoke("Capital of France:")
        streamed = "".join(llm.stream("Capital of Italy:"))
    first, second = delivered(label_studio, title, 2)
    assert streamed == "Rome is the capital of Italy."
    assert (first.data["prompt"], first.texts) == ("Capital of France:", ["Paris."])
    assert (second.data["prompt"], second.texts) == ("Capital of Italy:", [streamed])
    assert_usage(first, openai_stub.exchanges[0])


# -- the model that answered -----------------------------------------------------------------


def make_calls(kind: str, stub: OpenAIStub) -> str:
    """Make one call of ``kind`` against ``stub``; return the model name it requested."""
    if kind == "completions":
        stub.script("Paris.")
        OpenAI(
            model="gpt-3.5-turbo-instruct", base_url=stub.base_url, api_key=SecretStr("sk-t")
        ).invoke("Q")
        return "gpt-3.5-turbo-instruct"
    stub.script(ANSWER)
    model = chat(stub, stream_usage=True)
    if kind == "stream":
        list(model.stream(QUESTION))
    else:
        model.invoke(QUESTION)
    return "gpt-4o-mini"


@pytest.mark.parametrize("kind", ["invoke", "stream", "completions"])
def test_model_is_the_one_that_answered(
    kind: str, label_studio: Server, openai_stub: OpenAIStub, title: str
) -> None:
    """data.model and the prediction's model_version are the served model
    (gpt-4o-mini-2024-07-18); data.requested_model is the name the app asked for.
    langchain-openai's completions model never passes the served name on (its llm_output
    names the requested model, its generations none): there both are the requested name."""
    with lstrace.ls_session(project_name=title):
        requested = make_calls(kind, openai_stub)
    [task] = delivered(label_studio, title, 1)
    [exchange] = openai_stub.exchanges
    assert exchange.served_model != requested
    answered = requested if kind == "completions" else exchange.served_model
    assert (task.data["model"], task.model_version) == (answered,) * 2
    assert task.data["requested_model"] == requested


def test_chat_task_has_last_user_message(
    label_studio: Server, openai_stub: OpenAIStub, title: str
) -> None:
    """A chat task has a plain-text column with the last user message (the Data Manager's
    prompt column otherwise shows the whole conversation as JSON, system prompt first)."""
    openai_stub.script(ANSWER)
    with lstrace.ls_session(project_name=title, mode="chat"):
        chat(openai_stub).invoke(conversation())
    [task] = delivered(label_studio, title, 1)
    assert task.data["last_user_message"] == QUESTION
