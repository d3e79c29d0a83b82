"""Messages become readable ``{role, content}`` turns (lstrace/_capture/messages.py). No HTTP."""

from __future__ import annotations

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    ToolMessage,
)

from lstrace._capture.messages import (
    dialogue_as_text,
    message_text,
    plain_turn_text,
    role_of,
    structured,
    text_of,
    to_dialogue,
)


@pytest.mark.parametrize(
    ("message", "role"),
    [
        (HumanMessage("hi"), "user"),
        (HumanMessageChunk(content="hi"), "user"),
        (AIMessage("hi"), "assistant"),
        (AIMessageChunk(content="hi"), "assistant"),
        (SystemMessage("be brief"), "system"),
        (ToolMessage("42", tool_call_id="call_1"), "tool"),
        (FunctionMessage(name="add", content="42"), "tool"),
        (ChatMessage(role="critic", content="meh"), "critic"),
    ],
)
def test_role_names_are_chat_roles_not_class_names(message: BaseMessage, role: str) -> None:
    """Every LangChain message class maps to the chat role an annotator expects."""
    assert role_of(message) == role


def test_multimodal_content_is_flattened_to_text_with_placeholders() -> None:
    """Text blocks are joined by newlines; images/audio become a visible [kind] marker."""
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        "and this one?",
        {"type": "image", "source_type": "base64", "data": "AAAA", "mime_type": "image/png"},
        {"type": "audio", "source_type": "url", "url": "https://example.com/a.wav"},
    ]
    assert text_of(content) == (
        "What is in this picture?\n[image_url]\nand this one?\n[image]\n[audio]"
    )
    assert "base64" not in text_of(content)


def test_reasoning_blocks_are_left_out_and_unknown_blocks_shown_as_json() -> None:
    """Hidden reasoning is not shown; an unknown block stays visible as JSON, not dropped."""
    content = [
        {"type": "reasoning", "reasoning": "secret chain of thought"},
        {"type": "text", "text": "Answer: 4"},
        {"type": "citation", "url": "https://example.com"},
    ]
    assert text_of(content) == 'Answer: 4\n{"type": "citation", "url": "https://example.com"}'


def test_tool_calls_are_shown_in_the_assistant_turn() -> None:
    """An assistant turn that calls tools shows each call with its arguments."""
    message = AIMessage(
        content="Let me check.",
        tool_calls=[
            {"name": "weather", "args": {"city": "Paris"}, "id": "call_1"},
            {"name": "clock", "args": {}, "id": "call_2"},
        ],
    )
    assert message_text(message) == (
        'Let me check.\n[tool call] weather({"city": "Paris"})\n[tool call] clock({})'
    )


def test_anthropic_style_tool_use_blocks_and_legacy_function_calls_are_shown() -> None:
    """tool_use content blocks and OpenAI's legacy function_call are shown like tool calls."""
    blocks = AIMessage(content=[{"type": "tool_use", "name": "add", "input": {"a": 1}, "id": "t"}])
    assert message_text(blocks) == '[tool call] add({"a": 1})'
    legacy = AIMessage(
        content="", additional_kwargs={"function_call": {"name": "add", "arguments": '{"a": 1}'}}
    )
    assert message_text(legacy) == '[tool call] add("{\\"a\\": 1}")'


def test_dialogue_keeps_order_roles_and_text() -> None:
    """A conversation becomes the list Label Studio's Paragraphs tag renders, in order; the
    tool-call turns also carry their structure (OpenAI layout) for exports."""
    messages = [
        SystemMessage("Always use emojis"),
        HumanMessage("Weather in Paris?"),
        AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "c1"}]),
        ToolMessage("sunny", tool_call_id="c1"),
    ]
    assert to_dialogue(messages) == [
        {"role": "system", "content": "Always use emojis"},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": '[tool call] weather({"city": "Paris"})',
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": {"city": "Paris"}},
                    }
                ],
            },
        },
        {
            "role": "tool",
            "content": "sunny",
            "message": {"role": "tool", "content": "sunny", "tool_call_id": "c1", "name": ""},
        },
    ]


def test_dialogue_as_text_keeps_a_lone_user_turn_as_is() -> None:
    """A single user message is the prompt itself; a longer dialogue is labelled by role."""
    assert dialogue_as_text([{"role": "user", "content": "Tell me a joke"}]) == "Tell me a joke"
    assert dialogue_as_text(
        [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}]
    ) == ("system: Be brief\n\nuser: Hi")


class _OwnHuman(HumanMessage):
    """An app's own message class: never taken for a plain turn (it may mean more)."""


@pytest.mark.parametrize(
    "message",
    [
        HumanMessage("hi"),
        HumanMessage(""),
        HumanMessage([{"type": "text", "text": "hi"}]),
        HumanMessage("", additional_kwargs={"function_call": {"name": "f", "arguments": "{}"}}),
        SystemMessage("be brief"),
        AIMessage("hello"),
        AIMessage(""),
        AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1}, "id": "c1"}]),
        AIMessage("sure", tool_calls=[{"name": "add", "args": {"a": 1}, "id": "c1"}]),
        AIMessage("", additional_kwargs={"function_call": {"name": "f", "arguments": "{}"}}),
        AIMessage("sure", additional_kwargs={"function_call": {"name": "f", "arguments": "{}"}}),
        AIMessageChunk(content="hi"),
        ToolMessage("42", tool_call_id="call_1"),
        ChatMessage(role="critic", content="meh"),
        _OwnHuman(content="hi"),
    ],
)
def test_the_fast_plain_turn_says_what_the_general_path_says(message: BaseMessage) -> None:
    """The conversion's fast path (a plain turn) gives the same turn as the general one,
    and leaves every other message to it."""
    text = plain_turn_text(message)
    if text is not None:
        assert text == message_text(message)
        assert structured(message) is None
        assert to_dialogue([message]) == [{"role": role_of(message), "content": text}]
    plain = type(message) in (HumanMessage, SystemMessage, AIMessage)
    simple = isinstance(message.content, str) and message.content != ""
    calls = isinstance(message, AIMessage) and (
        message.tool_calls or message.additional_kwargs.get("function_call")
    )
    assert (text is not None) == (plain and simple and not calls)
