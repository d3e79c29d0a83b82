"""A captured call becomes plain, JSON-ready content (lstrace/_capture/record.py). No HTTP."""

from __future__ import annotations

import json
import uuid
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult

from lstrace._capture.record import CapturedCall, model_name, to_content
from lstrace._options import make_args, resolve

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
