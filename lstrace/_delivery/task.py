"""From captured content to a Label Studio task for one label config.

Runs on the background sender. The response becomes a prediction on the
config's TextArea, so annotators edit it in place; flat data keys (model,
tokens, latency, tags...) show as Data Manager columns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from lstrace._capture.messages import dialogue_as_text
from lstrace._labelconfig import PairTarget, Target

TRUNCATION_MARK = "\n[... truncated by lstrace: {n} characters removed ...]"
MAX_FIELD_CHARS = 200_000


def build_task(
    content: Mapping[str, Any], target: Target, *, max_chars: int = MAX_FIELD_CHARS
) -> dict[str, Any]:
    """The import payload (``data`` plus one prediction) for one captured call."""
    prompt: Any
    if target.wants_dialogue:
        prompt = [_turn(turn, max_chars) for turn in content["dialogue"]]
    else:
        prompt = truncate(content["prompt"] or dialogue_as_text(content["dialogue"]), max_chars)
    data = columns(content, max_chars)
    if target.wants_dialogue:  # the Data Manager shows a dialogue as raw JSON: add its gist
        data["last_user_message"] = truncate(_last_user_message(content["dialogue"]), max_chars)
    data[target.value_key] = prompt
    if content.get("response_message"):  # the response's tool calls, for exports
        data["response_message"] = content["response_message"]
    texts = [truncate(t, max_chars) for t in content.get("responses") or []]
    prediction = {
        "model_version": content["model"] or "unknown-model",
        "result": [
            {
                "from_name": target.from_name,
                "to_name": target.to_name,
                "type": "textarea",
                "value": {"text": texts or [""]},
            }
        ],
    }
    return {"data": data, "predictions": [prediction]}


def _turn(turn: Mapping[str, Any], max_chars: int) -> dict[str, Any]:
    """A dialogue turn for Paragraphs: readable ``content``, plus its tool structure."""
    out: dict[str, Any] = {"role": turn["role"], "content": truncate(turn["content"], max_chars)}
    if turn.get("message"):
        message = dict(turn["message"])
        message["content"] = truncate(message.get("content") or "", max_chars)
        out["message"] = message
    return out


def columns(content: Mapping[str, Any], max_chars: int) -> dict[str, Any]:
    """The flat data keys every task carries: Data Manager columns."""
    usage = content.get("usage") or {}
    metadata = content.get("metadata")
    data: dict[str, Any] = {
        "run_id": content["run_id"],
        "model": content["model"],  # the model that answered, else the one requested
        "requested_model": content.get("requested_model") or content["model"],  # older rows
        "tags": ", ".join(content.get("tags") or []),
        # most calls have none: "{}" without the encoder's setup
        "metadata": truncate(json.dumps(metadata, ensure_ascii=False), max_chars)
        if metadata
        else "{}",
        "parent_run_id": content.get("parent_run_id") or "",
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "total_tokens": usage.get("total_tokens"),
        "latency_ms": content.get("latency_ms"),
        "captured_at": content.get("captured_at"),
    }
    if content.get("error"):
        data["error"] = truncate(content["error"], max_chars)
    return data


def _last_user_message(dialogue: Sequence[Mapping[str, str]]) -> str:
    for turn in reversed(dialogue):
        if turn["role"] == "user":
            return turn["content"]
    return ""


def truncate(text: str, max_chars: int) -> str:
    """Cut ``text`` to ``max_chars`` with a visible marker saying how much went."""
    if len(text) <= max_chars:
        return text
    removed = len(text) - max_chars
    return text[:max_chars] + TRUNCATION_MARK.format(n=removed)


def build_pair_task(
    first: Mapping[str, Any],
    second: Mapping[str, Any] | None,
    target: PairTarget,
    *,
    max_chars: int = MAX_FIELD_CHARS,
) -> dict[str, Any]:
    """A pairwise task: one prompt, two responses side by side, no prediction.

    With ``second`` None, the two responses are the first two generations of
    one call; otherwise the first response of each call.
    """
    if second is None:
        answers = (first["responses"] + ["", ""])[:2]
        models = [first["model"], first["model"]]
        run_id_b = first["run_id"]
    else:
        answers = [(first["responses"] or [""])[0], (second["responses"] or [""])[0]]
        models = [first["model"], second["model"]]
        run_id_b = second["run_id"]
    data = {
        **columns(first, max_chars),
        "model_a": models[0],
        "model_b": models[1],
        "run_id_b": run_id_b,
        "prompt": truncate(first["prompt"] or dialogue_as_text(first["dialogue"]), max_chars),
        target.left_key: truncate(answers[0], max_chars),
        target.right_key: truncate(answers[1], max_chars),
    }
    return {"data": data}
