"""Turn LangChain messages and generations into readable ``{role, content}`` text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, ChatMessageChunk

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


def to_dialogue(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """Messages as ``[{"role": ..., "content": ...}]`` for Label Studio's Paragraphs."""
    return [{"role": role_of(m), "content": message_text(m)} for m in messages]


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
