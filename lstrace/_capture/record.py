"""The captured call: the small record the LLM callback hands off, and its content.

The start of a run builds a :class:`CapturedCall` holding references to what
LangChain passed. When the run ends, :func:`settle` reads on the caller's thread what
the app can still change (the conversation and the reply) and lets go of those
objects; the background spooler turns the rest into its content (a plain, JSON-ready
dict, :func:`to_content`), which is what the spool stores.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from lstrace._capture.messages import (
    dialogue_as_text,
    message_text,
    plain_turn_text,
    structured,
    to_dialogue,
)
from lstrace._options import Options

# the responses' texts, the first one's tool structure, the served model, the usage
_Read = tuple[list[str], dict[str, Any] | None, str | None, dict[str, int]]


@dataclass(slots=True)
class CapturedCall:
    """One LLM or chat-model call, as seen by the callback handler."""

    options: Options
    run_id: UUID
    parent_run_id: UUID | None
    prompt: str | None  # LLMs
    messages: Sequence[BaseMessage] | None  # chat models
    serialized: Mapping[str, Any] | None
    tags: Sequence[str] | None
    metadata: Mapping[str, Any] | None
    invocation_params: Mapping[str, Any] | None
    name: str | None
    started_at: float  # time.time()
    started_perf: float  # time.perf_counter()
    ended_perf: float = 0.0
    response: LLMResult | None = None
    error: BaseException | None = None
    # (depth, sequence) of the scope that holds the call: the deepest wins, and pairwise
    # calls pair within one scope instance
    rank: tuple[int, int] = (0, 0)
    # what settle read as the run ended: the conversation (chat models) and the result
    dialogue: list[dict[str, Any]] | None = None
    result: _Read | None = None


def settle(call: CapturedCall) -> None:
    """Read what the app can still change once the call has returned, on the caller's
    thread, and drop the references to it; never raises.

    The conversation's messages and the reply are the app's own objects: a chat loop
    keeps them in its history and may edit them, and read later by the spooler the task
    showed the edited text. Reading them here makes the task a snapshot of the call as
    it ended, for about 4 us of the caller's CPU on the benchmark machine (the whole
    conversion costs 11), and lets LangChain's messages and result die with the call
    rather than age in the queue into older garbage-collector generations.
    The rest of the conversion (metadata, model name, timestamps: LangChain's own
    per-run values, or immutable) stays on the spooler, off the caller's thread. A call
    that fails to be read here keeps its references: the spooler converts it from them
    and reports the failure there.
    """
    try:
        dialogue, result = _snapshot(call)
    except Exception:
        return
    call.dialogue, call.result = dialogue, result
    call.messages = call.response = None


def _snapshot(call: CapturedCall) -> tuple[list[dict[str, Any]] | None, _Read]:
    dialogue = to_dialogue(call.messages) if call.messages is not None else None
    return dialogue, _read_result(call.response)


def to_content(call: CapturedCall) -> dict[str, Any]:
    """The call as a JSON-ready dict, independent of any label config."""
    # settle read both as the run ended; a call it did not settle is read now
    dialogue, read = (call.dialogue, call.result) if call.result is not None else _snapshot(call)
    prompt = call.prompt if call.prompt is not None else dialogue_as_text(dialogue or [])
    responses, response_message, served, usage = read
    metadata = _metadata(call)
    requested = model_name(call)
    return {
        "run_id": str(call.run_id),
        "parent_run_id": str(call.parent_run_id) if call.parent_run_id else None,
        "prompt": prompt,
        "dialogue": dialogue if dialogue is not None else [{"role": "user", "content": prompt}],
        "responses": responses,
        "response_message": response_message,
        "model": served or requested,
        "requested_model": requested,
        "run_type": "llm" if dialogue is None else "chat_model",
        "tags": _tags(call),
        "metadata": metadata,
        "pair_group": _pair_group(call, prompt, responses, metadata),
        "usage": usage,
        # to the microsecond: round(x, 3) formats the float as decimal text, 4x the cost
        "latency_ms": round((call.ended_perf - call.started_perf) * 1e6) / 1000,
        "captured_at": utc_iso(call.started_at),
        "error": repr(call.error) if call.error is not None else None,
    }


class _Second:
    """The last whole second :func:`utc_iso` formatted, and its text (a holder: one tuple,
    replaced at once, so threads never see a second with another's text)."""

    last: tuple[float, str] = (-1.0, "")


def utc_iso(timestamp: float) -> str:
    """``datetime.fromtimestamp(timestamp, timezone.utc).isoformat()``, the same text (its
    rounding to the microsecond included), with the date and time of the whole second
    formatted once per second: calls come many a second, and that formatting was the
    conversion's dearest step."""
    frac, whole = math.modf(timestamp)
    micro = round(frac * 1e6)  # half to even, as datetime rounds
    if micro >= 1_000_000:
        micro -= 1_000_000
        whole += 1.0
    elif micro < 0:
        micro += 1_000_000
        whole -= 1.0
    second, text = _Second.last
    if second != whole:
        text = _dt.datetime.fromtimestamp(whole, _dt.timezone.utc).isoformat()[:-6]
        _Second.last = (whole, text)
    return f"{text}.{micro:06d}+00:00" if micro else f"{text}+00:00"


def model_name(call: CapturedCall) -> str:
    """The name of the model the app asked for; falls back to the model class, never empty."""
    meta = call.metadata or {}
    params = call.invocation_params or {}
    for value in (
        meta.get("ls_model_name"),
        params.get("model_name"),
        params.get("model"),
        params.get("model_id"),
    ):
        if isinstance(value, str) and value:
            return value
    ids = (call.serialized or {}).get("id") or []
    if ids and isinstance(ids[-1], str):
        return ids[-1]
    return call.name or params.get("_type") or "unknown-model"


def _read_result(result: LLMResult | None) -> _Read:
    """In one pass over the generations: the response texts, the first generation's tool
    structure (OpenAI layout) if it calls tools, the model the provider says answered, and
    the token usage.

    The served model is a snapshot such as ``gpt-4o-mini-2024-07-18``, None when the
    response does not say. Chat models put it in the message's ``response_metadata``
    (``model_name``: langchain-openai, recent langchain-anthropic; ``model``: Anthropic's
    own field, Ollama); LangChain copies ``llm_output`` there only for a single generation,
    so with ``n=2`` it is read from ``llm_output`` (langchain-openai's chat ``model_name``
    is the served one; its completions model reports the requested name there, which
    changes nothing).

    Usage comes from the first generation that has ``usage_metadata``: with n > 1 every
    generation carries the whole call's usage (langchain-openai fills each from the one
    response), so adding them up would count the call n times; else from ``llm_output``.
    """
    if result is None:
        return [], None, None, {}
    generations = result.generations[0] if result.generations else []
    texts: list[str] = []
    shaped: dict[str, Any] | None = None
    served: str | None = None
    usage: dict[str, int] = {}
    for i, generation in enumerate(generations):
        if not isinstance(generation, ChatGeneration):
            texts.append(generation.text)
            continue
        message = generation.message
        plain = plain_turn_text(message)
        texts.append(plain if plain is not None else message_text(message))
        if i == 0:
            shaped = structured(message) if plain is None else None
            served = _model_in(message.response_metadata)
        if not usage:
            meta = getattr(message, "usage_metadata", None)
            if meta:
                for ours, theirs in (
                    ("prompt_tokens", "input_tokens"),
                    ("completion_tokens", "output_tokens"),
                    ("total_tokens", "total_tokens"),
                ):
                    usage[ours] = int(meta.get(theirs, 0))
    if not served:
        served = _model_in(result.llm_output)
    if not usage:
        token_usage = (result.llm_output or {}).get("token_usage") or {}
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            if isinstance(token_usage.get(key), int):
                usage[key] = token_usage[key]
    return texts, shaped, served, usage


def _model_in(meta: Mapping[str, Any] | None) -> str | None:
    for key in ("model_name", "model"):
        value = (meta or {}).get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _pair_group(
    call: CapturedCall, prompt: str, responses: list[str], metadata: dict[str, Any]
) -> str | None:
    """Calls of one scope with the same group pair up in pairwise mode; None: pairs alone."""
    if len(responses) >= 2:
        return None  # several generations of one call make a pair by themselves
    pair_by = call.options.pair_by
    key = str(metadata.get(pair_by)) if pair_by and pair_by in metadata else prompt
    # Compared only as stored strings, so a per-process hash is enough; the pid keeps
    # scopes of different processes apart when a spool's rows are adopted.
    return f"{_Pid.pid}:{call.rank[1]}:{hash(key):x}"


class _Pid:
    """This process's id, read once (``os.getpid()`` is a system call) and again after fork."""

    pid = os.getpid()

    @classmethod
    def renew(cls) -> None:
        cls.pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_Pid.renew)


# LangChain's and LangGraph's bookkeeping, not the user's: kept out of the task's columns.
_BOOKKEEPING_TAGS = ("seq:step:", "graph:step:")
_BOOKKEEPING_KEYS = ("ls_", "lc_", "langgraph_")  # prefixes; LangGraph's thread_id stays
_BOOKKEEPING_NAMES = frozenset({"checkpoint_ns"})


def _tags(call: CapturedCall) -> list[str]:
    if not call.tags and call.error is None and not call.options.tags:
        return []  # the common call: no tag at all
    run_tags = (t for t in call.tags or () if not t.startswith(_BOOKKEEPING_TAGS))
    tags = dict.fromkeys((*call.options.tags, *run_tags))  # the scope's tags always stay
    if call.error is not None:
        tags["error"] = None
    return list(tags)


def _metadata(call: CapturedCall) -> dict[str, Any]:
    merged = {**call.options.metadata}
    for key, value in (call.metadata or {}).items():
        if not key.startswith(_BOOKKEEPING_KEYS) and key not in _BOOKKEEPING_NAMES:
            merged.setdefault(key, value)
    if not merged:
        return {}  # the common call: LangChain's bookkeeping only
    return {str(k): jsonable(v) for k, v in merged.items()}


def jsonable(value: Any) -> Any:
    """The value if JSON can hold it; else the same with what it cannot hold as strings."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        try:
            return json.loads(json.dumps(value, default=str))
        except (TypeError, ValueError):  # circular references and the like
            return str(value)
    return value
