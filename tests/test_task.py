"""Captured content becomes a Label Studio import payload (lstrace/_delivery/task.py). No HTTP."""

from __future__ import annotations

import json
from typing import Any

from lstrace._delivery.task import TRUNCATION_MARK, build_task, truncate
from lstrace._labelconfig import Mode, Target, default_target


def text_target(mode: Mode) -> Target:
    """The target of ``mode``'s default config, one whose responses go to a TextArea (every
    mode's but pairwise's)."""
    target = default_target(mode)
    assert isinstance(target, Target), target
    return target


def content(**changes: Any) -> dict[str, Any]:
    """Content as ``to_content`` produces it for a two-turn chat call."""
    base: dict[str, Any] = {
        "run_id": "0b7c2f6e-1111-4222-8333-944445555666",
        "parent_run_id": "0b7c2f6e-0000-4222-8333-944445555666",
        "prompt": "system: Use emojis\n\nuser: Tell me a joke",
        "dialogue": [
            {"role": "system", "content": "Use emojis"},
            {"role": "user", "content": "Tell me a joke"},
        ],
        "responses": ["Why did the 🐔 cross the road?"],
        "model": "gpt-fake-2026-01-01",
        "requested_model": "gpt-fake",
        "run_type": "chat_model",
        "tags": ["eval", "v2"],
        "metadata": {"user": "ana", "attempt": 2},
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20},
        "latency_ms": 12.5,
        "captured_at": "2026-01-02T03:04:05+00:00",
        "error": None,
    }
    return {**base, **changes}


def test_prompt_mode_task_has_the_prompt_text_and_the_response_as_prediction() -> None:
    """Prompt mode: data.prompt is text; the response is an editable TextArea prediction."""
    task = build_task(content(), text_target("prompt"))
    assert task["data"]["prompt"] == "system: Use emojis\n\nuser: Tell me a joke"
    assert task["predictions"] == [
        {
            "model_version": "gpt-fake-2026-01-01",
            "result": [
                {
                    "from_name": "response",
                    "to_name": "prompt",
                    "type": "textarea",
                    "value": {"text": ["Why did the 🐔 cross the road?"]},
                }
            ],
        }
    ]


def test_chat_mode_task_has_the_dialogue_with_real_role_names() -> None:
    """Chat mode: data.prompt is the [{role, content}] list the Paragraphs tag renders."""
    task = build_task(content(), text_target("chat"))
    assert task["data"]["prompt"] == [
        {"role": "system", "content": "Use emojis"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    assert task["predictions"][0]["result"][0]["to_name"] == "dialogue"


def test_every_task_carries_run_model_tags_metadata_usage_and_latency() -> None:
    """The flat data keys Label Studio shows as Data Manager columns are all filled."""
    data = build_task(content(), text_target("prompt"))["data"]
    assert data["run_id"] == "0b7c2f6e-1111-4222-8333-944445555666"
    assert data["parent_run_id"] == "0b7c2f6e-0000-4222-8333-944445555666"
    assert data["model"] == "gpt-fake-2026-01-01"  # the model that answered
    assert data["requested_model"] == "gpt-fake"
    assert data["tags"] == "eval, v2"
    assert json.loads(data["metadata"]) == {"user": "ana", "attempt": 2}
    assert (data["prompt_tokens"], data["completion_tokens"], data["total_tokens"]) == (12, 8, 20)
    assert data["latency_ms"] == 12.5
    assert data["captured_at"] == "2026-01-02T03:04:05+00:00"
    assert "error" not in data


def test_a_top_level_call_has_an_empty_parent_and_unknown_usage_is_null() -> None:
    """No parent run gives "" (a string column), and missing token counts stay null."""
    data = build_task(content(parent_run_id=None, usage={}), text_target("prompt"))["data"]
    assert data["parent_run_id"] == ""
    assert data["prompt_tokens"] is None and data["total_tokens"] is None


def test_model_version_is_never_empty() -> None:
    """An empty model name still yields a non-empty model_version (null crashes the UI)."""
    task = build_task(content(model=""), text_target("prompt"))
    assert task["predictions"][0]["model_version"] == "unknown-model"


def test_custom_target_puts_the_prompt_under_its_data_key() -> None:
    """A custom config reading $question gets the prompt there, and the response on its TextArea."""
    target = Target("answer", "q", "question", "Text")
    task = build_task(content(), target)
    assert task["data"]["question"] == content()["prompt"]
    assert "prompt" not in task["data"]
    result = task["predictions"][0]["result"][0]
    assert (result["from_name"], result["to_name"]) == ("answer", "q")


def test_a_call_without_response_still_has_a_prediction_to_edit() -> None:
    """No generations gives one empty text, so annotators can still write the answer."""
    task = build_task(content(responses=[]), text_target("prompt"))
    assert task["predictions"][0]["result"][0]["value"] == {"text": [""]}


def test_an_error_is_shown_in_the_task() -> None:
    """A captured error appears under data.error."""
    task = build_task(content(error="TimeoutError('slow')"), text_target("prompt"))
    assert task["data"]["error"] == "TimeoutError('slow')"


def test_long_texts_are_cut_with_a_visible_marker() -> None:
    """Over max_chars, a field keeps its start and says how many characters were removed."""
    long = "x" * 50
    assert truncate(long, 50) == long
    assert truncate(long, 20) == "x" * 20 + TRUNCATION_MARK.format(n=30)
    task = build_task(content(responses=[long], prompt=long), text_target("prompt"), max_chars=20)
    assert task["data"]["prompt"].endswith("30 characters removed ...]")
    assert task["predictions"][0]["result"][0]["value"]["text"][0].startswith("x" * 20 + "\n")


def test_chat_tasks_show_the_last_user_message_as_plain_text() -> None:
    """A chat task has ``last_user_message``, the text of the conversation's last user turn
    (the Data Manager shows the whole conversation as raw JSON); prompt tasks do not."""
    dialogue = [
        {"role": "system", "content": "Use emojis"},
        {"role": "user", "content": "Tell me a joke"},
        {"role": "assistant", "content": "Why..."},
        {"role": "user", "content": "Another one"},
        {"role": "tool", "content": "{}"},
    ]
    chat = build_task(content(dialogue=dialogue), text_target("chat"))["data"]
    assert chat["last_user_message"] == "Another one"
    no_user = build_task(content(dialogue=dialogue[:1]), text_target("chat"))["data"]
    assert no_user["last_user_message"] == ""
    assert "last_user_message" not in build_task(content(), text_target("prompt"))["data"]
    long = build_task(
        content(dialogue=[{"role": "user", "content": "x" * 50}]),
        text_target("chat"),
        max_chars=10,
    )["data"]
    assert long["last_user_message"] == truncate("x" * 50, 10)


def test_content_spooled_before_requested_model_existed_still_builds() -> None:
    """Rows spooled by an earlier version have no requested_model: it is the model then."""
    old = content()
    del old["requested_model"]
    assert (
        build_task(old, text_target("prompt"))["data"]["requested_model"] == "gpt-fake-2026-01-01"
    )
