"""Trace mode: collecting a whole run tree (an agent or chain run) into one task.

A trace starts at a run with no known trace ancestor seen by a trace-mode scope's
handler (the root of a LangChain run tree), or at a call of an
``@ls_track(mode="trace")`` function. Every run below it (model calls, tool
calls, retrievers, nested chains, subgraphs, sub-agents) belongs to it, whatever
scope is active when that run starts: a trace is never split. The scope active
when the root started decides the project, the capture options and sampling.

Hot path: the callbacks record references in a small :class:`Step` and append it
to the worker's queue when the run ends. Steps are spooled as they come; the end
of the root hands off an ``end`` step, and the spooler builds the one task (see
:mod:`lstrace._delivery.traces`). Nothing here raises into LangChain or does I/O.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables.config import var_child_runnable_config

from lstrace._capture import handler as _handler
from lstrace._capture import sampling as _sampling
from lstrace._capture.trace_record import (
    MAX_TRACE_STEPS,
    Step,
    Trace,
    Yielded,
    current,
    open_steps,
    runs,
)
from lstrace._delivery import worker as _worker

if TYPE_CHECKING:
    from lstrace._capture.scope import Scope

logger = logging.getLogger("lstrace")

MAX_OPEN_RUNS = 100_000  # a leak guard: runs that never end are forgotten past this


def current_handler() -> BaseCallbackHandler | None:
    """The handler of the ``@ls_track`` trace running in this context, if any."""
    held = current.get()
    return held[0].handler if held is not None else None


class TraceHandler(BaseCallbackHandler):
    """Collects the run trees that start under one trace-mode scope."""

    run_inline = True
    raise_error = False

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __repr__(self) -> str:
        return f"<lstrace trace handler for {self.scope.options.destination.describe()}>"

    # -- starts -------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._guard(self._start_run, "chain", run_id, parent_run_id, kwargs, inputs, serialized)

    def on_llm_start(
        self,
        serialized: Any,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        prompt = prompts[0] if prompts else ""
        self._guard(self._start_run, "model", run_id, parent_run_id, kwargs, prompt, serialized)

    def on_chat_model_start(
        self,
        serialized: Any,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        dialogue = messages[0] if messages else []
        self._guard(self._start_run, "model", run_id, parent_run_id, kwargs, dialogue, serialized)

    def on_tool_start(
        self,
        serialized: Any,
        input_str: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        inputs = kwargs.get("inputs") if kwargs.get("inputs") is not None else input_str
        self._guard(self._start_run, "tool", run_id, parent_run_id, kwargs, inputs, serialized)

    def on_retriever_start(
        self,
        serialized: Any,
        query: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._guard(self._start_run, "retriever", run_id, parent_run_id, kwargs, query, serialized)

    # -- ends ---------------------------------------------------------------------

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._guard(_end_run, run_id, outputs, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._guard(_end_run, run_id, None, error)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._guard(_end_run, run_id, response, None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._guard(_end_run, run_id, None, error)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._guard(_end_run, run_id, output, None)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._guard(_end_run, run_id, None, error)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._guard(_end_run, run_id, documents, None)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._guard(_end_run, run_id, None, error)

    # -- the work -----------------------------------------------------------------

    @staticmethod
    def _guard(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            logger.exception("lstrace: could not record a trace step")

    def _start_run(
        self,
        kind: str,
        run_id: UUID,
        parent_run_id: UUID | None,
        kwargs: Mapping[str, Any],
        inputs: Any,
        serialized: Any,
    ) -> None:
        if run_id in runs:
            self._deeper_scope_takes_over(runs[run_id], run_id)
            return  # another handler on this run already recorded its start
        held = current.get()
        if parent_run_id is None and held is not None:
            parent_run_id = held[1]  # a LangChain root inside an @ls_track trace call
        trace = runs.get(parent_run_id) if parent_run_id is not None else None
        if trace is None:
            trace = self._new_trace(run_id, kwargs.get("name") or _serialized_name(serialized))
            if trace is None:
                return
            trace.inputs = inputs
        _remember(run_id, trace)  # part of the trace: the other modes leave it alone
        if trace.closed:
            if trace.abandoned and kind != "chain":
                _worker.count_lost("trace_late")  # sent as incomplete already
            return
        if kind == "chain" or not trace.kept:
            return
        open_steps[run_id] = Step(
            trace=trace,
            seq=-1,  # numbered when it ends: a step shows after the steps nested in it
            kind=kind,
            run_id=run_id,
            parent_run_id=parent_run_id,
            name=kwargs.get("name") or _serialized_name(serialized),
            inputs=inputs,
            serialized=serialized if isinstance(serialized, Mapping) else None,
            invocation_params=kwargs.get("invocation_params"),
            metadata=kwargs.get("metadata"),
            tags=kwargs.get("tags"),
            tool_call_id=kwargs.get("tool_call_id"),
            started_at=time.time(),
            started_perf=time.perf_counter(),
        )

    def _new_trace(self, root: UUID, name: str | None) -> Trace | None:
        options = self.scope.options
        if not options.enabled:
            return None
        kept = _sampling.keep(root, options.sample_rate, options.sample_seed)
        if not kept:
            _worker.count_lost("sampled")
        # An LLM root may already be held by a chat/prompt scope's handler: the trace wins.
        _handler.forget(root)
        return Trace(root, options, self.scope.rank, kept, self, name=name or "")

    def _deeper_scope_takes_over(self, trace: Trace, run_id: UUID) -> None:
        """A root seen first by an outer scope's handler belongs to the deepest scope."""
        if trace.root == run_id and trace.recorded == 0 and self.scope.rank > trace.rank:
            trace.options, trace.rank, trace.handler = self.scope.options, self.scope.rank, self
            trace.kept = _sampling.keep(
                run_id, trace.options.sample_rate, trace.options.sample_seed
            )


def _remember(run_id: UUID, trace: Trace) -> None:
    if len(runs) >= MAX_OPEN_RUNS:
        runs.pop(next(iter(runs)))
        _worker.count_lost("abandoned")
    runs[run_id] = trace


def _end_run(run_id: UUID, outputs: Any, error: BaseException | None) -> None:
    trace = runs.pop(run_id, None)
    if trace is None:
        return
    step = open_steps.pop(run_id, None)
    if step is not None:
        _submit(step, outputs, error)
    if run_id == trace.root:
        end(trace, outputs, error)


def _submit(step: Step, outputs: Any, error: BaseException | None) -> None:
    """A step ended: number it (steps are shown in the order they ended) and hand it off."""
    step.ended_perf = time.perf_counter()
    if step.trace.abandoned:
        _worker.count_lost("trace_late")
        return
    seq = step.trace.next_seq() if not step.trace.closed else None
    if seq is None:
        return
    step.seq, step.outputs, step.error = seq, outputs, error
    _worker.submit(step)


def end(
    trace: Trace, outputs: Any, error: BaseException | None, *, incomplete: str | None = None
) -> None:
    """The root ended: hand off the ``end`` step, after which the spooler builds the task."""
    if trace.closed:
        if trace.abandoned:
            _worker.count_lost("trace_late")
        return
    trace.closed = True
    if not trace.kept:
        return
    _worker.submit(
        Step(
            trace=trace,
            seq=MAX_TRACE_STEPS + 1,
            kind="end",
            run_id=trace.root,
            parent_run_id=None,
            name=trace.name,
            inputs=trace.inputs,
            outputs=outputs,
            error=error,
            started_at=trace.started_at,
            started_perf=trace.started_perf,
            ended_perf=time.perf_counter(),
            incomplete=incomplete,
        )
    )


# -- @ls_track(mode="trace"): one call of the function is one trace ---------------------


def call_traced(
    scope: Scope, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Run ``fn`` as a trace root (or, inside a trace, as a step of it)."""
    started = _begin_call(scope, fn, args, kwargs)
    if started is None:
        return fn(*args, **kwargs)
    token = current.set(started[:2])
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        current.reset(token)
        _finish_call(started, None, exc)
        raise
    current.reset(token)
    _finish_call(started, result, None)
    return result


async def call_traced_async(
    scope: Scope, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The coroutine twin of :func:`call_traced`."""
    started = _begin_call(scope, fn, args, kwargs)
    if started is None:
        return await fn(*args, **kwargs)
    token = current.set(started[:2])
    try:
        result = await fn(*args, **kwargs)
    except BaseException as exc:
        current.reset(token)
        _finish_call(started, None, exc)
        raise
    current.reset(token)
    _finish_call(started, result, None)
    return result


class GeneratorCall:
    """One call of an ``@ls_track(mode="trace")`` generator: a trace (or a step of the
    enclosing one) from its first step until it is exhausted, raises or is closed.

    The driver enters it (``with call:``) around each run of the generator's own code,
    so runs started there belong to the trace and the caller's code between two
    ``next()`` calls does not; it hands every yielded value to :meth:`yielded` and
    calls :meth:`finish` once. Its output is the generator's return value, or when
    that is None what it yielded (see :class:`Yielded`). Never raises.
    """

    __slots__ = ("_args", "_fn", "_kwargs", "_scope", "_started", "_state", "_token", "_yields")

    def __init__(
        self, scope: Scope, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._scope, self._fn, self._args, self._kwargs = scope, fn, args, kwargs
        self._started: tuple[Trace, UUID, Step | None] | None = None
        self._yields: Yielded | None = None
        self._token: Any = None
        self._state = "new"  # "new", "running" or "done"

    def __enter__(self) -> None:
        if self._state == "new":
            self._state = "running"
            self._started = _begin_call(self._scope, self._fn, self._args, self._kwargs)
            if self._started is not None:
                self._yields = Yielded(self._started[0].options.max_field_chars)
        if self._started is not None and self._state == "running":
            self._token = current.set(self._started[:2])

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            token, self._token = self._token, None
            with contextlib.suppress(ValueError):  # a step runs in one context; be safe
                current.reset(token)

    def yielded(self, value: Any) -> None:
        if self._yields is not None:
            self._yields.add(value)

    def finish(self, result: Any, error: BaseException | None) -> None:
        if self._state != "running" or self._started is None:
            self._state = "done"
            return
        self._state = "done"
        _finish_call(self._started, result if result is not None else self._yields, error)


def _begin_call(
    scope: Scope, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Trace, UUID, Step | None] | None:
    try:
        name = str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "function"))
        run_id = uuid.uuid4()
        inputs = _arguments(args, kwargs)
        parent = _enclosing_run()
        trace = runs.get(parent) if parent is not None else None
        if trace is None:
            handler = scope.handler
            if not isinstance(handler, TraceHandler):
                return None
            trace = handler._new_trace(run_id, name)
            if trace is None:
                return None
            trace.name = name
            _remember(run_id, trace)
            trace.started_at, trace.started_perf = time.time(), time.perf_counter()
            trace.inputs = inputs
            return trace, run_id, None
        _remember(run_id, trace)
        step = None
        if trace.kept and not trace.closed:
            step = Step(
                trace=trace,
                seq=-1,
                kind="function",
                run_id=run_id,
                parent_run_id=parent,
                name=name,
                inputs=inputs,
                started_at=time.time(),
                started_perf=time.perf_counter(),
            )
        return trace, run_id, step
    except Exception:
        logger.exception("lstrace: could not start the trace of %r", fn)
        return None


def _finish_call(
    started: tuple[Trace, UUID, Step | None], result: Any, error: BaseException | None
) -> None:
    try:
        trace, run_id, step = started
        runs.pop(run_id, None)
        if step is not None:
            _submit(step, result, error)
        elif run_id == trace.root:
            end(trace, result, error)
    except Exception:
        logger.exception("lstrace: could not end a traced call")


def _enclosing_run() -> UUID | None:
    """The LangChain run (or traced call) this code runs inside, if any."""
    held = current.get()
    config = var_child_runnable_config.get() or {}
    manager = config.get("callbacks")
    parent = getattr(manager, "parent_run_id", None)
    if isinstance(parent, UUID) and parent in runs:
        return parent
    return held[1] if held is not None else None


def _arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if not kwargs and len(args) == 1:
        return args[0]
    if not args:
        return dict(kwargs)
    return {"args": list(args), **kwargs}


def _serialized_name(serialized: Any) -> str | None:
    if not isinstance(serialized, Mapping):
        return None
    name = serialized.get("name")
    if isinstance(name, str) and name:
        return name
    ids = serialized.get("id") or []
    return ids[-1] if ids and isinstance(ids[-1], str) else None
