"""The LangChain callback handler: where an LLM call is captured.

Each scope owns one :class:`ScopeHandler`; the configure hook attaches the
active scope's handler to every run. When several scopes' handlers end up on
one run (an outer chain's inheritable handler plus the inner scope's), they
share one table of pending runs, the deepest scope wins, and the first
``on_llm_end`` hands the call off exactly once.

Host-app contract: nothing here raises into LangChain (every callback is
wrapped), nothing here does I/O; the hand-off is an O(1) append.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from lstrace._capture import sampling as _sampling
from lstrace._capture import trace_record as _trace
from lstrace._capture.record import CapturedCall
from lstrace._delivery import worker as _worker

if TYPE_CHECKING:
    from lstrace._capture.scope import Scope

logger = logging.getLogger("lstrace")

# Runs started but not ended, shared by every handler. Dict operations are
# atomic under the GIL and one run's callbacks come from one thread at a time.
_pending: dict[UUID, CapturedCall] = {}
_MAX_PENDING = 100_000  # a leak guard: runs that never end are forgotten past this


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
            logger.exception("lstrace: could not capture the start of LLM run %s", run_id)

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
            logger.exception("lstrace: could not capture the start of chat run %s", run_id)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            call = _pending.pop(run_id, None)
            if call is not None:
                call.ended_perf = time.perf_counter()
                call.response = response
                _worker.submit(call)
        except Exception:
            logger.exception("lstrace: could not capture the end of LLM run %s", run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            call = _pending.pop(run_id, None)
            if call is not None and call.options.capture_errors:
                call.ended_perf = time.perf_counter()
                call.error = error
                _worker.submit(call)
        except Exception:
            logger.exception("lstrace: could not capture the error of LLM run %s", run_id)

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
        _sampling.note(run_id, parent_run_id)

    def on_tool_start(
        self,
        serialized: Any,
        input_str: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        _sampling.note(run_id, parent_run_id)

    def on_retriever_start(
        self,
        serialized: Any,
        query: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        _sampling.note(run_id, parent_run_id)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        _sampling.forget(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        _sampling.forget(run_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        _sampling.forget(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        _sampling.forget(run_id)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        _sampling.forget(run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        _sampling.forget(run_id)

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
