"""Capture controls applied before a call is spooled: mask, filter, before_send,
capture_errors, max_field_chars, tags and metadata (lstrace/_capture/shaping.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import FakeListLLM, GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

import lstrace
from lstrace import masking
from lstrace._capture.shaping import MASK_FAILED, shape
from lstrace._delivery.stats import Counters
from lstrace._options import make_args, resolve
from tests.spooled import settle, spooled

SECRET = "sk-proj-abcdefghijklmnopqrstuvwx1234"
EMAIL = "jane.doe@example.com"


def chat(*replies: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(r) for r in replies]))


def test_mask_applies_to_every_text_that_leaves(lstrace_state: Path) -> None:
    """The mask rewrites prompt, messages, response and metadata values before spooling."""
    model = chat(f"Your key is {SECRET}")
    with lstrace.ls_session(mask=masking.default, metadata={"user": EMAIL, "n": 3}):
        model.invoke([SystemMessage(f"admin is {EMAIL}"), HumanMessage(f"my key {SECRET}")])
    [task] = spooled(lstrace_state, 1)
    assert task["prompt"] == "system: admin is [EMAIL]\n\nuser: my key [SECRET]"
    assert [t["content"] for t in task["dialogue"]] == ["admin is [EMAIL]", "my key [SECRET]"]
    assert task["responses"] == ["Your key is [SECRET]"]
    assert task["metadata"] == {"user": "[EMAIL]", "n": 3}
    raw = lstrace_state.read_bytes() + Path(str(lstrace_state) + "-wal").read_bytes()
    assert SECRET.encode() not in raw and EMAIL.encode() not in raw


def test_mask_applies_to_tool_calls_and_tool_results(lstrace_state: Path) -> None:
    """Tool-call arguments and tool results are masked in their structured copies too."""
    call = AIMessage("", tool_calls=[{"name": "mail", "args": {"to": EMAIL}, "id": "c1"}])
    model = GenericFakeChatModel(messages=iter([call]))
    with lstrace.ls_session(mode="chat", mask=masking.default):
        model.invoke(
            [HumanMessage("mail me"), call, ToolMessage(f"sent to {EMAIL}", tool_call_id="c1")]
        )
    [task] = spooled(lstrace_state, 1)
    assert task["dialogue"][1]["message"]["tool_calls"][0]["function"]["arguments"] == {
        "to": "[EMAIL]"
    }
    assert task["dialogue"][2]["message"]["content"] == "sent to [EMAIL]"
    assert task["response_message"]["tool_calls"][0]["function"]["arguments"] == {"to": "[EMAIL]"}
    raw = lstrace_state.read_bytes() + Path(str(lstrace_state) + "-wal").read_bytes()
    assert EMAIL.encode() not in raw


def test_failing_mask_withholds_text_and_never_breaks_the_call(lstrace_state: Path) -> None:
    """A mask that raises yields a placeholder (never the raw text), is counted, and the
    LLM call still returns its result."""

    def broken(text: str) -> str:
        raise RuntimeError("mask bug")

    with lstrace.ls_session(mask=broken):
        result = FakeListLLM(responses=[f"leak {SECRET}"]).invoke(f"prompt {SECRET}")
    assert result == f"leak {SECRET}"
    [task] = spooled(lstrace_state, 1)
    assert task["prompt"] == MASK_FAILED and task["responses"] == [MASK_FAILED]
    assert settle(1).mask_failed >= 2


def test_mask_returning_non_text_is_a_failure(lstrace_state: Path) -> None:
    """A mask must return str; anything else is treated as a failed mask."""
    with lstrace.ls_session(mask=lambda text: None):  # type: ignore[arg-type,return-value]
        FakeListLLM(responses=["ok"]).invoke("hello")
    [task] = spooled(lstrace_state, 1)
    assert task["prompt"] == MASK_FAILED


def test_filter_keeps_or_drops_by_call_info(lstrace_state: Path) -> None:
    """The filter sees model (answered and requested), run type, tags, metadata and prompt;
    False drops and counts."""
    seen: list[lstrace.CallInfo] = []

    def only_questions(call: lstrace.CallInfo) -> bool:
        seen.append(call)
        return call.prompt.endswith("?")

    llm = FakeListLLM(responses=["a", "b", "c"])
    with lstrace.ls_session(filter=only_questions, tags=["t1"], metadata={"k": "v"}):
        llm.invoke("why?")
        llm.invoke("do it")
        llm.invoke("how?")
    stats = settle(3)
    assert [t["prompt"] for t in spooled(lstrace_state, 2)] == ["why?", "how?"]
    assert stats.dropped_by_reason == {"filter": 1}
    assert {
        (c.model, c.requested_model, c.run_type, tuple(c.tags), c.metadata["k"]) for c in seen
    } == {("FakeListLLM", "FakeListLLM", "llm", ("t1",), "v")}


def test_failing_filter_keeps_the_call(lstrace_state: Path) -> None:
    """A filter that raises keeps the call (nothing lost) and counts the failure."""
    with lstrace.ls_session(filter=lambda call: 1 / 0 > 0):
        FakeListLLM(responses=["a"]).invoke("x")
    assert len(spooled(lstrace_state, 1)) == 1
    assert settle(1).filter_failed == 1


def test_before_send_modifies_or_drops(lstrace_state: Path) -> None:
    """before_send may rewrite the task or return None to drop it (counted)."""

    def hook(task: dict[str, Any]) -> dict[str, Any] | None:
        if "drop" in task["prompt"]:
            return None
        return {**task, "tags": [*task["tags"], "reviewed"]}

    llm = FakeListLLM(responses=["a", "b"])
    with lstrace.ls_session(before_send=hook):
        llm.invoke("keep me")
        llm.invoke("drop me")
    stats = settle(2)
    [task] = spooled(lstrace_state, 1)
    assert task["prompt"] == "keep me" and task["tags"] == ["reviewed"]
    assert stats.dropped_by_reason == {"before_send": 1}


def test_before_send_that_raises_drops_rather_than_leaks(lstrace_state: Path) -> None:
    """A before_send that raises drops the call (it may have been redacting), counted."""

    def hook(task: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("bug")

    with lstrace.ls_session(before_send=hook):
        assert FakeListLLM(responses=["a"]).invoke("x") == "a"
    assert settle(1).dropped_by_reason == {"before_send_error": 1}


def test_capture_errors_turns_failed_calls_into_error_tasks(lstrace_state: Path) -> None:
    """With capture_errors, a call that raised becomes a task marked as an error; the
    exception still reaches the caller unchanged. Off by default."""

    class Boom(Exception):
        pass

    class FailingLLM(FakeListLLM):
        def _call(self, prompt: str, *args: Any, **kwargs: Any) -> str:
            raise Boom("rate limited")

    llm = FailingLLM(responses=["never"])
    with lstrace.ls_session(), pytest.raises(Boom):
        llm.invoke("first")
    with lstrace.ls_session(capture_errors=True), pytest.raises(Boom, match="rate limited"):
        llm.invoke("second")
    [task] = spooled(lstrace_state, 1)
    assert task["prompt"] == "second"
    assert "rate limited" in task["error"] and "error" in task["tags"]
    assert task["responses"] == []


def test_max_field_chars_truncates_with_visible_marker(lstrace_state: Path) -> None:
    """Texts longer than max_field_chars are cut with a marker saying how much went."""
    with lstrace.ls_session(max_field_chars=10):
        FakeListLLM(responses=["r" * 25]).invoke("p" * 12)
    [task] = spooled(lstrace_state, 1)
    assert task["prompt"].startswith("p" * 10) and "2 characters removed" in task["prompt"]
    assert task["responses"][0].startswith("r" * 10)
    assert "15 characters removed" in task["responses"][0]


def test_tags_and_metadata_merge_outer_to_inner_and_with_langchain(lstrace_state: Path) -> None:
    """Tags and metadata merge from outer to inner scopes and with the run's own; inner
    values win; values JSON cannot hold become strings instead of failing."""
    when = dt.datetime(2026, 1, 2, 3, 4, 5)
    llm = FakeListLLM(responses=["a"])
    lstrace.enable(tags=["global"], metadata={"env": "prod", "who": "outer"})
    with lstrace.ls_session(tags=["session"], metadata={"who": "inner", "when": when}):
        llm.invoke("x", config={"tags": ["run-tag"], "metadata": {"step": 1, "obj": object}})
    [task] = spooled(lstrace_state, 1)
    assert task["tags"] == ["global", "session", "run-tag"]
    assert task["metadata"]["env"] == "prod" and task["metadata"]["who"] == "inner"
    assert task["metadata"]["when"] == str(when) and task["metadata"]["step"] == 1
    assert task["metadata"]["obj"] == str(object)


def test_inner_scope_setting_wins_and_unset_ones_are_inherited(lstrace_state: Path) -> None:
    """The innermost scope's mask wins; an inner scope that sets none inherits the outer's."""
    llm = FakeListLLM(responses=["a", "b", "c"])
    with lstrace.ls_session(mask=lambda t: t.upper()):
        llm.invoke("outer")
        with lstrace.ls_session(tags=["inner"]):
            llm.invoke("inherits")
            with lstrace.ls_session(mask=lambda t: t[::-1]):
                llm.invoke("innermost")
    assert [t["prompt"] for t in spooled(lstrace_state, 3)] == ["OUTER", "INHERITS", "tsomrenni"]


ENTRY_POINTS = ["enable", "ls_session", "ls_track", "handler"]


def _call_through(entry: str, llm: FakeListLLM, **options: Any) -> None:
    if entry == "enable":
        lstrace.enable(**options)
        llm.invoke("hello me@example.com")
    elif entry == "ls_session":
        with lstrace.ls_session(**options):
            llm.invoke("hello me@example.com")
    elif entry == "ls_track":

        @lstrace.ls_track(**options)
        def run() -> str:
            return llm.invoke("hello me@example.com")

        run()
    else:
        handler = lstrace.LabelStudioCallbackHandler(**options)
        llm.invoke("hello me@example.com", config={"callbacks": [handler]})


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_takes_the_same_options(entry: str, lstrace_state: Path) -> None:
    """mask, tags, metadata, max_field_chars and before_send work alike on enable(),
    ls_session(), @ls_track and the drop-in handler."""
    _call_through(
        entry,
        FakeListLLM(responses=["a" * 50]),
        mask=masking.emails,
        tags=["t"],
        metadata={"m": 1},
        max_field_chars=20,
        before_send=lambda task: {**task, "model": "renamed"},
    )
    [task] = spooled(lstrace_state, 1)
    assert task["prompt"] == "hello [EMAIL]"
    assert task["tags"] == ["t"] and task["metadata"] == {"m": 1}
    assert "30 characters removed" in task["responses"][0] and task["model"] == "renamed"


@pytest.mark.parametrize("where", ["prompt", "turn", "response", "metadata", "tool_args"])
def test_max_field_chars_cuts_each_kind_of_text_alone(where: str, lstrace_state: Path) -> None:
    """A call whose only long text is one turn, one reply, one metadata value or one
    tool-call argument is cut there too (calls with no long text are not copied)."""
    options = resolve(make_args(max_field_chars=10), None)
    long = "x" * 25
    content: dict[str, Any] = {
        "prompt": long if where == "prompt" else "hi",
        "dialogue": [{"role": "user", "content": long if where == "turn" else "hi"}],
        "responses": [long if where == "response" else "ok"],
        "response_message": None,
        "error": None,
        "metadata": {"note": long} if where == "metadata" else {},
    }
    if where == "tool_args":
        content["response_message"] = {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c", "type": "function",
                            "function": {"name": "f", "arguments": {"q": long}}}],
        }  # fmt: skip
    out = shape(content, options, Counters())
    assert out is not None
    cut = {
        "prompt": out["prompt"],
        "turn": out["dialogue"][0]["content"],
        "response": out["responses"][0],
        "metadata": out["metadata"].get("note"),
        "tool_args": (out["response_message"] or {})
        .get("tool_calls", [{}])[0]
        .get("function", {})
        .get("arguments", {})
        .get("q"),
    }[where]
    assert cut == "x" * 10 + "\n[... truncated by lstrace: 15 characters removed ...]"
    assert str(out).count("characters removed") == 1  # the short texts are as they were
