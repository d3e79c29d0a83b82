"""What a captured call becomes before it is spooled: truncation, filter, mask, before_send.

Runs on the background sender, in this order: texts are truncated to
``max_field_chars``; ``filter`` sees the call (unmasked) and may drop it;
``mask`` rewrites every text that leaves the process (prompt, messages,
responses, error, metadata values); ``before_send`` sees the masked task
and may change or drop it. A failing mask replaces the text with a fixed
placeholder, never the raw text; a failing filter keeps the call; a failing
before_send drops it (it may have been meant to redact). Every drop and
failure is counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from lstrace._delivery.stats import Counters
from lstrace._delivery.task import truncate
from lstrace._options import CallInfo, Options

logger = logging.getLogger("lstrace")

MASK_FAILED = "[lstrace: text withheld because the mask failed]"


def shape(content: dict[str, Any], options: Options, counters: Counters) -> dict[str, Any] | None:
    """Apply the scope's capture options; None means the call is dropped (and counted)."""
    if _has_long_text(content, options.max_field_chars):
        content = _map_texts(content, lambda text: truncate(text, options.max_field_chars))
    if options.filter is not None and not _passes(options.filter, content, counters):
        counters.lost("filter")
        return None
    if options.mask is not None:
        content = _map_texts(content, safe_mask(options.mask, counters))
    return before_send(content, options, counters, "call")


def before_send(
    content: dict[str, Any], options: Options, counters: Counters, what: str
) -> dict[str, Any] | None:
    """The scope's ``before_send`` hook on a call or a trace (``what``); None: dropped, counted."""
    if options.before_send is None:
        return content
    try:
        changed = options.before_send(content)
    except Exception:
        logger.exception(
            "lstrace: before_send raised; the %s is dropped, not sent unredacted", what
        )
        counters.lost("before_send_error")
        return None
    if changed is None:
        counters.lost("before_send")
    return changed


def call_info(content: dict[str, Any]) -> CallInfo:
    return CallInfo(
        model=content["model"],
        run_type=content["run_type"],
        prompt=content["prompt"],
        dialogue=content["dialogue"],
        tags=content["tags"],
        metadata=content["metadata"],
        error=content["error"],
        requested_model=content.get("requested_model") or content["model"],
    )


def _passes(
    predicate: Callable[[CallInfo], bool], content: dict[str, Any], counters: Counters
) -> bool:
    try:
        return bool(predicate(call_info(content)))
    except Exception:
        logger.exception("lstrace: filter raised; the call is kept")
        counters.add("filter_failed")
        return True


def safe_mask(mask: Callable[[str], str], counters: Counters) -> Callable[[str], str]:
    def apply(text: str) -> str:
        try:
            result = mask(text)
        except Exception:
            counters.add("mask_failed")
            logger.exception("lstrace: mask raised; the text is replaced by a placeholder")
            return MASK_FAILED
        if not isinstance(result, str):
            counters.add("mask_failed")
            logger.error(
                "lstrace: mask returned %s, not str; placeholder used", type(result).__name__
            )
            return MASK_FAILED
        return result

    return apply


def _has_long_text(content: dict[str, Any], limit: int) -> bool:
    """Whether truncation could change ``content``: a text longer than ``limit``, or a
    field whose texts are not checked here (tool structure, an error, metadata), which
    leaves the call to :func:`_map_texts`. Most calls have none: they are not copied."""
    if content.get("response_message") or content.get("error") or content["metadata"]:
        return True
    if len(content["prompt"]) > limit:
        return True
    for turn in content["dialogue"]:
        if len(turn) != 2 or len(turn["content"]) > limit:  # {role, content} and no more
            return True
    return any(len(text) > limit for text in content["responses"])


def _map_texts(content: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """A copy of ``content`` with ``fn`` applied to every text that leaves the process."""
    out = dict(content)
    out["prompt"] = fn(content["prompt"])
    out["dialogue"] = [_map_turn(turn, fn) for turn in content["dialogue"]]
    out["responses"] = [fn(text) for text in content["responses"]]
    if content.get("response_message"):
        out["response_message"] = map_message(content["response_message"], fn)
    if content.get("error"):
        out["error"] = fn(content["error"])
    out["metadata"] = map_values(content["metadata"], fn)
    return out


def _map_turn(turn: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """A dialogue turn with ``fn`` applied to its text and to its tool structure's texts
    (content, tool-call arguments); roles, ids and tool names are left as they are."""
    out = {**turn, "content": fn(turn["content"])}
    if "message" in turn:
        out["message"] = map_message(turn["message"], fn)
    return out


def map_message(message: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """An OpenAI-layout message with ``fn`` applied to its content and call arguments."""
    out = {**message, "content": fn(message.get("content") or "")}
    if "tool_calls" in message:
        out["tool_calls"] = [
            {
                **c,
                "function": {
                    **c["function"],
                    "arguments": map_values(c["function"]["arguments"], fn),
                },
            }
            for c in message["tool_calls"]
        ]
    return out


def map_values(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: map_values(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [map_values(v, fn) for v in value]
    return value
