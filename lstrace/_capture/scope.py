"""Scopes: which Label Studio project the LLM calls made right now belong to.

The active scope lives in a ContextVar, so it follows asyncio tasks and
LangChain's own thread pools (they copy the context). ``enable()`` sets a
process-wide fallback scope. A raw ``threading.Thread``, and a
``concurrent.futures.ThreadPoolExecutor`` the app makes, start with an empty
context: wrap the function with :func:`lstrace.with_scope` to carry the scope
in. lstrace cannot count calls lost that way: with no scope where a call runs,
no handler is attached to it, so lstrace never sees it.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import register_configure_hook

from lstrace._capture import trace as _trace
from lstrace._capture.handler import ScopeHandler
from lstrace._delivery import worker as _worker
from lstrace._delivery.projects import check_at_entry
from lstrace._options import Options, ScopeArgs, resolve

P = ParamSpec("P")
R = TypeVar("R")

_current: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "lstrace_scope", default=None
)
_seq = itertools.count()


class _Enabled:
    """The process-wide scope of ``enable()`` (a holder: module state without ``global``)."""

    def __init__(self) -> None:
        self.scope: Scope | None = None
        self.lock = threading.Lock()


_enabled = _Enabled()


@dataclass(eq=False)
class Scope:
    """One entered scope: its resolved options and the handler that captures for it."""

    options: Options
    depth: int
    rank: tuple[int, int] = field(init=False)
    handler: BaseCallbackHandler = field(init=False)

    def __post_init__(self) -> None:
        self.rank = (self.depth, next(_seq))
        trace_mode = self.options.destination.mode == "trace"
        self.handler = _trace.TraceHandler(self) if trace_mode else ScopeHandler(self)


def active() -> Scope | None:
    """The innermost scope of this context, else the ``enable()`` scope."""
    return _current.get() or _enabled.scope


def open_scope(args: ScopeArgs, *, depth: int | None = None) -> Scope:
    """Resolve options against the enclosing scope; raises ``ConfigError`` naming the fix."""
    outer = active()
    options = resolve(args, outer.options if outer else None)
    check_at_entry(options)  # project_id + project_config: the project must have the tags
    scope = Scope(options, depth if depth is not None else (outer.depth + 1 if outer else 1))
    _worker.prepare(options)
    return scope


def enter(scope: Scope) -> contextvars.Token[Scope | None]:
    """Make ``scope`` the active one in this context until :func:`leave` gets the token."""
    return _current.set(scope)


def leave(token: contextvars.Token[Scope | None]) -> None:
    """Restore the scope that was active before the :func:`enter` that gave ``token``."""
    _current.reset(token)


@contextmanager
def activated(scope: Scope) -> Iterator[Scope]:
    """Make ``scope`` the active one for the duration of the block."""
    token = enter(scope)
    try:
        yield scope
    finally:
        leave(token)


def set_global(args: ScopeArgs | None) -> None:
    """Install (or, with None, remove) the process-wide scope used by ``enable()``."""
    with _enabled.lock:
        _enabled.scope = open_scope(args, depth=0) if args is not None else None


def reset() -> None:
    """Remove the ``enable()`` scope (tests). A forked child keeps it, as it keeps the
    parent's configuration: gunicorn workers capture like the app that forked them."""
    with _enabled.lock:
        _enabled.scope = None


class _HookVar:
    """Looks like a ContextVar to LangChain's configure hook; resolves the active handler.

    LangChain calls only ``.get()`` on what is registered, on every run it
    configures, so this must stay cheap.
    """

    def get(self) -> BaseCallbackHandler | None:
        traced = _trace.current_handler()  # inside an @ls_track trace call: its trace wins
        if traced is not None:
            return traced
        scope = _current.get() or _enabled.scope
        if scope is None or not scope.options.enabled:
            return None
        return scope.handler


def with_scope(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` to run in the current context (and so the current lstrace scope).

    Use it for raw threads and ``concurrent.futures`` pools, whose threads start with an
    empty context (calls made there are otherwise not captured, nor counted)::

        threading.Thread(target=lstrace.with_scope(work)).start()
        pool.submit(lstrace.with_scope(work), item)

    Each call runs in a fresh copy of the context taken now, so one wrapped function can
    run in several threads at once.
    """
    ctx = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.copy().run(fn, *args, **kwargs)

    run.__wrapped__ = fn  # type: ignore[attr-defined]
    return run


def _register_hook() -> None:
    hook_var: Any = _HookVar()
    register_configure_hook(hook_var, inheritable=True)


_register_hook()
