"""Process-wide controls: ``enable``/``disable``, ``flush``, ``stats``, ``configure``."""

from __future__ import annotations

from pathlib import Path

from typing_extensions import Unpack

from lstrace._capture import handler as _handler
from lstrace._capture import sampling as _sampling
from lstrace._capture import scope as _scope
from lstrace._capture import trace_record as _trace_record
from lstrace._capture.scope import set_global
from lstrace._client import server_key
from lstrace._delivery import projects as _projects
from lstrace._delivery import worker as _worker
from lstrace._delivery.stats import FlushResult, Stats
from lstrace._errors import ConfigError
from lstrace._options import TraceOptions, make_args


def enable(**options: Unpack[TraceOptions]) -> None:
    """Capture every LangChain LLM call of this process, outside any narrower scope.

    Call once at startup; a second call replaces the first. ``ls_session`` and
    ``@ls_track`` scopes inside still take precedence and inherit what they do
    not set. Raises :class:`lstrace.ConfigError` for a bad option. Never raises for
    what the environment decides: without an API key the calls are captured and wait
    in the spool (one ERROR names the fix), an unreachable server is retried in the
    background. Also starts delivering tasks an earlier process left in the spool.
    With ``LSTRACE_ENABLED=false`` it does nothing and needs neither key nor server.
    """
    set_global(make_args(**options))


def disable() -> None:
    """Undo :func:`enable`. Captured calls still pending are delivered as usual."""
    set_global(None)


def flush(timeout: float = 5.0) -> FlushResult:
    """Deliver pending tasks, waiting at most ``timeout`` seconds.

    Returns how many were delivered, how many still wait and where (the spool
    file). Never raises; returns early when Label Studio is unreachable or
    refuses the key, since waiting would not help.
    """
    return _worker.flush(timeout)


def sync(
    *, url: str | None = None, api_key: str | None = None, timeout: float = 60.0
) -> FlushResult:
    """Deliver the tasks that earlier processes left in the spool (what ``lstrace sync`` runs).

    ``api_key`` (default ``LABEL_STUDIO_API_KEY``) is used for every server found
    in the spool, or only for ``url`` when given. Returns like :func:`flush`.
    """
    return _worker.sync(api_key=server_key(api_key), url=url, timeout=timeout)


def stats() -> Stats:
    """Counters for this process: captured, delivered, retried, spooled, pending, failed."""
    return _worker.stats()


def configure(
    *,
    spool_path: str | Path | None = None,
    batch_size: int | None = None,
    flush_interval: float | None = None,
    max_queue: int | None = None,
    request_timeout: float | None = None,
    max_backoff: float | None = None,
    shutdown_timeout: float | None = None,
) -> None:
    """Set process-wide delivery settings (each optional; unset ones keep their value).

    ``spool_path``: the SQLite spool file (default ``LSTRACE_SPOOL_PATH`` or the
    per-user data dir); ``batch_size``: tasks per bulk import; ``flush_interval``:
    longest wait for a batch to fill; ``max_queue``: in-memory bound before
    calls go straight to the spool; ``shutdown_timeout``: the exit flush.
    A running sender is flushed and restarted with the new settings.
    """
    for name, value in (("batch_size", batch_size), ("max_queue", max_queue)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a positive whole number, not {value!r}.")
    _worker.configure(
        spool_path=Path(spool_path).expanduser() if spool_path is not None else None,
        batch_size=batch_size,
        flush_interval=flush_interval,
        max_queue=max_queue,
        request_timeout=request_timeout,
        max_backoff=max_backoff,
        shutdown_timeout=shutdown_timeout,
    )


def reset() -> None:
    """Forget every piece of per-process state, as in a fresh process (the test suite's
    reset). Each module resets its own: the worker (stopped without sending, its keys
    and settings), the ``enable()`` scope, pending runs, sampling's parent links, open
    traces and the project checks made at scope entry."""
    _worker.reset()
    _scope.reset()
    _handler.reset()
    _sampling.reset()
    _trace_record.reset()
    _projects.reset()
