"""The entry points: ``ls_session`` (a context manager) and ``@ls_track`` (a decorator).

Both check their arguments when created and resolve them against the
enclosing scope when entered; the decorator chooses its wrapper once, at
decoration time, from the kind of function it wraps. Generators keep their
scope for their whole life, but it is active only while their own code runs,
never in the caller between two ``next()`` calls.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import nullcontext
from types import TracebackType
from typing import Any, TypeVar, cast, overload

import wrapt
from typing_extensions import Unpack

from lstrace._capture import trace as _trace
from lstrace._capture.scope import Scope, activated, enter, leave, open_scope
from lstrace._options import ScopeArgs, TraceOptions, make_args

F = TypeVar("F", bound=Callable[..., Any])


class ls_session:
    """Send the LLM calls made inside the block to a Label Studio project.

    Works with ``with`` and ``async with``. Options are resolved at entry:
    a bad option raises :class:`lstrace.ConfigError` there. Inside, lstrace
    never raises into your LLM calls.
    """

    def __init__(self, **options: Unpack[TraceOptions]) -> None:
        self._args = make_args(**options)
        self._tokens: list[Any] = []

    def __enter__(self) -> Scope:
        scope = open_scope(self._args)
        self._tokens.append(enter(scope))
        return scope

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        leave(self._tokens.pop())

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


@overload
def ls_track(func: F, /) -> F: ...


@overload
def ls_track(func: None = None, /, **options: Unpack[TraceOptions]) -> Callable[[F], F]: ...


def ls_track(func: Callable[..., Any] | None = None, /, **options: Unpack[TraceOptions]) -> Any:
    """Trace every LLM call made while the decorated function runs.

    Usable bare (``@ls_track``) or with options (``@ls_track(project_name=...)``,
    see :class:`lstrace.TraceOptions`), on functions, coroutines, generators,
    async generators, methods, classmethods and staticmethods. The function's
    signature, return value and exceptions are unchanged. With ``mode="trace"`` one
    call is one trace (one task); for a generator, from its first step until it is
    exhausted, raises or is closed. Options are checked
    now (``ConfigError``) and resolved at each call; nothing touches the network
    at decoration time.
    """
    args = make_args(**options)
    if func is None:
        return lambda f: _decorate(f, args)
    return _decorate(func, args)


def _decorate(func: F, args: ScopeArgs) -> F:
    target = getattr(func, "__func__", func)  # classmethod/staticmethod objects
    if inspect.isasyncgenfunction(target):
        run: Callable[..., Any] = _run_async_gen
    elif inspect.iscoroutinefunction(target):
        run = _run_async
    elif inspect.isgeneratorfunction(target):
        run = _run_gen
    else:
        run = _run_sync

    @wrapt.decorator
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, a: tuple[Any, ...], kw: dict[str, Any]
    ) -> Any:
        return run(args, wrapped, a, kw)

    return cast(F, wrapper(func))


def _run_sync(
    args: ScopeArgs, wrapped: Callable[..., Any], a: tuple[Any, ...], kw: dict[str, Any]
) -> Any:
    scope = open_scope(args)
    with activated(scope):
        if scope.options.destination.mode == "trace":  # the call is one trace
            return _trace.call_traced(scope, wrapped, a, kw)
        return wrapped(*a, **kw)


async def _run_async(
    args: ScopeArgs, wrapped: Callable[..., Any], a: tuple[Any, ...], kw: dict[str, Any]
) -> Any:
    scope = open_scope(args)
    with activated(scope):
        if scope.options.destination.mode == "trace":
            return await _trace.call_traced_async(scope, wrapped, a, kw)
        return await wrapped(*a, **kw)


def _run_gen(
    args: ScopeArgs, wrapped: Callable[..., Any], a: tuple[Any, ...], kw: dict[str, Any]
) -> Generator[Any, Any, Any]:
    scope = open_scope(args)
    return _traced_gen(wrapped(*a, **kw), scope, _generator_call(scope, wrapped, a, kw))


def _run_async_gen(
    args: ScopeArgs, wrapped: Callable[..., Any], a: tuple[Any, ...], kw: dict[str, Any]
) -> AsyncGenerator[Any, Any]:
    scope = open_scope(args)
    return _traced_async_gen(wrapped(*a, **kw), scope, _generator_call(scope, wrapped, a, kw))


def _generator_call(
    scope: Scope, wrapped: Callable[..., Any], a: tuple[Any, ...], kw: dict[str, Any]
) -> _trace.GeneratorCall | None:
    """In trace mode, one call of the generator function is one trace."""
    if scope.options.destination.mode != "trace":
        return None
    return _trace.GeneratorCall(scope, wrapped, a, kw)


def _traced_gen(
    gen: Generator[Any, Any, Any], scope: Scope, call: _trace.GeneratorCall | None
) -> Generator[Any, Any, Any]:
    """Drive ``gen`` step by step with ``scope`` active only while its code runs.

    With a trace ``call``, that call's trace is also current only then; it ends when
    ``gen`` returns, raises, or is closed (what it yielded so far is its output).
    """
    inside = call if call is not None else nullcontext()
    method: Callable[[Any], Any] = gen.send
    arg: Any = None
    while True:
        try:
            with activated(scope), inside:
                value = method(arg)
        except StopIteration as stop:
            _finish(call, stop.value, None)
            return stop.value
        except BaseException as exc:
            _finish(call, None, exc)
            raise
        if call is not None:
            call.yielded(value)
        try:
            arg = yield value
            method = gen.send
        except GeneratorExit:
            try:
                with activated(scope), inside:
                    gen.close()
            except BaseException as exc:
                _finish(call, None, exc)
                raise
            _finish(call, None, None)
            raise
        except BaseException as exc:  # thrown in by the caller: pass it on
            method, arg = gen.throw, exc


async def _traced_async_gen(
    gen: AsyncGenerator[Any, Any], scope: Scope, call: _trace.GeneratorCall | None
) -> AsyncGenerator[Any, Any]:
    """The async-generator twin of :func:`_traced_gen`."""
    inside = call if call is not None else nullcontext()
    method: Callable[[Any], Any] = gen.asend
    arg: Any = None
    while True:
        try:
            with activated(scope), inside:
                value = await method(arg)
        except StopAsyncIteration:
            _finish(call, None, None)
            return
        except BaseException as exc:
            _finish(call, None, exc)
            raise
        if call is not None:
            call.yielded(value)
        try:
            arg = yield value
            method = gen.asend
        except GeneratorExit:
            try:
                with activated(scope), inside:
                    await gen.aclose()
            except BaseException as exc:
                _finish(call, None, exc)
                raise
            _finish(call, None, None)
            raise
        except BaseException as exc:
            method, arg = gen.athrow, exc


def _finish(call: _trace.GeneratorCall | None, result: Any, error: BaseException | None) -> None:
    if call is not None:
        call.finish(result, error)
