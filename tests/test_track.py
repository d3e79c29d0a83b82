"""``@ls_track`` on every kind of callable (lstrace/_capture/track.py).

The decorator keeps what it wraps (signature, name, doc, kind, return values,
exceptions), opens its scope at each call, and keeps a generator's scope for
the generator's whole life but only while the generator's own code runs.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

import pytest
from langchain_core.language_models import FakeListLLM

import lstrace
from lstrace import ls_session, ls_track
from tests import readback

LLM = FakeListLLM(responses=["ok"])


def test_bare_decorator_captures_in_the_enclosing_project() -> None:
    """``@ls_track`` without options names no project, so it sends to the enclosing one."""

    @ls_track
    def ask(question: str) -> str:
        return LLM.invoke(question)

    with ls_session(project_name="track: bare", tags=["outer"]):
        assert ask("bare question") == "ok"
    readback.flushed(1)
    [task] = readback.tasks("track: bare")
    assert (task["data"]["prompt"], task["data"]["tags"]) == ("bare question", "outer")


def test_decorator_with_options_sends_to_its_project() -> None:
    """``@ls_track(project_name=..., tags=..., metadata=...)`` applies them to its calls."""

    @ls_track(project_name="track: options", tags=["fn"], metadata={"fn": "ask"})
    def ask(question: str) -> str:
        return LLM.invoke(question)

    ask("first")
    ask("second")
    readback.flushed(2)
    tasks = readback.by_prompt("track: options")
    assert set(tasks) == {"first", "second"}
    assert {t["data"]["tags"] for t in tasks.values()} == {"fn"}
    assert {t["data"]["metadata"] for t in tasks.values()} == {'{"fn": "ask"}'}


def test_options_are_resolved_at_each_call_not_at_decoration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Decorating needs no API key; a call without one runs and waits in the spool, and the
    environment's key, read again at the next call, sends both."""
    key = os.environ["LABEL_STUDIO_API_KEY"]
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")

    @ls_track(project_name="track: resolved per call")
    def ask(question: str) -> str:
        return LLM.invoke(question)

    assert ask("no key yet") == "ok"
    assert lstrace.flush(timeout=10).pending == 1
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", key)
    assert ask("key set") == "ok"
    readback.flushed(2)
    assert set(readback.by_prompt("track: resolved per call")) == {"no key yet", "key set"}


async def test_async_function_is_captured_and_stays_a_coroutine_function() -> None:
    """An async def keeps being a coroutine function; awaited calls inside are captured."""

    @ls_track(project_name="track: async")
    async def ask(question: str) -> str:
        return await LLM.ainvoke(question)

    assert inspect.iscoroutinefunction(ask)
    assert await ask("async question") == "ok"
    readback.flushed(1)
    assert set(readback.by_prompt("track: async")) == {"async question"}


def test_return_values_and_exceptions_pass_through_unchanged() -> None:
    """The wrapped function's return object and exception object reach the caller as they are."""
    sentinel = object()
    error = KeyError("boom")

    @ls_track(project_name="track: passthrough")
    def returns() -> object:
        return sentinel

    @ls_track(project_name="track: passthrough")
    def raises() -> None:
        raise error

    assert returns() is sentinel
    with pytest.raises(KeyError) as info:
        raises()
    assert info.value is error
    assert info.traceback[-1].name == "raises"  # the user's frame, not lstrace's, raised it


async def test_async_exceptions_pass_through_unchanged() -> None:
    """An exception raised in a tracked coroutine is the one the caller catches."""
    error = TimeoutError("slow")

    @ls_track(project_name="track: passthrough")
    async def raises() -> None:
        raise error

    with pytest.raises(TimeoutError) as info:
        await raises()
    assert info.value is error


def documented(a: int, /, b: str = "x", *args: Any, c: float, **kwargs: Any) -> list[int]:
    """Docstring of the original."""
    return [a]


def test_signature_name_doc_and_kind_are_kept() -> None:
    """Introspection sees the original: signature, name, qualname, doc, module, wrapped."""
    wrapped = ls_track(project_name="track: meta")(documented)
    assert inspect.signature(wrapped) == inspect.signature(documented)
    assert wrapped.__name__ == "documented"
    assert wrapped.__qualname__ == "documented"
    assert wrapped.__doc__ == "Docstring of the original."
    assert wrapped.__module__ == __name__
    assert wrapped.__wrapped__ is documented  # type: ignore[attr-defined]

    def gen() -> Iterator[int]:
        yield 1

    async def agen() -> AsyncIterator[int]:
        yield 1

    async def coro() -> None:
        pass

    assert inspect.isgeneratorfunction(ls_track(gen))
    assert inspect.isasyncgenfunction(ls_track(agen))
    assert inspect.iscoroutinefunction(ls_track(coro))
    assert not inspect.iscoroutinefunction(ls_track(documented))


def test_generator_scope_covers_its_own_steps_not_the_callers() -> None:
    """Calls inside the generator go to its project, for its whole life; calls the caller
    makes between next() calls go to the caller's scope."""

    @ls_track(project_name="track: generator")
    def numbers(count: int) -> Generator[str, None, str]:
        for i in range(count):
            yield LLM.invoke(f"generator step {i}")
        return "finished"

    with ls_session(project_name="track: generator caller"):
        steps = numbers(2)
        assert next(steps) == "ok"
        LLM.invoke("caller between steps")
        assert next(steps) == "ok"
        with pytest.raises(StopIteration) as stop:
            next(steps)
    assert stop.value.value == "finished"  # the return value is passed on
    readback.flushed(3)
    assert set(readback.by_prompt("track: generator")) == {"generator step 0", "generator step 1"}
    assert set(readback.by_prompt("track: generator caller")) == {"caller between steps"}


def test_generator_send_throw_and_close_run_in_its_scope() -> None:
    """send() values arrive, throw() reaches the generator, and close() runs its cleanup
    (with an LLM call) in the generator's scope."""

    @ls_track(project_name="track: generator protocol")
    def echo() -> Generator[str, str, None]:
        try:
            received = yield "ready"
            while True:
                try:
                    received = yield LLM.invoke(f"sent {received}")
                except ValueError as exc:
                    received = yield f"caught {exc}"
        finally:
            LLM.invoke("cleanup")

    steps = echo()
    assert next(steps) == "ready"
    assert steps.send("a") == "ok"
    assert steps.throw(ValueError("bad")) == "caught bad"
    assert steps.send("b") == "ok"
    steps.close()
    LLM.invoke("after close, no scope")
    readback.flushed(3)
    assert lstrace.stats().captured == 3
    assert set(readback.by_prompt("track: generator protocol")) == {"sent a", "sent b", "cleanup"}


async def test_async_generator_scope_covers_its_own_steps_not_the_callers() -> None:
    """The async twin: the generator's awaited calls go to its project, the caller's do not."""

    @ls_track(project_name="track: async generator")
    async def numbers(count: int) -> AsyncGenerator[str, None]:
        try:
            for i in range(count):
                yield await LLM.ainvoke(f"async step {i}")
        finally:
            await LLM.ainvoke("async cleanup")

    async with ls_session(project_name="track: async generator caller"):
        steps = numbers(5)
        assert await steps.__anext__() == "ok"
        await LLM.ainvoke("async caller between steps")
        assert await steps.asend(None) == "ok"
        await steps.aclose()
    readback.flushed(4)
    assert set(readback.by_prompt("track: async generator")) == {
        "async step 0",
        "async step 1",
        "async cleanup",
    }
    assert set(readback.by_prompt("track: async generator caller")) == {
        "async caller between steps"
    }


async def test_async_generator_runs_to_the_end_and_passes_exceptions_in() -> None:
    """Iterating to the end yields every value; athrow() reaches the generator's handler."""

    @ls_track(project_name="track: async generator end")
    async def letters() -> AsyncGenerator[str, None]:
        for letter in "ab":
            try:
                yield letter
            except LookupError:
                yield "handled"

    assert [x async for x in letters()] == ["a", "b"]
    steps = letters()
    assert await steps.__anext__() == "a"
    assert await steps.athrow(LookupError("x")) == "handled"
    assert await steps.__anext__() == "b"


class Assistant:
    """A class whose methods are tracked, in both decorator orders."""

    prefix = "class"

    def __init__(self) -> None:
        self.prefix = "instance"

    @ls_track(project_name="track: methods")
    def method(self, text: str) -> str:
        return LLM.invoke(f"{self.prefix} method {text}")

    @ls_track(project_name="track: methods")
    @classmethod
    def outer_classmethod(cls, text: str) -> str:
        return LLM.invoke(f"{cls.prefix} outer classmethod {text}")

    @classmethod
    @ls_track(project_name="track: methods")
    def inner_classmethod(cls, text: str) -> str:
        return LLM.invoke(f"{cls.prefix} inner classmethod {text}")

    @ls_track(project_name="track: methods")
    @staticmethod
    def outer_staticmethod(text: str) -> str:
        return LLM.invoke(f"outer staticmethod {text}")

    @staticmethod
    @ls_track(project_name="track: methods")
    def inner_staticmethod(text: str) -> str:
        return LLM.invoke(f"inner staticmethod {text}")


def test_methods_classmethods_and_staticmethods_bind_normally() -> None:
    """self and cls are bound as without the decorator, whichever order the decorators are in."""
    bot = Assistant()
    bot.method("1")
    Assistant.outer_classmethod("2")
    bot.inner_classmethod("3")
    Assistant.outer_staticmethod("4")
    bot.inner_staticmethod("5")
    readback.flushed(5)
    assert set(readback.by_prompt("track: methods")) == {
        "instance method 1",
        "class outer classmethod 2",
        "class inner classmethod 3",
        "outer staticmethod 4",
        "inner staticmethod 5",
    }
    assert inspect.signature(Assistant.outer_classmethod) == inspect.signature(
        Assistant.inner_classmethod
    )


def test_tracked_function_inside_a_tracked_function_wins() -> None:
    """A tracked function called from another takes its own calls (innermost wins)."""

    @ls_track(project_name="track: inner function")
    def inner() -> str:
        return LLM.invoke("inner function call")

    @ls_track(project_name="track: outer function")
    def outer() -> str:
        inner()
        return LLM.invoke("outer function call")

    outer()
    readback.flushed(2)
    assert set(readback.by_prompt("track: inner function")) == {"inner function call"}
    assert set(readback.by_prompt("track: outer function")) == {"outer function call"}
