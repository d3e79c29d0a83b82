"""Tool calls export structurally, never as display text (lstrace/_export/toolcalls.py). No HTTP."""

from __future__ import annotations

from lstrace._export import toolcalls

CALL = {
    "id": "c1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
}
ORIGINAL = {"role": "assistant", "content": "", "tool_calls": [CALL]}
SHOWN = '[tool call] get_weather({"city": "Paris"})'


def test_an_unedited_tool_call_exports_the_models_own_structure() -> None:
    """An annotator who accepts the model's tool call exports its id, name and arguments."""
    assert toolcalls.assistant(SHOWN, SHOWN, ORIGINAL) == ORIGINAL


def test_an_edited_tool_call_line_becomes_the_exported_call() -> None:
    """Changing a tool call's arguments in the text changes the call; the id is kept."""
    edited = 'Let me look.\n[tool call] get_weather({"city": "Lyon"})'
    assert toolcalls.assistant(edited, SHOWN, ORIGINAL) == {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [
            {**CALL, "function": {"name": "get_weather", "arguments": {"city": "Lyon"}}}
        ],
    }


def test_text_without_call_lines_is_plain_content() -> None:
    """An edit that replaces a tool call with an answer exports a plain assistant turn."""
    assert toolcalls.assistant("It is sunny.", SHOWN, ORIGINAL) == {
        "role": "assistant",
        "content": "It is sunny.",
    }


def test_a_line_that_only_looks_like_a_call_stays_text() -> None:
    """Arguments that are not a JSON object leave the line as text, not a broken call."""
    text = "[tool call] get_weather(Paris)"
    assert toolcalls.assistant(text) == {"role": "assistant", "content": text}


def test_dialogue_turns_use_their_structure_when_they_have_one() -> None:
    """A turn with a ``message`` exports it (tool_call_id, name); others export role/content."""
    tool_turn = {
        "role": "tool",
        "content": "Sunny",
        "message": {"role": "tool", "content": "Sunny", "tool_call_id": "c1", "name": "w"},
    }
    assert toolcalls.message(tool_turn) == tool_turn["message"]
    assert toolcalls.message({"role": "user", "content": "hi"}) == {"role": "user", "content": "hi"}
