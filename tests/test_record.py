"""A captured call becomes plain, JSON-ready content (lstrace/_capture/record.py).

No Label Studio; the real provider SDKs talk to local stubs (tests/providers/stubs.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from lstrace import ls_session
from lstrace._capture.record import CapturedCall, model_name, to_content, utc_iso
from lstrace._delivery import worker as _worker
from lstrace._options import make_args, resolve
from tests.providers.stubs import AnthropicStub, Choices, OpenAIStub

RUN = uuid.UUID("00000000-0000-4000-8000-000000000001")
PARENT = uuid.UUID("00000000-0000-4000-8000-000000000002")


def call(**changes: Any) -> CapturedCall:
    """A finished chat call, in a scope tagged "scope-tag" with metadata {"team": "qa"}."""
    options = resolve(
        make_args(project_name="Unit", tags=["scope-tag"], metadata={"team": "qa"}), None
    )
    fields: dict[str, Any] = {
        "options": options,
        "run_id": RUN,
        "parent_run_id": PARENT,
        "prompt": None,
        "messages": [SystemMessage("Be brief"), HumanMessage("Hi")],
        "serialized": {"id": ["langchain_core", "fakes", "MyChatModel"]},
        "tags": ["run-tag", "scope-tag"],
        "metadata": {"ls_provider": "fake", "ls_model_name": "gpt-x", "session": "s1"},
        "invocation_params": {"model": "ignored-when-ls-name-given"},
        "name": None,
        "started_at": 1_700_000_000.0,
        "started_perf": 10.0,
        "ended_perf": 10.25,
        "response": LLMResult(generations=[[ChatGeneration(message=AIMessage("Hello!"))]]),
    }
    fields.update(changes)
    return CapturedCall(**fields)


def test_chat_call_content_has_dialogue_response_and_timing() -> None:
    """A chat call keeps its messages as a dialogue, its response text, latency and start time."""
    content = to_content(call())
    assert content["dialogue"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Hi"},
    ]
    assert content["prompt"] == "system: Be brief\n\nuser: Hi"
    assert content["responses"] == ["Hello!"]
    assert content["run_id"] == str(RUN) and content["parent_run_id"] == str(PARENT)
    assert content["latency_ms"] == 250.0
    assert content["captured_at"] == "2023-11-14T22:13:20+00:00"
    json.dumps(content)  # JSON-ready: the spool stores it as is


def test_llm_call_content_uses_the_prompt_string() -> None:
    """A text LLM call keeps its prompt string; the dialogue is that one user turn."""
    content = to_content(
        call(
            prompt="Tell me a joke",
            messages=None,
            response=LLMResult(generations=[[Generation(text="A joke.")]]),
        )
    )
    assert content["prompt"] == "Tell me a joke"
    assert content["dialogue"] == [{"role": "user", "content": "Tell me a joke"}]
    assert content["responses"] == ["A joke."]


def test_tags_merge_scope_then_run_tags_without_duplicates() -> None:
    """Tags are the scope's then LangChain's run tags, each once."""
    assert to_content(call())["tags"] == ["scope-tag", "run-tag"]


def test_metadata_merges_scope_and_run_metadata_without_langchain_bookkeeping() -> None:
    """User metadata from the scope and the run is kept; LangChain's ls_* keys are not."""
    assert to_content(call())["metadata"] == {"team": "qa", "session": "s1"}


def test_unserializable_metadata_is_stringified_not_fatal() -> None:
    """A metadata value JSON cannot hold becomes a string instead of breaking the task."""
    content = to_content(call(metadata={"when": object}))
    assert content["metadata"]["when"] == str(object)
    json.dumps(content)


def test_usage_comes_from_usage_metadata_or_llm_output() -> None:
    """Token counts come from the message's usage_metadata, else from llm_output.token_usage."""
    message = AIMessage(
        "Hello!", usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
    )
    chat = call(response=LLMResult(generations=[[ChatGeneration(message=message)]]))
    assert to_content(chat)["usage"] == {
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "total_tokens": 10,
    }
    legacy = call(
        response=LLMResult(
            generations=[[Generation(text="x")]],
            llm_output={
                "token_usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
            },
        )
    )
    assert to_content(legacy)["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 1,
        "total_tokens": 6,
    }


def test_model_name_falls_back_in_order_and_is_never_empty() -> None:
    """ls_model_name, then invocation params, then the model class, then the run name."""
    assert model_name(call()) == "gpt-x"
    assert model_name(call(metadata={}, invocation_params={"model_name": "m1"})) == "m1"
    assert model_name(call(metadata={}, invocation_params={"model": "m2"})) == "m2"
    assert model_name(call(metadata={}, invocation_params={})) == "MyChatModel"
    bare = call(metadata={}, invocation_params={}, serialized=None, name=None)
    assert model_name(bare) == "unknown-model"


def test_langchain_bookkeeping_stays_out_of_tags_and_metadata() -> None:
    """LangChain's step tags and LangGraph's run metadata are dropped; what the user set
    (scope and run tags and metadata) stays, and so does LangGraph's thread_id."""
    graph_run = call(
        tags=["seq:step:1", "graph:step:3", "mine"],
        metadata={
            "user": "ana",
            "thread_id": "t1",
            "langgraph_step": 1,
            "langgraph_node": "agent",
            "langgraph_triggers": ("branch:to:agent",),
            "langgraph_path": ("__pregel_pull", "agent"),
            "langgraph_checkpoint_ns": "agent:0388e389",
            "checkpoint_ns": "agent:0388e389",
            "ls_provider": "openai",
            "lc_versions": {"langchain-core": "1.0"},
        },
    )
    content = to_content(graph_run)
    assert content["tags"] == ["scope-tag", "mine"]
    assert content["metadata"] == {"team": "qa", "user": "ana", "thread_id": "t1"}
    options = resolve(make_args(project_name="U", tags=["seq:step:9"]), None)
    assert to_content(call(options=options, tags=[]))["tags"] == ["seq:step:9"]  # the user's


def _chat_result(*messages: AIMessage, llm_output: dict[str, Any] | None = None) -> LLMResult:
    return LLMResult(
        generations=[[ChatGeneration(message=m) for m in messages]], llm_output=llm_output
    )


def test_n_generations_carrying_the_whole_calls_usage_are_not_added_up() -> None:
    """With n=2 every generation carries the call's whole usage_metadata (that is how
    langchain-openai fills it): the call's usage is counted once."""
    usage = {"input_tokens": 11, "output_tokens": 22, "total_tokens": 33}
    two = _chat_result(AIMessage("a", usage_metadata=usage), AIMessage("b", usage_metadata=usage))
    assert to_content(call(response=two))["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 22,
        "total_tokens": 33,
    }


def test_the_model_that_answered_and_the_one_requested_are_both_kept() -> None:
    """``model`` is the snapshot the provider says answered (OpenAI's response_metadata
    model_name, Anthropic's model, or llm_output's model_name when several generations
    leave response_metadata bare); ``requested_model`` is the name the app asked for."""
    openai = _chat_result(
        AIMessage("x", response_metadata={"model_name": "gpt-4o-mini-2024-07-18"})
    )
    anthropic = _chat_result(
        AIMessage("x", response_metadata={"model": "claude-3-5-haiku-20241022"})
    )
    n_two = _chat_result(
        AIMessage("a"), AIMessage("b"), llm_output={"model_name": "gpt-4o-2024-08-06"}
    )
    for response, served in [
        (openai, "gpt-4o-mini-2024-07-18"),
        (anthropic, "claude-3-5-haiku-20241022"),
        (n_two, "gpt-4o-2024-08-06"),
        (_chat_result(AIMessage("unknown")), "gpt-x"),
    ]:
        content = to_content(call(response=response))
        assert (content["model"], content["requested_model"]) == (served, "gpt-x")
    failed = to_content(call(response=None, error=RuntimeError("boom")))
    assert (failed["model"], failed["requested_model"]) == ("gpt-x", "gpt-x")


def test_real_provider_sdks_give_the_served_model_and_the_calls_usage_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """langchain-openai (n=2, streaming with usage) and langchain-anthropic, against local
    stubs: the content has the served snapshot as ``model``, the requested name as
    ``requested_model``, and the usage the provider reported for the whole call."""
    captured: list[CapturedCall] = []
    monkeypatch.setattr(_worker, "submit", captured.append)
    with OpenAIStub() as openai, AnthropicStub() as anthropic:
        openai.script(Choices("one two", "three"), "streamed answer")
        anthropic.script("Hello!")
        gpt = ChatOpenAI(
            model="gpt-4o-mini",
            base_url=openai.base_url,
            api_key=SecretStr("sk-test"),
            max_retries=0,
        )
        claude = ChatAnthropic(
            model="claude-3-5-haiku-latest",
            base_url=anthropic.base_url,
            api_key=SecretStr("sk-ant-test"),
            max_retries=0,
        )
        with ls_session(project_name="record: providers"):
            gpt.bind(n=2).invoke("count")
            list(gpt.stream("stream", stream_usage=True))
            claude.invoke("hi")
        exchanges = [*openai.exchanges, *anthropic.exchanges]
    assert len(captured) == len(exchanges) == 3
    for exchange, content in zip(exchanges, map(to_content, captured), strict=True):
        assert content["model"] == exchange.served_model != exchange.requested_model
        assert content["requested_model"] == exchange.requested_model
        usage = exchange.usage
        prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
        completion = usage.get("completion_tokens", usage.get("output_tokens"))
        assert (content["usage"]["prompt_tokens"], content["usage"]["completion_tokens"]) == (
            prompt,
            completion,
        )
    assert to_content(captured[0])["responses"] == ["one two", "three"]


@pytest.mark.parametrize(
    "timestamp",
    [
        0.0,
        1764660000.0,
        1764660000.5,
        1764660000.0000005,
        1764660000.0000015,
        1764660000.9999994,
        1764660000.9999996,
        1764660001.25,
        1764660000.123456,
        1764659999.999999,
        1.5,
    ],
)
def test_capture_time_text_is_what_datetime_writes(timestamp: float) -> None:
    """captured_at is datetime's own isoformat() text, to the microsecond and its rounding,
    whichever second was formatted before."""
    expected = dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat()
    for before in (timestamp, timestamp - 1.0, timestamp + 7.3):
        utc_iso(before)
        assert utc_iso(timestamp) == expected


def pair_group_pid() -> int:
    return int(str(to_content(call())["pair_group"]).split(":")[0])


def test_the_pair_group_carries_the_pid_of_the_process_after_fork() -> None:
    """The process id in pair groups is read once, and again in a forked child."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork here")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: says whether its pair groups carry its own pid
        os.close(read)
        os.write(write, b"1" if pair_group_pid() == os.getpid() else b"0")
        os._exit(0)
    os.close(write)
    said = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert said == b"1"
    assert pair_group_pid() == os.getpid()
