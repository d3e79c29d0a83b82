"""Pairwise mode: one task shows a prompt with two responses side by side (Label Studio's
Pairwise tag), from two generations of one call or two calls of one scope."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseLLM, FakeListLLM
from langchain_core.outputs import Generation, LLMResult

import lstrace
from lstrace._delivery import sender as _sender
from lstrace._delivery import spool as _spool
from lstrace._delivery import worker as _worker
from lstrace._delivery.spool import Row
from lstrace._export.spoolview import look
from lstrace._labelconfig import PAIRWISE_CONFIG, PairTarget, target_from_xml
from tests import readback
from tests.spooled import spooled


class TwoAnswerLLM(BaseLLM):
    """A fake LLM that returns two generations per prompt, like ``n=2``."""

    def _generate(self, prompts: list[str], *args: Any, **kwargs: Any) -> LLMResult:
        return LLMResult(
            generations=[
                [Generation(text=f"{p} / first"), Generation(text=f"{p} / second")] for p in prompts
            ]
        )

    @property
    def _llm_type(self) -> str:
        return "two-answer"


def test_two_generations_of_one_call_make_one_pair_task() -> None:
    """A call with two generations becomes one task showing both, side by side."""
    with lstrace.ls_session(project_name="Pairwise n2", mode="pairwise"):
        TwoAnswerLLM().invoke("Name a colour")
    result = lstrace.flush(60)
    assert (result.delivered, result.pending) == (1, 0)
    [task] = readback.tasks("Pairwise n2")
    data = task["data"]
    assert data["prompt"] == "Name a colour"
    assert (data["answer_a"], data["answer_b"]) == (
        "Name a colour / first",
        "Name a colour / second",
    )
    assert task["predictions"] == []


def test_two_models_answering_one_prompt_in_one_scope_pair_up() -> None:
    """Two models answering the same prompt inside one scope make one task; a call with
    another prompt waits for its own partner."""
    model_a = FakeListLLM(responses=["A says 4"])
    model_b = FakeListLLM(responses=["B says four"])
    with lstrace.ls_session(project_name="Pairwise models", mode="pairwise"):
        model_a.invoke("What is 2+2?")
        model_b.invoke("What is 2+2?")
    result = lstrace.flush(60)
    assert (result.delivered, result.pending) == (2, 0)
    [task] = readback.tasks("Pairwise models")
    assert (task["data"]["answer_a"], task["data"]["answer_b"]) == ("A says 4", "B says four")
    assert task["data"]["run_id"] != task["data"]["run_id_b"]


def test_pair_by_groups_calls_by_a_metadata_value() -> None:
    """With pair_by, calls pair up by the named metadata value, whatever their prompts."""
    llm = FakeListLLM(responses=["r1", "r2", "r3", "r4"])
    with lstrace.ls_session(project_name="Pairwise keyed", mode="pairwise", pair_by="question"):
        llm.invoke("short prompt", config={"metadata": {"question": "q1"}})
        llm.invoke("a longer prompt for q2", config={"metadata": {"question": "q2"}})
        llm.invoke("detailed prompt", config={"metadata": {"question": "q1"}})
        llm.invoke("another for q2", config={"metadata": {"question": "q2"}})
    readback.flushed(4)
    tasks = sorted(readback.tasks("Pairwise keyed"), key=lambda t: t["data"]["answer_a"])
    assert [(t["data"]["answer_a"], t["data"]["answer_b"]) for t in tasks] == [
        ("r1", "r3"),
        ("r2", "r4"),
    ]


def test_calls_of_different_scopes_never_pair(lstrace_state: Path) -> None:
    """Pairs form within one scope instance: the same prompt in two sessions stays apart."""
    llm = FakeListLLM(responses=["x", "y"])
    for _ in range(2):
        with lstrace.ls_session(project_name="unused", mode="pairwise"):
            llm.invoke("same prompt")
    first, second = spooled(lstrace_state, 2)
    assert first["pair_group"] != second["pair_group"]
    rows = [Row(i, c["run_id"], c, False, 0.0) for i, c in enumerate((first, second))]
    assert _sender.pair_up(rows) == ([], rows)


def test_a_call_without_partner_is_set_aside_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pairwise call that finds no partner in time is set aside (counted as unpaired),
    never silently lost and never sent as a half-empty comparison."""
    monkeypatch.setattr(_sender, "PAIR_TIMEOUT_S", 0)
    with lstrace.ls_session(project_name="Pairwise lonely", mode="pairwise"):
        FakeListLLM(responses=["alone"]).invoke("Anyone?")
    result = lstrace.flush(60)
    stats = lstrace.stats()
    assert result.delivered == 0 and stats.dead == 1
    assert stats.failed_by_reason == {"unpaired": 1}
    assert readback.tasks("Pairwise lonely") == []


PATIENCE = 120.0  # seconds flush() may take on a loaded machine before the test fails


def flush_returning(timeout: float = 3600.0) -> lstrace.FlushResult:
    """``lstrace.flush(timeout)``, failing the test if it has not returned after
    :data:`PATIENCE` seconds (a flush that waits out its timeout would hold it for an hour)."""
    results: list[lstrace.FlushResult] = []
    flushing = threading.Thread(target=lambda: results.append(lstrace.flush(timeout)), daemon=True)
    flushing.start()
    flushing.join(PATIENCE)
    assert results, f"flush() still waits after {PATIENCE:.0f} s for a call that cannot be sent"
    return results[0]


def test_a_lone_pairwise_call_does_not_hold_flush_and_pairs_when_its_partner_comes() -> None:
    """flush() returns once all that is pending is a pairwise call waiting for its partner
    (nothing can be sent before the partner comes), and says so; it is not set aside while
    the scope can still give it a partner, and the partner makes the pair as usual."""
    llm = FakeListLLM(responses=["first answer", "second answer"])
    with lstrace.ls_session(project_name="Pairwise partner later", mode="pairwise"):
        llm.invoke("Which is better?")
        result = flush_returning()
        assert (result.delivered, result.pending, result.waiting_for_partner) == (0, 1, 1)
        assert lstrace.stats().dead == 0
        llm.invoke("Which is better?")
    result = lstrace.flush(PATIENCE)
    assert (result.pending, result.waiting_for_partner) == (0, 0)
    assert lstrace.stats().delivered == 2
    [task] = readback.tasks("Pairwise partner later")
    assert (task["data"]["answer_a"], task["data"]["answer_b"]) == ("first answer", "second answer")


def test_a_lone_pairwise_call_is_set_aside_at_exit_in_the_words_set_aside_uses(
    lstrace_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At exit no partner can come any more: the call is set aside as unpaired (never sent),
    and the exit line says that and names `lstrace set-aside`, not "`lstrace sync` sends it"."""
    with lstrace.ls_session(project_name="Pairwise alone at exit", mode="pairwise"):
        FakeListLLM(responses=["alone"]).invoke("Anyone there?")
    result = flush_returning()
    assert (result.delivered, result.pending, result.waiting_for_partner) == (0, 1, 1)
    capsys.readouterr()
    _worker._at_exit()
    assert capsys.readouterr().err == (
        "lstrace: 1 pairwise calls found no partner before the process ended; they are set "
        f"aside in the spool at {lstrace_state}, never sent: `lstrace set-aside` lists them "
        "(`--retry` sends each alone, its other side empty).\n"
    )
    view = look(lstrace_state)
    assert (view.waiting, view.set_aside) == (0, {"unpaired": 1})
    [aside] = _spool.set_aside(lstrace_state)
    assert (aside.reason, aside.content["prompt"]) == ("unpaired", "Anyone there?")
    assert readback.tasks("Pairwise alone at exit") == []


def test_default_pairwise_config_and_custom_pairwise_configs() -> None:
    """The default pairwise config targets answer_a/answer_b; a custom config's Pairwise tag
    is found offline; a Pairwise tag over a missing object is a clear error."""
    assert target_from_xml(PAIRWISE_CONFIG) == PairTarget("preference", "answer_a", "answer_b")
    custom = (
        '<View><Text name="prompt" value="$prompt"/><Text name="l" value="$answer_a"/>'
        '<Text name="r" value="$answer_b"/><Pairwise name="pick" toName="l,r"/></View>'
    )
    assert target_from_xml(custom) == PairTarget("pick", "answer_a", "answer_b")
    broken = (
        '<View><Text name="l" value="$answer_a"/><Pairwise name="pick" toName="l,nowhere"/></View>'
    )
    with pytest.raises(lstrace.ConfigError, match="no <TextArea>"):
        lstrace.ls_session(mode="pairwise", project_config=broken)
