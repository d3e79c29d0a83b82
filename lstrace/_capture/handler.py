"""The LangChain callback handler: where an LLM call is captured.

Each scope owns one :class:`ScopeHandler`; the configure hook attaches the
active scope's handler to every run. When several scopes' handlers end up on
one run (an outer chain's inheritable handler plus the inner scope's), they
share one table of pending runs, the deepest scope wins, and the first
``on_llm_end`` hands the call off exactly once.

Host-app contract: nothing here raises into LangChain and nothing here does
I/O. As a run ends, what the app can still change (its conversation and the
reply) is read into plain values (``record.settle``, a few us: the task is the
call as it ended) and the call is handed off with an O(1) append. The body of
every callback method below is a ``try`` whose ``except Exception`` hands over
to one of the :class:`Guard` objects: an exception from lstrace's own code is
swallowed, logged with its traceback the first time for each kind of callback
(then at DEBUG) and, when it costs the call (the LLM run callbacks), counted in
``stats().dropped_by_reason["capture_error"]``. The ``ignore_*`` properties
only read the scope's options.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from lstrace._capture import sampling as _sampling
from lstrace._capture import trace_record as _trace
from lstrace._capture.record import CapturedCall, settle
from lstrace._delivery import worker as _worker

if TYPE_CHECKING:
    from lstrace._capture.scope import Scope

logger = logging.getLogger("lstrace")

# Runs started but not ended, shared by every handler. Dict operations are
# atomic under the GIL and one run's callbacks come from one thread at a time.
_pending: dict[UUID, CapturedCall] = {}
_MAX_PENDING = 100_000  # a leak guard: runs that never end are forgotten past this


class Guard:
    """Reports an exception raised by lstrace inside one kind of callback, in the spirit of
    sentry-python's ``capture_internal_exceptions``. Every callback reads::

        try:
            ...
        except Exception:
            _KIND.swallow()

    (not a ``with`` block: that costs two method calls per callback on the hot path,
    about 0.7 us a call measured under load; ``try`` costs nothing until something
    raises). One module-level instance per callback kind: the first failure of each kind
    is logged with its traceback, later ones at DEBUG; with ``loses_call`` each is
    counted as a dropped call (``capture_error``).
    """

    __slots__ = ("loses_call", "reported", "what")

    def __init__(self, what: str, *, loses_call: bool) -> None:
        self.what = what
        self.loses_call = loses_call
        self.reported = False

    def swallow(self) -> None:
        """Report the exception being handled; never raises."""
        try:
            log = logger.debug if self.reported else logger.error
            self.reported = True
            log(
                "lstrace: could not capture %s; the LLM call is unaffected%s",
                self.what,
                " (the call is not captured)" if self.loses_call else "",
                exc_info=True,
            )
            if self.loses_call:
                _worker.count_lost("capture_error")
        except Exception:  # a guard never raises, even when logging fails
            pass


_LLM_START = Guard("the start of an LLM run", loses_call=True)
_CHAT_START = Guard("the start of a chat-model run", loses_call=True)
_LLM_END = Guard("the end of an LLM run", loses_call=True)
_LLM_ERROR = Guard("the error of an LLM run", loses_call=True)
# Parent links for sampling by trace: a lost link makes a run the root of its own trace.
_LINK = Guard("a parent link for sampling (chain, tool or retriever start)", loses_call=False)
_UNLINK = Guard("the end of a chain, tool or retriever run", loses_call=False)


class ScopeHandler(BaseCallbackHandler):
    """Captures the LLM and chat-model runs of one scope."""

    run_inline = True  # our callbacks are O(1): no thread-pool hop in async runs
    raise_error = False

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __repr__(self) -> str:
        return f"<lstrace handler for {self.scope.options.destination.describe()}>"

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._start(
                serialized,
                prompts[0] if prompts else "",
                None,
                run_id,
                parent_run_id,
                tags,
                metadata,
                kwargs,
            )
        except Exception:
            _LLM_START.swallow()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._start(
                serialized,
                None,
                messages[0] if messages else [],
                run_id,
                parent_run_id,
                tags,
                metadata,
                kwargs,
            )
        except Exception:
            _CHAT_START.swallow()

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            call = _pending.pop(run_id, None)
            if call is not None:
                call.ended_perf = time.perf_counter()
                call.response = response
                settle(call)
                _worker.submit(call)
        except Exception:
            _LLM_END.swallow()

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            call = _pending.pop(run_id, None)
            if call is not None and call.options.capture_errors:
                call.ended_perf = time.perf_counter()
                call.error = error
                settle(call)
                _worker.submit(call)
        except Exception:
            _LLM_ERROR.swallow()

    # Parent links for sampling by trace; LangChain skips these events while
    # no scope samples (the ignore_* properties), so they cost nothing then.

    @property
    def ignore_chain(self) -> bool:
        return self.scope.options.sample_rate >= 1.0

    @property
    def ignore_agent(self) -> bool:
        return self.scope.options.sample_rate >= 1.0

    @property
    def ignore_retriever(self) -> bool:
        return self.scope.options.sample_rate >= 1.0

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            _sampling.note(run_id, parent_run_id)
        except Exception:
            _LINK.swallow()

    def on_tool_start(
        self,
        serialized: Any,
        input_str: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            _sampling.note(run_id, parent_run_id)
        except Exception:
            _LINK.swallow()

    def on_retriever_start(
        self,
        serialized: Any,
        query: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            _sampling.note(run_id, parent_run_id)
        except Exception:
            _LINK.swallow()

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            _sampling.forget(run_id)
        except Exception:
            _UNLINK.swallow()

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            _sampling.forget(run_id)
        except Exception:
            _UNLINK.swallow()

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            _sampling.forget(run_id)
        except Exception:
            _UNLINK.swallow()

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            _sampling.forget(run_id)
        except Exception:
            _UNLINK.swallow()

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            _sampling.forget(run_id)
        except Exception:
            _UNLINK.swallow()

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            _sampling.forget(run_id)
        except Exception:
            _UNLINK.swallow()

    def _start(
        self,
        serialized: Mapping[str, Any] | None,
        prompt: str | None,
        messages: Sequence[BaseMessage] | None,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        if _trace.claims(run_id, parent_run_id):
            return  # part of a trace: it becomes a step of that trace's task, not a task
        scope = self.scope
        held = _pending.get(run_id)
        if held is not None and held.rank >= scope.rank:
            return  # an inner scope's handler already holds this run
        # The deepest scope decides, whichever handler LangChain calls first.
        if not self._admits(run_id, parent_run_id):
            _pending.pop(run_id, None)
            return
        if held is not None:
            held.options, held.rank = scope.options, scope.rank
            return
        if len(_pending) >= _MAX_PENDING:
            _pending.pop(next(iter(_pending)))
            _worker.count_lost("abandoned")
        _pending[run_id] = CapturedCall(
            options=scope.options,
            run_id=run_id,
            parent_run_id=parent_run_id,
            prompt=prompt,
            messages=messages,
            serialized=serialized,
            tags=tags,
            metadata=metadata,
            invocation_params=kwargs.get("invocation_params"),
            name=kwargs.get("name"),
            started_at=time.time(),
            started_perf=time.perf_counter(),
            rank=scope.rank,
        )

    def _admits(self, run_id: UUID, parent_run_id: UUID | None) -> bool:
        """This scope's verdict: capture on, and the run's trace sampled in (drops counted)."""
        options = self.scope.options
        if not options.enabled:
            return False
        if options.sample_rate < 1.0:
            root = _sampling.root_of(run_id, parent_run_id)
            if not _sampling.keep(root, options.sample_rate, options.sample_seed):
                _worker.count_lost("sampled")
                return False
        return True


def forget(run_id: UUID) -> None:
    """Drop a pending run without capturing it (a trace scope took the run over)."""
    _pending.pop(run_id, None)


def reset() -> None:
    """Forget pending runs and which failures were reported (after fork, and for tests)."""
    _pending.clear()
    for guard in (_LLM_START, _CHAT_START, _LLM_END, _LLM_ERROR, _LINK, _UNLINK):
        guard.reported = False


if hasattr(os, "register_at_fork"):
    # The parent's runs in flight belong to threads the child does not have.
    os.register_at_fork(after_in_child=reset)
