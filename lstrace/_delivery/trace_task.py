"""From a trace's content to one Label Studio task: the trajectory an annotator reviews.

Runs on the background sender. The task shows, as plain text (Label Studio's
``Paragraphs`` and ``Text``: captured content is never rendered as HTML), the
conversation the agent had: system prompt and user input, each model step (its
text and tool calls, with model, tokens and latency), each tool's result or error,
the subgraph a step ran in. The final answer is the editable prediction. Beside the
display, ``data.messages`` and ``data.tools`` keep the trajectory in OpenAI's
tool-calling layout for exports.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lstrace._capture.trace_record import MAX_TRACE_STEPS
from lstrace._delivery.task import columns
from lstrace._labelconfig import Target

SKIPPED = "[... {n} more steps not recorded by lstrace (at most {limit:,} per trace) ...]"


def build_trace_task(content: Mapping[str, Any], target: Target) -> dict[str, Any]:
    """The import payload (``data`` plus one prediction) for one trace."""
    view = _Trajectory()
    for step in in_call_order(content.get("steps") or []):
        view.add(step)
    if content.get("skipped"):
        view.note(SKIPPED.format(n=content["skipped"], limit=MAX_TRACE_STEPS))
    answer = content.get("output") or view.last_answer
    if content.get("error"):
        view.note(f"The run failed: {content['error']}", who="error")
    if content.get("incomplete"):
        view.note(f"Incomplete trace: {content['incomplete']}", who="lstrace")
    messages = view.messages
    if (
        messages
        and messages[-1].get("role") == "assistant"
        and not messages[-1].get("tool_calls")
        and messages[-1].get("content") == answer
    ):
        messages = messages[:-1]  # the final answer is the prediction, edited apart
    tools = _tools(content.get("steps") or [])
    user_input = content.get("input") or view.first_user or ""
    data = {
        **columns({**content, "prompt": user_input}, 10**9),
        "prompt": user_input,
        "input": user_input,
        "summary": _summary(content, view, tools),
        "trajectory": view.turns or [{"who": "lstrace", "text": "(no steps recorded)"}],
        "messages": messages,
        "tools": tools,
        "tools_text": _tools_text(tools),
        "step_choices": [{"value": label} for label in view.labels],
        "steps": len(view.labels),
        "tools_used": ", ".join(dict.fromkeys(view.tools_used)),
        "incomplete": content.get("incomplete") or "",
    }
    data[target.value_key] = data["trajectory"]
    prediction = {
        "model_version": content.get("model") or "trace",
        "result": [
            {
                "from_name": target.from_name,
                "to_name": target.to_name,
                "type": "textarea",
                "value": {"text": [answer]},
            }
        ],
    }
    return {"data": data, "predictions": [prediction]}


def in_call_order(steps: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Steps in the order they ended, except that tools run in parallel (which end in any
    order) follow the order of the model's tool calls."""
    out: list[Mapping[str, Any]] = []
    order: dict[str, int] = {}
    run: list[Mapping[str, Any]] = []

    def flush() -> None:
        run.sort(key=lambda s: order.get(str(s.get("tool_call_id")), len(order)))
        out.extend(run)
        run.clear()

    for step in steps:
        if step.get("kind") == "tool" and step.get("tool_call_id") in order:
            run.append(step)
            continue
        flush()
        out.append(step)
        if step.get("kind") == "model":  # other steps' outputs are plain text
            calls = ((step.get("output") or {}).get("message") or {}).get("tool_calls")
            if calls:
                order = {str(c.get("id")): i for i, c in enumerate(calls)}
    flush()
    return out


@dataclass
class _Trajectory:
    """The turns shown, the messages exported, and the steps one can mark as wrong."""

    turns: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    tools_used: list[str] = field(default_factory=list)
    last_answer: str = ""
    first_user: str = ""
    _seen: set[str] = field(default_factory=set)

    def add(self, step: Mapping[str, Any]) -> None:
        kind = step.get("kind")
        where = " > ".join(step.get("path") or [])
        prefix = f"{where} > " if where else ""
        if kind == "model":
            for turn in step.get("inputs") or []:
                self._context(turn, prefix)
            self._model(step, prefix)
        elif kind == "tool":
            self._tool(step, prefix)
        else:  # retriever, nested traced function
            name = step.get("name") or kind
            text = f"input: {step.get('input') or ''}\n\noutput: {step.get('output') or ''}"
            label = f"{prefix}{kind} · {name}{_failed(step)}"
            self._step(label, _ms(step), _with_error(text, step))

    def note(self, text: str, who: str = "lstrace") -> None:
        self.turns.append({"who": who, "text": text})

    def _context(self, turn: Mapping[str, Any], prefix: str) -> None:
        """An input message the trajectory has not shown yet (system prompt, user input...)."""
        message = _message(turn)
        key = _signature(message)
        if key in self._seen:
            return
        self._seen.add(key)
        if message["role"] == "user" and not self.first_user:
            self.first_user = str(message.get("content") or "")
        self.turns.append({"who": f"{prefix}{turn.get('role')}", "text": turn.get("content", "")})
        self.messages.append(message)

    def _model(self, step: Mapping[str, Any], prefix: str) -> None:
        facts = " · ".join(f for f in [*_usage(step), _ms(step)] if f)
        label = f"{prefix}assistant · {step.get('model') or 'model'}{_failed(step)}"
        output = step.get("output")
        if output is None:
            self._step(label, facts, f"The model call failed: {step.get('error') or 'no answer'}")
            return
        message = _message(output)
        self._seen.add(_signature(message))
        self.messages.append(message)
        if not message.get("tool_calls"):
            self.last_answer = str(message.get("content") or "")
        self._step(label, facts, _with_error(str(output.get("content") or ""), step))

    def _tool(self, step: Mapping[str, Any], prefix: str) -> None:
        name = str(step.get("name") or "tool")
        self.tools_used.append(name)
        text = step.get("output") or ""
        if step.get("error"):
            text = f"error: {step['error']}"
        message: dict[str, Any] = {"role": "tool", "content": text, "name": name}
        if step.get("tool_call_id"):
            message["tool_call_id"] = step["tool_call_id"]
        self._seen.add(_signature(message))
        self.messages.append(message)
        arguments = step.get("input")
        shown = (
            arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        )
        label = f"{prefix}tool · {name}{_failed(step)}"
        self._step(label, _ms(step), f"{name}({shown})\n→ {text}")

    def _step(self, label: str, facts: str, text: str) -> None:
        """A turn that is a step of the run: numbered, and offered as 'the step that went
        wrong' by its number and label; ``facts`` (tokens, latency) show beside the label."""
        number = len(self.labels) + 1
        label = f"{number}. {label}"
        self.labels.append(label)
        who = f"{label} · {facts}" if facts else label
        self.turns.append({"who": who, "text": text, "step": number})


def _message(turn: Mapping[str, Any]) -> dict[str, Any]:
    shaped = turn.get("message")
    if isinstance(shaped, Mapping):
        return dict(shaped)
    return {"role": str(turn.get("role") or "user"), "content": str(turn.get("content") or "")}


def _signature(message: Mapping[str, Any]) -> str:
    """Identity of a message across model calls (each call is sent the conversation so far)."""
    calls = [c.get("id") for c in message.get("tool_calls") or []]
    return json.dumps(
        [message.get("role"), message.get("content"), calls, message.get("tool_call_id")],
        ensure_ascii=False,
    )


def _tools(steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The tools the models were offered, once each, in the order first offered."""
    found: dict[str, dict[str, Any]] = {}
    for step in steps:
        for spec in step.get("tools") or []:
            name = str((spec.get("function") or {}).get("name") or spec.get("name") or "")
            found.setdefault(name, spec)
    return list(found.values())


def _tools_text(tools: Sequence[Mapping[str, Any]]) -> str:
    if not tools:
        return "(no tools were offered)"
    parts = []
    for spec in tools:
        fn = spec.get("function") or {}
        params = json.dumps(fn.get("parameters") or {}, ensure_ascii=False, indent=2)
        parts.append(f"{fn.get('name')}: {fn.get('description') or ''}\nparameters: {params}")
    return "\n\n".join(parts)


def _summary(content: Mapping[str, Any], view: _Trajectory, tools: Sequence[Any]) -> str:
    models = ", ".join(content.get("models") or []) or "no model"
    usage = content.get("usage") or {}
    parts = [
        str(content.get("name") or "run"),
        f"{len(view.labels)} steps",
        f"tools used: {', '.join(dict.fromkeys(view.tools_used)) or 'none'} (of {len(tools)})",
        models,
    ]
    if usage.get("total_tokens"):
        parts.append(f"{usage['total_tokens']} tokens")
    if content.get("latency_ms") is not None:
        parts.append(f"{content['latency_ms'] / 1000:.2f} s")
    if content.get("incomplete"):
        parts.append("INCOMPLETE")
    if content.get("error"):
        parts.append("FAILED")
    return " · ".join(parts)


def _usage(step: Mapping[str, Any]) -> list[str]:
    usage = step.get("usage") or {}
    if not usage.get("total_tokens"):
        return []
    return [f"{usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)} tokens"]


def _ms(step: Mapping[str, Any]) -> str:
    latency = step.get("latency_ms")
    return f"{latency:.0f} ms" if isinstance(latency, int | float) else ""


def _failed(step: Mapping[str, Any]) -> str:
    return " · FAILED" if step.get("error") or step.get("failed") else ""


def _with_error(text: str, step: Mapping[str, Any]) -> str:
    return f"{text}\nerror: {step['error']}" if step.get("error") else text
