"""Rows from trace-mode tasks: the trajectory in OpenAI's / TRL's tool-calling layout.

A trace task shows its run as ``data.trajectory`` (display turns) and keeps it beside
as ``data.messages`` (system, user, assistant turns with structured ``tool_calls``,
``role: "tool"`` turns with ``tool_call_id`` and ``name``) and ``data.tools`` (the
tools offered, as JSON schemas). Exports read those, never the display text: an sft
row is ``{"messages": [...trajectory, corrected final answer], "tools": [...]}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def is_trace(data: Mapping[str, Any]) -> bool:
    """True for a task built by trace mode."""
    return isinstance(data.get("messages"), list) and isinstance(data.get("trajectory"), list)


def messages(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The trajectory before the final answer, as exported messages."""
    return [dict(m) for m in data["messages"] if isinstance(m, Mapping)]


def tools(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tools the run's models were offered (OpenAI layout, JSON schema parameters)."""
    found = data.get("tools")
    return [dict(t) for t in found if isinstance(t, Mapping)] if isinstance(found, list) else []


def facts(data: Mapping[str, Any]) -> dict[str, Any]:
    """What a ratings row says about a trace: its step count, the tools it used, and
    whether it is incomplete."""
    used = data.get("tools_used")
    return {
        "steps": data.get("steps"),
        "tools_used": [t for t in str(used).split(", ") if t] if used else [],
        "incomplete": data.get("incomplete") or None,
    }


def wrong_step(choices: Mapping[str, Sequence[str]]) -> str | None:
    """The step the annotator marked as the one that went wrong (default config's name)."""
    picked = choices.get("wrong_step") or []
    return str(picked[0]) if picked else None
