"""Trace records: an open trace, its finished steps, and a step as spooled content.

The registry of open traces (run id -> trace) lives here, read by the handlers and by
the spooler's sweep. Conversion (:func:`step_content`) runs on the background spooler
from the references a :class:`Step` holds: texts are readable (tool calls shown as
lines) and every message also keeps its structure in OpenAI's tool-calling layout,
which exports use.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import itertools
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, BaseMessageChunk, ToolMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.utils.function_calling import convert_to_openai_tool

from lstrace._capture.messages import message_text, role_of, structured, text_of
from lstrace._capture.record import jsonable
from lstrace._capture.shaping import map_values
from lstrace._options import Options

MAX_TRACE_STEPS = 2_000  # steps recorded per trace; later ones are counted, shown as a marker
MAX_YIELDS_KEPT = 10_000  # values of a traced generator kept for its output; the rest counted
YIELDS_MARK = "\n[... {n:,} more yielded values not kept by lstrace ...]"


@dataclass(eq=False)
class Trace:
    """One trace being collected: its root, the scope that owns it, its step counter."""

    root: UUID
    options: Options
    rank: tuple[int, int]
    kept: bool
    handler: BaseCallbackHandler
    name: str = ""
    inputs: Any = None
    started_at: float = field(default_factory=time.time)
    started_perf: float = field(default_factory=time.perf_counter)
    seq: Any = field(default_factory=itertools.count)  # itertools.count: atomic under the GIL
    recorded: int = 0
    skipped: int = 0
    closed: bool = False
    abandoned: bool = False  # sent as incomplete before its root ended

    def next_seq(self) -> int | None:
        """A sequence number for a new step, or None past the step limit (counted)."""
        n: int = next(self.seq)
        if n >= MAX_TRACE_STEPS:
            self.skipped += 1
            return None
        self.recorded += 1
        return n


@dataclass(slots=True)
class Step:
    """One finished run of a trace (or its root's end), as references for the spooler."""

    trace: Trace
    seq: int
    kind: str  # "model", "tool", "retriever", "function" or "end"
    run_id: UUID
    parent_run_id: UUID | None
    name: str | None
    inputs: Any = None  # messages / prompt / tool input / query / function arguments
    outputs: Any = None  # LLMResult / tool output / documents / return value
    error: BaseException | None = None
    serialized: Mapping[str, Any] | None = None
    invocation_params: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] | None = None
    tags: Any = None
    tool_call_id: str | None = None
    started_at: float = 0.0
    started_perf: float = 0.0
    ended_perf: float = 0.0
    incomplete: str | None = None  # end steps: why the trace is sent unfinished

    @property
    def options(self) -> Options:
        return self.trace.options


@dataclass(eq=False, slots=True)
class Yielded:
    """What a traced generator yielded: its output when it returns nothing.

    Holds references only (converted on the spooler), up to ``MAX_YIELDS_KEPT`` values
    or ``max_chars`` characters of strings; later values are only counted, so a
    generator that streams for hours keeps memory bounded.
    """

    max_chars: int
    items: list[Any] = field(default_factory=list)
    chars: int = 0
    more: int = 0

    def add(self, value: Any) -> None:
        if self.more or len(self.items) >= MAX_YIELDS_KEPT or self.chars > self.max_chars:
            self.more += 1
            return
        self.items.append(value)
        if isinstance(value, str):
            self.chars += len(value)

    def text(self) -> str:
        """Streamed text (strings, message chunks) joined; other values as a JSON list."""
        items = self.items
        if all(isinstance(v, (str, BaseMessageChunk)) for v in items):
            body = "".join(v if isinstance(v, str) else message_text(v) for v in items)
        else:
            body = value_text(items)
        return body + (YIELDS_MARK.format(n=self.more) if self.more else "")


# Runs of open traces (started, not ended) -> their trace; open steps by run id.
runs: dict[UUID, Trace] = {}
open_steps: dict[UUID, Step] = {}
# Inside an @ls_track(mode="trace") call: its trace and the run id standing for the call.
current: contextvars.ContextVar[tuple[Trace, UUID] | None] = contextvars.ContextVar(
    "lstrace_trace", default=None
)


def reset() -> None:
    """Forget every open trace: in tests, and in a forked child (they are the parent's)."""
    runs.clear()
    open_steps.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reset)


def claims(run_id: UUID, parent_run_id: UUID | None) -> bool:
    """True when this run belongs to a trace (the other modes leave it alone)."""
    if run_id in runs or (parent_run_id is not None and parent_run_id in runs):
        return True
    return parent_run_id is None and current.get() is not None


def open_traces() -> frozenset[str]:
    """Root run ids of the traces open in this process (read by the spooler's sweep)."""
    return frozenset(str(t.root) for t in set(runs.values()) if not t.closed)


def abandon(root: str) -> None:
    """The trace of ``root`` was sent as incomplete: what it still records is dropped."""
    for trace in set(runs.values()):
        if str(trace.root) == root:
            trace.closed = trace.abandoned = True


def step_content(step: Step) -> dict[str, Any]:
    """The step as a JSON-ready dict (``kind`` says which keys it has)."""
    base: dict[str, Any] = {
        "seq": step.seq,
        "kind": step.kind,
        "run_id": str(step.run_id),
        "parent_run_id": str(step.parent_run_id) if step.parent_run_id else None,
        "name": step.name or "",
        "path": _path(step.metadata),
        "latency_ms": round((step.ended_perf - step.started_perf) * 1000, 3),
        "captured_at": _when(step.started_at),
        "error": _error(step.error),
    }
    if step.kind == "model":
        base.update(_model(step))
    elif step.kind == "tool":
        base.update(_tool(step))
    elif step.kind == "retriever":
        base["input"] = value_text(step.inputs)
        base["output"] = _documents(step.outputs)
    elif step.kind == "end":
        base.update(_end(step))
    else:  # a nested traced function (a sub-agent written as a function)
        base["input"] = value_text(step.inputs)
        base["output"] = value_text(step.outputs) if step.error is None else ""
    return base


def _model(step: Step) -> dict[str, Any]:
    messages = step.inputs if isinstance(step.inputs, list) else None
    inputs = (
        [_message(m) for m in messages if isinstance(m, BaseMessage)]
        if messages is not None
        else [{"role": "user", "content": str(step.inputs or ""), "message": None}]
    )
    reply = _reply(step.outputs)
    params = step.invocation_params or {}
    return {
        "model": _model_name(step),
        "inputs": inputs,
        "output": reply,
        "usage": _usage(step.outputs),
        "tools": [_tool_spec(t) for t in params.get("tools") or []],
    }


def _message(message: BaseMessage) -> dict[str, Any]:
    return {
        "role": role_of(message),
        "content": message_text(message),
        "message": structured(message),
    }


def _reply(result: Any) -> dict[str, Any] | None:
    """The model's answer: readable text, plus its tool calls' structure."""
    if not isinstance(result, LLMResult) or not result.generations or not result.generations[0]:
        return None
    first = result.generations[0][0]
    if isinstance(first, ChatGeneration):
        return _message(first.message)
    return {"role": "assistant", "content": first.text, "message": None}


def _tool(step: Step) -> dict[str, Any]:
    output = step.outputs
    call_id = step.tool_call_id
    if isinstance(output, ToolMessage):
        call_id = call_id or output.tool_call_id
        text = text_of(output.content)
        failed = output.status == "error"
    else:
        text = value_text(output) if step.error is None else ""
        failed = step.error is not None
    return {
        "input": step.inputs if isinstance(step.inputs, dict) else value_text(step.inputs),
        "output": text,
        "tool_call_id": call_id,
        "failed": failed,
        "description": str((step.serialized or {}).get("description") or ""),
    }


def _end(step: Step) -> dict[str, Any]:
    trace = step.trace
    return {
        "input": value_text(_user_input(step.inputs)),
        "output": final_answer(step.outputs),
        "tags": list(dict.fromkeys((*trace.options.tags, *(step.tags or ())))),
        "metadata": {str(k): jsonable(v) for k, v in trace.options.metadata.items()},
        "recorded": trace.recorded,
        "skipped": trace.skipped,
        "incomplete": step.incomplete,
    }


def final_answer(outputs: Any) -> str:
    """The text of a run's result: an agent's last AI message, a chain's string, or JSON."""
    if isinstance(outputs, LLMResult):
        reply = _reply(outputs)
        return str(reply["content"]) if reply else ""
    if isinstance(outputs, Mapping) and isinstance(outputs.get("messages"), list):
        for message in reversed(outputs["messages"]):
            if isinstance(message, AIMessage):
                return message_text(message)
    if isinstance(outputs, Mapping):
        for key in ("output", "answer", "result", "text", "content"):
            if isinstance(outputs.get(key), str):
                return str(outputs[key])
    return value_text(outputs)


def _user_input(inputs: Any) -> Any:
    """What the user asked: an agent's last human message, else the input as it is."""
    if isinstance(inputs, Mapping) and isinstance(inputs.get("messages"), list):
        for message in reversed(inputs["messages"]):
            if isinstance(message, BaseMessage) and role_of(message) == "user":
                return text_of(message.content)
            if isinstance(message, tuple) and len(message) == 2 and message[0] in ("user", "human"):
                return message[1]
            if isinstance(message, str):
                return message
    return inputs


def value_text(value: Any) -> str:
    """Any value as readable text: strings as they are, messages by their text, else JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Yielded):
        return value.text()
    if isinstance(value, BaseMessage):
        return message_text(value)
    try:
        return json.dumps(value, ensure_ascii=False, default=_default)
    except (TypeError, ValueError):
        return str(value)


def _default(value: Any) -> Any:
    if isinstance(value, BaseMessage):
        return {"role": role_of(value), "content": message_text(value)}
    return str(value)


def _documents(documents: Any) -> str:
    if isinstance(documents, Sequence) and not isinstance(documents, str):
        return "\n\n".join(
            d.page_content if isinstance(d, Document) else value_text(d) for d in documents
        )
    return value_text(documents)


def _tool_spec(tool: Any) -> dict[str, Any]:
    """A tool the model was offered, in OpenAI's layout (name, description, parameters)."""
    try:
        spec = convert_to_openai_tool(tool)
    except Exception:
        name = getattr(tool, "name", None) or (tool.get("name") if isinstance(tool, dict) else None)
        spec = {"type": "function", "function": {"name": str(name or tool), "parameters": {}}}
    return jsonable(dict(spec))  # type: ignore[no-any-return]


def _model_name(step: Step) -> str:
    meta = step.metadata or {}
    params = step.invocation_params or {}
    for value in (
        _served(step.outputs),
        meta.get("ls_model_name"),
        params.get("model_name"),
        params.get("model"),
    ):
        if isinstance(value, str) and value:
            return value
    ids = (step.serialized or {}).get("id") or []
    return str(ids[-1]) if ids else str(step.name or "unknown-model")


def _served(result: Any) -> str | None:
    """The model the provider says answered (``response_metadata``), if it says."""
    if not isinstance(result, LLMResult) or not result.generations or not result.generations[0]:
        return None
    first = result.generations[0][0]
    meta = first.message.response_metadata if isinstance(first, ChatGeneration) else {}
    name = meta.get("model_name") or meta.get("model")
    return name if isinstance(name, str) else None


def _usage(result: Any) -> dict[str, int]:
    if not isinstance(result, LLMResult):
        return {}
    usage: dict[str, int] = {}
    for generation in result.generations[0] if result.generations else []:
        meta = getattr(getattr(generation, "message", None), "usage_metadata", None)
        for ours, theirs in (
            ("prompt_tokens", "input_tokens"),
            ("completion_tokens", "output_tokens"),
            ("total_tokens", "total_tokens"),
        ):
            if meta:
                usage[ours] = usage.get(ours, 0) + int(meta.get(theirs, 0))
    return usage


def _path(metadata: Mapping[str, Any] | None) -> list[str]:
    """The subgraphs a LangGraph step runs in (outermost first), from its checkpoint ns."""
    namespace = (metadata or {}).get("langgraph_checkpoint_ns") or ""
    parts = [p.split(":", 1)[0] for p in str(namespace).split("|") if p]
    return parts[:-1]


def _error(error: BaseException | None) -> str | None:
    return f"{type(error).__name__}: {error}" if error is not None else None


def _when(timestamp: float) -> str:
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc).isoformat()


def map_step_texts(content: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """A copy of a step's content with ``fn`` applied to every text that leaves the process."""
    return {
        key: (value if key in _IDENTIFIERS else map_values(value, fn))
        for key, value in content.items()
    }


# Keys whose values identify rather than say something: never truncated or masked.
_IDENTIFIERS = frozenset(
    {
        "seq",
        "kind",
        "run_id",
        "parent_run_id",
        "name",
        "path",
        "latency_ms",
        "captured_at",
        "tool_call_id",
        "failed",
        "recorded",
        "skipped",
        "incomplete",
        "model",
        "usage",
        "tools",
        "tags",
    }
)
