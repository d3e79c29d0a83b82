"""Generators under ``@ls_track(mode="trace")`` (lstrace/_capture/track.py, trace.py).

One call of a generator function is one trace, from its first step until it is
exhausted, raises or is closed; what it yielded (or its return value) is the final
answer. The values it yields, its return value and its exceptions are unchanged,
and the caller's own calls between two steps stay outside the trace. Tasks are
read back from Label Studio.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Iterator
from typing import Literal

import pytest
from langchain_core.messages import HumanMessage

import lstrace
from lstrace import ls_session, ls_track
from lstrace._capture.trace_record import MAX_YIELDS_KEPT, Yielded
from tests import readback
from tests.fakes import scripted, tool_call
from tests.test_trace import only_task, weather_agent, who


def test_a_traced_generator_is_one_task_until_it_is_exhausted() -> None:
    """Every run the generator makes is a step of its one task; the yielded strings,
    joined, are the final answer; the caller's call between two steps is not in it."""
    agent = weather_agent(tool_call("get_weather", {"city": "Oslo"}), "Snow in Oslo.")
    polish = scripted("Expect snow.")

    @ls_track(project_name="trace gen: sync", mode="trace")
    def report(question: str) -> Generator[str, None, str]:
        answer = agent.invoke({"messages": [HumanMessage(question)]})["messages"][-1].content
        yield f"{answer} "
        yield str(polish.invoke(f"Rephrase: {answer}").content)
        return "done"

    with ls_session(project_name="trace gen: caller", mode="chat"):
        steps = report("Weather in Oslo?")
        assert next(steps) == "Snow in Oslo. "
        scripted("between").invoke("the caller's own call")
        assert next(steps) == "Expect snow."
        with pytest.raises(StopIteration) as stop:
            next(steps)
    assert stop.value.value == "done"  # the return value passes through
    readback.flushed(2)
    task = only_task("trace gen: sync")
    assert task["data"]["input"] == "Weather in Oslo?"
    assert who(task)[2:] == ["1. assistant", "2. tool", "3. assistant", "user", "4. assistant"]
    assert readback.responses(task) == ["done"]  # a return value other than None wins
    [caller] = readback.tasks("trace gen: caller")
    assert caller["data"]["prompt"] == [{"role": "user", "content": "the caller's own call"}]


def test_a_traced_generator_answers_with_what_it_yielded() -> None:
    """A generator that returns nothing: its yielded text, joined, is the final answer."""

    @ls_track(project_name="trace gen: yielded", mode="trace")
    def stream(question: str) -> Iterator[str]:
        for chunk in scripted("Sunny and warm today.").stream(question):
            yield str(chunk.content)

    assert "".join(stream("Weather?")) == "Sunny and warm today."
    readback.flushed(1)
    task = only_task("trace gen: yielded")
    assert task["data"]["steps"] == 1
    assert readback.responses(task) == ["Sunny and warm today."]


def test_a_traced_generator_closed_early_ends_its_trace_with_what_it_yielded() -> None:
    """Breaking out and closing the generator ends the trace at once; its cleanup's model
    call is still a step of it; the answer is what it had yielded."""

    @ls_track(project_name="trace gen: closed", mode="trace")
    def chatter() -> Generator[str, None, None]:
        try:
            for i in range(10):
                yield str(scripted(f"part {i}").invoke(f"say part {i}").content)
        finally:
            scripted("bye").invoke("clean up")

    steps = chatter()
    for part in steps:
        assert part == "part 0"
        break
    steps.close()
    readback.flushed(1)
    task = only_task("trace gen: closed")
    assert task["data"]["steps"] == 2
    assert [t["text"] for t in task["data"]["trajectory"]][-1] == "bye"
    assert readback.responses(task) == ["part 0"]


def test_a_traced_generator_that_raises_keeps_its_exception() -> None:
    """The generator's exception reaches the caller unchanged; with capture_errors the
    trace is sent with the error and the steps before it."""

    @ls_track(project_name="trace gen: error", mode="trace", capture_errors=True)
    def failing() -> Iterator[str]:
        yield str(scripted("first").invoke("go").content)
        raise KeyError("missing")

    steps = failing()
    assert next(steps) == "first"
    with pytest.raises(KeyError, match="missing"):
        next(steps)
    readback.flushed(1)
    task = only_task("trace gen: error")
    assert "KeyError" in task["data"]["error"]
    assert task["data"]["steps"] == 1


def test_a_traced_generator_inside_a_traced_function_is_one_of_its_steps() -> None:
    """Nested in a traced call, the generator is a step of the outer trace: one task."""

    @ls_track(mode="trace")
    def inner() -> Iterator[str]:
        yield str(scripted("inner answer").invoke("inner question").content)

    @ls_track(project_name="trace gen: nested", mode="trace")
    def outer() -> str:
        return " / ".join(inner())

    assert outer() == "inner answer"
    readback.flushed(1)
    task = only_task("trace gen: nested")
    assert task["data"]["steps"] == 2  # the model call, then the generator's own step
    assert readback.responses(task) == ["inner answer"]


async def test_a_traced_async_generator_is_one_task() -> None:
    """The async twin: one task over its awaited runs, answered by what it yielded; the
    caller's awaited call between steps stays out; aclose() ends it."""

    @ls_track(project_name="trace gen: async", mode="trace")
    async def stream(question: str) -> AsyncGenerator[str, None]:
        try:
            answer = await weather_agent(
                tool_call("get_weather", {"city": "Rome"}), "Hot in Rome."
            ).ainvoke({"messages": [HumanMessage(question)]})
            yield str(answer["messages"][-1].content)
            yield " Take water."
            yield " Never reached."
        finally:
            await scripted("noted").ainvoke("log the run")

    async with ls_session(project_name="trace gen: async caller", mode="chat"):
        steps = stream("Weather in Rome?")
        assert await steps.__anext__() == "Hot in Rome."
        await scripted("between").ainvoke("the caller's awaited call")
        assert await steps.asend(None) == " Take water."
        await steps.aclose()
    readback.flushed(2)
    task = only_task("trace gen: async")
    assert task["data"]["steps"] == 4  # two model calls, the tool, the cleanup's call
    assert readback.responses(task) == ["Hot in Rome. Take water."]
    [caller] = readback.tasks("trace gen: async caller")
    assert caller["data"]["prompt"] == [{"role": "user", "content": "the caller's awaited call"}]


def test_a_traced_generator_never_started_is_no_trace() -> None:
    """A generator created and dropped before its first step ran nothing: no task and
    nothing counted as lost."""

    @ls_track(project_name="trace gen: never started", mode="trace")
    def never() -> Generator[str, None, None]:
        yield str(scripted("unused").invoke("unused").content)

    never().close()
    assert lstrace.flush(5).delivered == 0
    stats = lstrace.stats()
    assert (stats.captured, stats.dropped_by_reason) == (0, {})


def test_yielded_values_kept_are_bounded_and_the_rest_counted() -> None:
    """A generator that yields for ever keeps at most max_chars of text (or
    MAX_YIELDS_KEPT values); the rest is counted and shown as a marker."""
    text = Yielded(max_chars=10)
    for _ in range(1_000):
        text.add("abcd")
    assert len(text.items) == 3  # 12 characters: past the bound after the third
    assert text.text() == "abcd" * 3 + "\n[... 997 more yielded values not kept by lstrace ...]"
    values = Yielded(max_chars=10)
    for i in range(MAX_YIELDS_KEPT + 5):
        values.add(i)
    assert len(values.items) == MAX_YIELDS_KEPT
    assert values.text().endswith("\n[... 5 more yielded values not kept by lstrace ...]")


@pytest.mark.parametrize("mode", ["prompt", "chat", "trace"])
def test_a_generators_values_return_value_and_exception_pass_through_in_every_mode(
    mode: Literal["prompt", "chat", "trace"],
) -> None:
    """Whatever the mode, the decorated generator yields the same values, receives what is
    sent, returns its value, and its own exception reaches the caller as the same object."""
    failure = KeyError("the generator's own")

    @ls_track(project_name="trace gen: pass-through", mode=mode)
    def numbers() -> Generator[int, int, int]:
        received = yield 1
        yield received * 2
        return 7

    steps = numbers()
    assert (next(steps), steps.send(21)) == (1, 42)
    with pytest.raises(StopIteration) as stop:
        next(steps)
    assert stop.value.value == 7

    @ls_track(project_name="trace gen: pass-through", mode=mode)
    def failing() -> Generator[int, None, None]:
        yield 1
        raise failure

    broken = failing()
    assert next(broken) == 1
    with pytest.raises(KeyError) as raised:
        next(broken)
    assert raised.value is failure
