"""Turn LangChain messages and generations into readable ``{role, content}`` text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "developer": "system",
}


def role_of(message: BaseMessage) -> str:
    """The chat role name (user, assistant, system, tool), never a class name."""
    if isinstance(message, ChatMessage | ChatMessageChunk) and message.role:
        return message.role  # a free-form role of its own
    # chunk classes report their class name as type: "AIMessageChunk" -> "ai"
    kind = message.type.removesuffix("Chunk").removesuffix("Message").lower()
    return _ROLES.get(kind, kind)


def text_of(content: Any) -> str:
    """Flatten string, list-of-blocks or multimodal content to readable text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part for part in (_block_text(b) for b in content) if part)
    return _json(content)


def _block_text(block: Any) -> str:
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return str(block)
    kind = block.get("type")
    if kind == "text" or (kind is None and "text" in block):
        return str(block.get("text", ""))
    if kind in ("image", "image_url", "audio", "video", "file"):
        return f"[{kind}]"
    if kind in ("tool_use", "tool_call"):
        return _tool_call_text(block.get("name", "?"), block.get("input", block.get("args", {})))
    if kind in ("reasoning", "thinking"):
        return ""
    return _json(block)


def _tool_call_text(name: str, args: Any) -> str:
    return f"[tool call] {name}({_json(args)})"


def message_text(message: BaseMessage) -> str:
    """A message's content, plus any tool calls it makes, as readable text."""
    text = text_of(message.content)
    # isinstance first: getattr of a missing field costs a raised AttributeError in pydantic
    calls = message.tool_calls if isinstance(message, AIMessage) else []
    lines = [text] if text else []
    lines += [_tool_call_text(c.get("name", "?"), c.get("args", {})) for c in calls]
    if not calls and not text:
        legacy = message.additional_kwargs.get("function_call")
        if legacy:
            lines.append(_tool_call_text(legacy.get("name", "?"), legacy.get("arguments", "")))
    return "\n".join(lines)


def to_dialogue(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Messages as ``[{"role": ..., "content": ...}]`` for Label Studio's Paragraphs.

    ``content`` is the readable text annotators see (tool calls shown as lines).
    A turn that makes tool calls, or answers one, also carries ``message``: the
    same turn in OpenAI's tool-calling layout (see :func:`structured`), which
    exports use instead of the readable text.
    """
    turns: list[dict[str, Any]] = []
    for m in messages:
        text = plain_turn_text(m)
        if text is not None:  # the common turn: what the general path below gives, sooner
            turns.append({"role": _PLAIN_ROLES[type(m)], "content": text})
            continue
        turn: dict[str, Any] = {"role": role_of(m), "content": message_text(m)}
        shaped = structured(m)
        if shaped is not None:
            turn["message"] = shaped
        turns.append(turn)
    return turns


# Exact classes (not subclasses, which may change what a field means) whose turn is only
# its role and text when the content is a non-empty string and no tool call is made.
_PLAIN_ROLES: dict[type, str] = {
    HumanMessage: "user",
    SystemMessage: "system",
    AIMessage: "assistant",
}


def plain_turn_text(message: BaseMessage) -> str | None:
    """The message's text when it is a plain turn (a user, system or assistant message of
    LangChain's own class, non-empty string content, no tool call): then its readable text
    is the content itself and :func:`structured` is None. None for every other message.

    The fast path of the conversion (a call's messages and replies are almost always
    plain turns): the general path reads several fields and tests several classes."""
    kind = type(message)
    if kind not in _PLAIN_ROLES:
        return None
    content = message.content
    if not isinstance(content, str) or not content:
        return None
    if (
        kind is AIMessage  # first: isinstance costs more when it fails
        and isinstance(message, AIMessage)
        and (message.tool_calls or message.additional_kwargs.get("function_call"))
    ):
        return None
    return content


def structured(message: BaseMessage) -> dict[str, Any] | None:
    """The message in OpenAI's tool-calling layout, or None when it has no tool structure.

    An assistant turn gets ``tool_calls`` (``id``, ``type: "function"``,
    ``function: {name, arguments}``, arguments as a JSON object) and its plain
    text as ``content``; a tool turn gets ``tool_call_id`` and ``name``.
    """
    if isinstance(message, AIMessage):
        calls = [
            _call(c.get("id"), c.get("name"), c.get("args"), i)
            for i, c in enumerate(message.tool_calls)
        ]
        legacy = message.additional_kwargs.get("function_call") if not calls else None
        if legacy:
            calls = [_call(None, legacy.get("name"), legacy.get("arguments"), 0)]
        if not calls:
            return None
        return {"role": "assistant", "content": plain_text(message.content), "tool_calls": calls}
    if isinstance(message, ToolMessage):
        return {
            "role": "tool",
            "content": text_of(message.content),
            "tool_call_id": message.tool_call_id,
            "name": message.name or "",
        }
    if isinstance(message, FunctionMessage):
        return {"role": "tool", "content": text_of(message.content), "name": message.name}
    return None


def _call(call_id: Any, name: Any, args: Any, index: int) -> dict[str, Any]:
    if isinstance(args, str):  # legacy function_call: a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            args = {"_raw": args}
    return {
        "id": str(call_id) if call_id else f"call_{index}",
        "type": "function",
        "function": {"name": str(name or "?"), "arguments": args if isinstance(args, dict) else {}},
    }


def plain_text(content: Any) -> str:
    """The message's own text, without the tool-call blocks some providers put in content."""
    if isinstance(content, list):
        content = [
            b
            for b in content
            if not (isinstance(b, dict) and b.get("type") in ("tool_use", "tool_call"))
        ]
    return text_of(content)


def dialogue_as_text(dialogue: Sequence[dict[str, str]]) -> str:
    """A conversation as one prompt string; a lone user turn stays as it is."""
    if len(dialogue) == 1 and dialogue[0]["role"] == "user":
        return dialogue[0]["content"]
    return "\n\n".join(f"{turn['role']}: {turn['content']}" for turn in dialogue)


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
