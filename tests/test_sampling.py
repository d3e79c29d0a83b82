"""Sampling by top-level trace (lstrace/_capture/sampling.py): all LLM calls of one chain run are
kept or dropped together, at the configured rate, reproducibly with a seed."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

from langchain_core.language_models import FakeListLLM
from langchain_core.runnables import Runnable, RunnableLambda

import lstrace
from lstrace._capture import sampling as _sampling
from tests.spooled import settle, spooled

TRACES = 10_000
RATE = 0.3
# Kept traces are Binomial(10,000, 0.3): sd = sqrt(n p (1-p)) ~ 45.8. We accept +-4.5 sd
# (about +-206 traces, +-2.1 points of rate): a false failure has odds under 1 in 100,000.
TOLERANCE = 4.5 * math.sqrt(TRACES * RATE * (1 - RATE))


def two_call_chain() -> Runnable[str, str]:
    """A chain whose two LLM calls sit under different steps; prompts carry the trace's name."""
    llm = FakeListLLM(responses=["x"])
    return RunnableLambda[str, tuple[str, str]](
        lambda q: (q, llm.invoke(f"{q} first"))
    ) | RunnableLambda[tuple[str, str], str](lambda pair: llm.invoke(f"{pair[0]} second"))


def test_rate_over_10000_traces_keeps_whole_traces(lstrace_state: Path) -> None:
    """Over 10,000 two-call chain runs at rate 0.3, the kept share is within the stated
    tolerance, and every kept trace has both of its calls (never one without the other)."""
    chain = two_call_chain()
    lstrace.configure(batch_size=100_000)  # keep everything spooled: this test sends nothing
    with lstrace.ls_session(sample_rate=RATE, sample_seed=7):
        for i in range(TRACES):
            chain.invoke(f"q{i}")
    stats = lstrace.stats()
    dropped_calls = stats.dropped_by_reason.get("sampled", 0)
    kept_calls = 2 * TRACES - dropped_calls
    settle(kept_calls, timeout=30)
    tasks = spooled(lstrace_state, kept_calls, timeout=30)
    by_root: dict[str, int] = {}
    for task in tasks:
        trace = task["prompt"].split()[0]
        by_root[trace] = by_root.get(trace, 0) + 1
    assert set(by_root.values()) == {2}, "a trace was split by sampling"
    assert abs(len(by_root) - RATE * TRACES) <= TOLERANCE, len(by_root)


def test_same_seed_same_decisions_other_seed_other_decisions() -> None:
    """With a seed, the verdict for a given trace is reproducible; another seed differs."""
    roots = [uuid.UUID(int=i) for i in range(2000)]
    first = [_sampling.keep(r, 0.5, seed=42) for r in roots]
    again = [_sampling.keep(r, 0.5, seed=42) for r in roots]
    other = [_sampling.keep(r, 0.5, seed=43) for r in roots]
    assert first == again
    assert first != other


def test_rate_zero_keeps_nothing_and_one_keeps_all(lstrace_state: Path) -> None:
    """sample_rate=0 drops every call (counted); 1.0 keeps every call."""
    llm = FakeListLLM(responses=["x"])
    with lstrace.ls_session(sample_rate=0.0):
        for _ in range(5):
            llm.invoke("dropped")
    with lstrace.ls_session(sample_rate=1.0):
        for _ in range(3):
            llm.invoke("kept")
    assert [t["prompt"] for t in spooled(lstrace_state, 3)] == ["kept"] * 3
    assert lstrace.stats().dropped_by_reason == {"sampled": 5}


def test_env_sample_rate_is_the_default(lstrace_state: Path, monkeypatch: Any) -> None:
    """LSTRACE_SAMPLE_RATE sets the rate when no scope sets one; a scope's own value wins."""
    monkeypatch.setenv("LSTRACE_SAMPLE_RATE", "0")
    llm = FakeListLLM(responses=["x"])
    with lstrace.ls_session():
        llm.invoke("env drops this")
    with lstrace.ls_session(sample_rate=1):
        llm.invoke("scope keeps this")
    assert [t["prompt"] for t in spooled(lstrace_state, 1)] == ["scope keeps this"]


def test_unsampled_scopes_do_not_listen_to_chain_events() -> None:
    """Without sampling the handler asks LangChain to skip chain/tool/retriever events,
    so tracing a chain costs nothing beyond its LLM calls."""
    with lstrace.ls_session() as scope:
        assert scope.handler.ignore_chain and scope.handler.ignore_agent
    with lstrace.ls_session(sample_rate=0.5) as scope:
        assert not scope.handler.ignore_chain


def test_the_deepest_scope_samples_even_when_the_outer_handler_runs_first(
    lstrace_state: Path,
) -> None:
    """A chain started in an outer scope passes its handler down to the LLM run, ahead of the
    inner scope's; the inner scope's sample_rate still decides, both ways."""
    llm = FakeListLLM(responses=["x"])

    def inner(rate: float) -> Any:
        def step(prompt: str) -> str:
            with lstrace.ls_session(sample_rate=rate):
                return llm.invoke(prompt)

        return RunnableLambda(step)

    with lstrace.ls_session(sample_rate=1.0):
        inner(0.0).invoke("inner drops it")
    with lstrace.ls_session(sample_rate=0.0):
        inner(1.0).invoke("inner keeps it")
    assert [t["prompt"] for t in spooled(lstrace_state, 1)] == ["inner keeps it"]
