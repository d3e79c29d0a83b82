"""Reads from Label Studio for the ``lstrace`` command and ``export_project``.

A thin layer over :class:`lstrace._client.LabelStudioClient` (the one client):
the same requests, with each failure worded for a command-line user and raised
as an :class:`~lstrace._errors.ExportError`. Reads are idempotent GETs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from lstrace._client import LabelStudioClient, ProjectInfo, TaskPage
from lstrace._errors import (
    AuthFailed,
    BadRequest,
    DeliveryFailure,
    ExportError,
    FailureKind,
    ServerUnreachable,
    SnapshotRefused,
)
from lstrace._export.fetch import with_after_id

T = TypeVar("T")

_ID_PAGE = 1_000

__all__ = ["ProjectInfo", "ReadClient", "TaskPage", "translate"]


class ReadClient:
    """The Label Studio calls the ``lstrace`` command and ``export_project`` make."""

    def __init__(self, url: str, api_key: str | None, *, timeout: float = 60.0) -> None:
        """A client for ``url``; without ``api_key`` only :meth:`version` works."""
        self.url = url.rstrip("/")
        self._client = _call(lambda: LabelStudioClient(self.url, api_key, timeout=timeout))

    def version(self) -> str:
        """The server's release (this call needs no valid key)."""
        return _call(self._client.version)

    def whoami(self) -> str:
        """The e-mail of the user the key belongs to; checks the key."""
        return _call(self._client.whoami)

    def users(self) -> dict[int, str]:
        """E-mail (or user name) by user id, for naming annotators."""
        return _call(self._client.users)

    def projects(self, title: str | None = None) -> Iterator[ProjectInfo]:
        """Every project the key can see (with ``title``: whose title contains it)."""
        pages = self._client.projects(title)
        while True:
            project = _call(lambda: next(pages, None))
            if project is None:
                return
            yield project

    def project(self, ref: str | int) -> ProjectInfo:
        """A project by id, or by exact title (the lowest id wins, as when lstrace delivers).

        Raises :class:`BadRequest` when no project matches.
        """
        text = str(ref).strip()
        if text.isdigit():
            try:
                return _call(lambda: self._client.project(int(text)))
            except BadRequest:
                pass  # maybe a title made of digits
        ids = _call(lambda: self._client.projects_titled(text))
        if not ids:
            raise BadRequest(
                f"Label Studio at {self.url} has no project titled {text!r}"
                + (f" or with id {text}" if text.isdigit() else "")
                + "; run `lstrace projects` to list them."
            )
        return _call(lambda: self._client.project(ids[0]))

    def task_page(self, project_id: int, query: Mapping[str, Any], page_size: int) -> TaskPage:
        """The first ``page_size`` tasks matching a Data Manager ``query``, with everything."""
        return _call(lambda: self._client.task_page(project_id, query, page_size))

    def count_tasks(self, project_id: int, query: Mapping[str, Any]) -> int:
        """How many tasks match a Data Manager ``query``."""
        return _call(lambda: self._client.task_ids(project_id, query, 1)).total

    def task_ids(self, project_id: int, query: Mapping[str, Any]) -> list[int]:
        """The ids of every task matching ``query`` (one made by ``fetch.task_query``), in
        id order, a light page of 1,000 at a time."""
        found: list[int] = []
        while True:
            after = with_after_id(query, found[-1] if found else 0)
            page = _call(functools.partial(self._client.task_ids, project_id, after, _ID_PAGE))
            found += page.ids
            if len(page.ids) < _ID_PAGE:
                return found

    # -- export snapshots (lstrace._export.snapshot.SnapshotServer) -----------------------

    def create_snapshot(self, project_id: int, body: Mapping[str, Any]) -> Mapping[str, Any]:
        return _refusable(
            lambda: self._client.create_snapshot(project_id, body), server_error=BUILD_HINT
        )

    def snapshot(self, project_id: int, export_id: int) -> Mapping[str, Any]:
        return _refusable(lambda: self._client.snapshot(project_id, export_id))

    @contextlib.contextmanager
    def download_snapshot(self, project_id: int, export_id: int) -> Iterator[Iterable[bytes]]:
        with contextlib.ExitStack() as stack:
            download = self._client.download_snapshot(project_id, export_id)
            chunks = _refusable(lambda: stack.enter_context(download))  # refused: pages instead
            yield _translated(chunks)

    def delete_snapshot(self, project_id: int, export_id: int) -> None:
        _call(lambda: self._client.delete_snapshot(project_id, export_id))

    def server_time(self, *, margin_s: float = 0.0) -> str:
        """The server's clock less ``margin_s``, in the Data Manager filters' format."""
        now = _call(self._client.server_time) - dt.timedelta(seconds=margin_s)
        return now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Without a job queue Label Studio builds a snapshot inside the request that asks for it:
# on a large project that can outlast a worker's timeout (seen: gunicorn's 300 s, at
# 100,000 tasks on PostgreSQL), and the killed worker answers 500.
BUILD_HINT = (
    "; on a large project that is often the server's worker or proxy timeout cutting the "
    "snapshot's build: raise it (gunicorn --timeout), or run Label Studio with Redis, "
    "which builds snapshots in the background"
)


def _refusable(fn: Callable[[], T], *, server_error: str = "") -> T:
    """Like :func:`_call`, but an answer refusing a snapshot (any HTTP error but a refused
    key) raises :class:`SnapshotRefused`: the export then reads page by page. A server
    error (5xx) gets ``server_error`` after its description."""
    try:
        return fn()
    except DeliveryFailure as failure:
        if failure.status is not None and failure.status != 401:
            hint = server_error if failure.status >= 500 else ""
            raise SnapshotRefused(str(translate(failure)).rstrip(".") + hint) from None
        raise translate(failure) from None


def _translated(chunks: Iterable[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    except DeliveryFailure as failure:
        raise translate(failure) from None


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except DeliveryFailure as failure:
        raise translate(failure) from None


def translate(failure: DeliveryFailure) -> ExportError:
    """One clear line for a failed request: what went wrong and what to do."""
    url, what, status, detail = failure.url, failure.what, failure.status, failure.detail
    if failure.kind is FailureKind.AUTH and status is None:
        return AuthFailed(
            f"no API key for Label Studio at {url}: set LABEL_STUDIO_API_KEY or pass "
            "--api-key (Label Studio: Account & Settings > Access Token)."
        )
    if failure.kind is FailureKind.AUTH:
        return AuthFailed(
            f"Label Studio at {url} refused the API key ({status}) while trying to {what}: "
            "set LABEL_STUDIO_API_KEY or pass --api-key with a valid token "
            "(Account & Settings > Access Token)."
        )
    if failure.kind in (FailureKind.NOT_FOUND, FailureKind.REJECTED):
        return BadRequest(f"Label Studio at {url} could not {what} ({status}): {detail}")
    if status is None:
        return ServerUnreachable(
            f"cannot reach Label Studio at {url} to {what} ({detail}): check --url "
            "or LABEL_STUDIO_URL, and that the server is running."
        )
    if status < 400:
        return ServerUnreachable(
            f"unexpected answer from {url} while trying to {what} ({detail}); "
            "is this a Label Studio server?"
        )
    return ServerUnreachable(
        f"Label Studio at {url} answered {status} while trying to {what}: {detail}. "
        "Check the server's log, then retry."
    )
