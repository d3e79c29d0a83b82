"""Read-side calls to Label Studio (projects, users, task pages), failures as ExportError.

The SDK is imported lazily. Unlike the sender's client, reads may be retried
by the SDK itself: every call here is an idempotent GET.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lstrace._export.errors import AuthFailed, BadRequest, ExportError, ServerUnreachable

T = TypeVar("T")

_READ_RETRIES = 2


@dataclass(frozen=True)
class ProjectInfo:
    """A project and its counters as Label Studio reports them."""

    id: int
    title: str
    tasks: int
    annotated_tasks: int  # tasks with at least one submitted (not skipped) annotation
    annotations: int  # submitted annotations
    skipped: int  # skipped (cancelled) annotations
    parsed_config: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        return f"project {self.title!r} (id {self.id})"


@dataclass(frozen=True)
class TaskPage:
    """One page of tasks as plain dicts, and how many tasks match the query in all."""

    tasks: list[dict[str, Any]]
    total: int


class ReadClient:
    """The Label Studio calls the ``lstrace`` command and ``export_project`` make."""

    def __init__(self, url: str, api_key: str | None, *, timeout: float = 60.0) -> None:
        """A client for ``url``; without ``api_key`` only :meth:`version` works."""
        self.url = url.rstrip("/")
        self._has_key = bool(api_key)
        from label_studio_sdk import LabelStudio

        self._sdk: Any = LabelStudio(  # type: ignore[no-untyped-call]
            base_url=self.url, api_key=api_key or "-", timeout=timeout, max_retries=_READ_RETRIES
        )

    def _call(self, what: str, fn: Callable[[], T], *, needs_key: bool = True) -> T:
        if needs_key and not self._has_key:
            raise AuthFailed(
                f"no API key for Label Studio at {self.url}: set LABEL_STUDIO_API_KEY or pass "
                "--api-key (Label Studio: Account & Settings > Access Token)."
            )
        try:
            return fn()
        except ExportError:
            raise
        except Exception as exc:
            raise translate(exc, what, self.url) from None

    def version(self) -> str:
        """The server's release (this call needs no valid key)."""
        answer = self._call("read its version", self._sdk.versions.get, needs_key=False)
        return str(getattr(answer, "release", None) or "unknown version")

    def whoami(self) -> str:
        """The e-mail of the user the key belongs to; checks the key."""
        user = self._call("check the API key", self._sdk.users.whoami)
        return str(user.email or user.username or user.id)

    def users(self) -> dict[int, str]:
        """E-mail (or user name) by user id, for naming annotators."""

        def run() -> dict[int, str]:
            return {int(u.id): str(u.email or u.username or u.id) for u in self._sdk.users.list()}

        return self._call("list users", run)

    def projects(self, title: str | None = None) -> Iterator[ProjectInfo]:
        """Every project the key can see (with ``title``: whose title contains it)."""
        number = 1
        while True:
            page = self._call(
                "list projects",
                functools.partial(self._sdk.projects.list, title=title, page=number, page_size=100),
            )
            items = page.items or []
            yield from (_info(p) for p in items)
            # Page by the answer's ``next``: the SDK's pager asks for one page too many (404).
            if not items or getattr(page.response, "next", None) is None:
                return
            number += 1

    def project(self, ref: str | int) -> ProjectInfo:
        """A project by id, or by exact title (the lowest id wins, as when lstrace delivers).

        Raises :class:`BadRequest` when no project matches.
        """
        text = str(ref).strip()
        if text.isdigit():
            try:
                got = self._call(
                    f"get project {text}", lambda: self._sdk.projects.get(id=int(text))
                )
                return _info(got)
            except BadRequest:
                pass  # maybe a title made of digits
        ids = sorted(p.id for p in self.projects(title=text) if p.title == text)
        if not ids:
            raise BadRequest(
                f"Label Studio at {self.url} has no project titled {text!r}"
                + (f" or with id {text}" if text.isdigit() else "")
                + "; run `lstrace projects` to list them."
            )
        return _info(self._call(f"get project {ids[0]}", lambda: self._sdk.projects.get(id=ids[0])))

    def task_page(self, project_id: int, query: Mapping[str, Any], page_size: int) -> TaskPage:
        """The first ``page_size`` tasks matching a Data Manager ``query``, with everything."""

        def run() -> TaskPage:
            pager = self._sdk.tasks.list(
                project=project_id,
                fields="all",
                query=json.dumps(query),
                page=1,
                page_size=page_size,
            )
            tasks = [_task_dict(t) for t in pager.items or []]
            return TaskPage(tasks, int(getattr(pager.response, "total", 0) or 0))

        return self._call(f"list the tasks of project {project_id}", run)


def _info(project: Any) -> ProjectInfo:
    return ProjectInfo(
        id=int(project.id),
        title=str(project.title or ""),
        tasks=int(project.task_number or 0),
        annotated_tasks=int(project.num_tasks_with_annotations or 0),
        annotations=int(project.total_annotations_number or 0),
        skipped=int(project.skipped_annotations_number or 0),
        parsed_config=dict(project.parsed_label_config or {}),
    )


def _task_dict(task: Any) -> dict[str, Any]:
    """Only what an export reads, as plain JSON-like values."""
    return {
        "id": int(task.id),
        "data": dict(task.data or {}),
        "annotations": [_plain(a) for a in task.annotations or []],
        "predictions": [_plain(p) for p in task.predictions or []],
    }


def _plain(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return item
    dumped: dict[str, Any] = item.model_dump(mode="json")
    return dumped


def translate(exc: BaseException, what: str, url: str) -> ExportError:
    """One clear line for a failed call: what went wrong and what to do."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    if isinstance(exc, ApiError):
        status = exc.status_code or 0
        detail = _detail(exc.body)
        if status in (401, 403):
            return AuthFailed(
                f"Label Studio at {url} refused the API key ({status}) while trying to {what}: "
                "set LABEL_STUDIO_API_KEY or pass --api-key with a valid token "
                "(Account & Settings > Access Token)."
            )
        if status in (400, 404, 422):
            return BadRequest(f"Label Studio at {url} could not {what} ({status}): {detail}")
        return ServerUnreachable(
            f"Label Studio at {url} answered {status} while trying to {what}: {detail}. "
            "Check the server's log, then retry."
        )
    if isinstance(exc, httpx.TransportError):
        return ServerUnreachable(
            f"cannot reach Label Studio at {url} to {what} ({type(exc).__name__}): check --url "
            "or LABEL_STUDIO_URL, and that the server is running."
        )
    return ServerUnreachable(
        f"unexpected answer from {url} while trying to {what} ({type(exc).__name__}: "
        f"{_detail(str(exc))}); is this a Label Studio server?"
    )


def _detail(body: Any) -> str:
    if isinstance(body, Mapping) and "detail" in body:
        body = body["detail"]
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:200] + "..."
