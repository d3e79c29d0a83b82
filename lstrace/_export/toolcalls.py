"""Tool calls in exported rows: OpenAI's / TRL's tool-calling layout, never display text.

Tasks show tool calls to annotators as readable lines (``[tool call] name({...})``)
and keep the structure beside them (a turn's ``message``, a task's
``response_message``). Rows use the structure: assistant turns carry
``tool_calls`` (``id``, ``type: "function"``, ``function: {name, arguments}``),
tool turns carry ``tool_call_id`` and ``name``. An annotator who edits a tool
call's line (its name or its JSON arguments) changes the exported call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

# What lstrace._capture.messages writes for a tool call, one per line.
_CALL_LINE = re.compile(r"^\[tool call\] ([^\s(]+)\((.*)\)\s*$")


def message(turn: Mapping[str, Any]) -> dict[str, Any]:
    """One dialogue turn as an exported message: its structure if it has one, else text."""
    shaped = turn.get("message")
    if isinstance(shaped, Mapping):
        return {str(k): v for k, v in shaped.items()}
    return {"role": str(turn.get("role", "user")), "content": str(turn.get("content", ""))}


def assistant(
    text: str, original: str | None = None, original_message: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The assistant turn for ``text``: the model's own structure when the annotator left
    its answer as it was, else ``text`` read back into content and tool calls."""
    if original_message is not None and text == original:
        return {str(k): v for k, v in original_message.items()}
    content, calls = parse(text)
    if not calls:
        return {"role": "assistant", "content": text}
    known = list((original_message or {}).get("tool_calls") or [])
    for i, call in enumerate(calls):
        if i < len(known) and known[i].get("function", {}).get("name") == call["function"]["name"]:
            call["id"] = known[i].get("id") or call["id"]
    return {"role": "assistant", "content": content, "tool_calls": calls}


def parse(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Split readable text into its plain lines and the tool calls written as lines."""
    lines: list[str] = []
    calls: list[dict[str, Any]] = []
    for line in text.split("\n"):
        match = _CALL_LINE.match(line)
        args = _object(match.group(2)) if match else None
        if match and args is not None:
            calls.append(
                {
                    "id": f"call_{len(calls)}",
                    "type": "function",
                    "function": {"name": match.group(1), "arguments": args},
                }
            )
        else:
            lines.append(line)
    return "\n".join(lines).strip("\n"), calls


def _object(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
