"""The Label Studio client: the only module that talks HTTP, through label-studio-sdk.

The SDK is imported lazily (it takes about a second) and built with
``max_retries=0``: the sender owns retries, so a bulk import is never
re-posted behind its back. Every failure comes out as a classified
:class:`~lstrace._errors.DeliveryFailure`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from lstrace._errors import DeliveryFailure, FailureKind
from lstrace._secrets import redact_url

T = TypeVar("T")

_PROJECT_PAGE = 100  # the server's largest page of projects
# Run ids per look-up: the filter travels in the URL, and production servers cap the request
# line (gunicorn 4,094 bytes, uWSGI 4 KB, nginx 8 KB; Django's development server does not):
# 60 ids in ``in_list`` make about 3.0 KB, 16 OR-ed ``equal`` filters about 3.0 KB.
_IN_LIST_CHUNK = 60
_EQUAL_CHUNK = 16


class LabelStudioClient:
    """A thin, typed facade over the SDK calls lstrace needs."""

    def __init__(self, url: str, api_key: str, *, timeout: float = 30.0) -> None:
        from label_studio_sdk import LabelStudio

        self.url = redact_url(url)  # for messages; the SDK alone is given the URL as it is
        self.timeout = timeout
        try:
            self._sdk: Any = LabelStudio(  # type: ignore[no-untyped-call]
                base_url=url, api_key=api_key, timeout=timeout, max_retries=0
            )
        except Exception as exc:  # the SDK refuses an expired personal access token right here
            raise classify(exc, "authenticate", self.url) from None

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except DeliveryFailure:
            raise
        except Exception as exc:
            failure = classify(exc, what, self.url)
            if _timed_out(exc):
                # The server may still be working on it (queued behind a proxy, slow): give
                # it as long again before the sender checks what arrived, or the check
                # misses a late import and the re-send duplicates it.
                failure.retry_after = max(failure.retry_after or 0.0, self.timeout)
            raise failure from None

    def projects_titled(self, title: str) -> list[int]:
        """Ids of projects whose title is exactly ``title`` (the server filters by substring)."""

        def run() -> list[int]:
            ids: list[int] = []
            page = 1
            while True:  # reading .items page by page: iterating the pager costs a 404 at the end
                items = self._sdk.projects.list(
                    title=title, page=page, page_size=_PROJECT_PAGE, include="id,title"
                ).items
                ids += [p.id for p in items if p.title == title]
                if len(items) < _PROJECT_PAGE:
                    return sorted(ids)
                page += 1

        return self._call(f"list projects titled {title!r}", run)

    def create_project(self, title: str, label_config: str) -> int:
        project = self._call(
            f"create project {title!r}",
            lambda: self._sdk.projects.create(title=title, label_config=label_config),
        )
        return int(project.id)

    def delete_project(self, project_id: int) -> None:
        self._call(f"delete project {project_id}", lambda: self._sdk.projects.delete(id=project_id))

    def project_config(self, project_id: int) -> Mapping[str, Any]:
        """The project's ``parsed_label_config``."""
        project = self._call(
            f"get project {project_id}", lambda: self._sdk.projects.get(id=project_id)
        )
        return dict(project.parsed_label_config or {})

    def task_count(self, project_id: int) -> int:
        project = self._call(
            f"get project {project_id}", lambda: self._sdk.projects.get(id=project_id)
        )
        return int(project.task_number or 0)

    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> int:
        """Bulk-import tasks in one request; returns how many the server stored."""
        response = self._call(
            f"import {len(tasks)} tasks into project {project_id}",
            lambda: self._sdk.projects.import_tasks(
                id=project_id,
                request=list(tasks),
                return_task_ids=True,
                request_options={"max_retries": 0},
            ),
        )
        return int(getattr(response, "task_count", None) or len(tasks))

    def existing_run_ids(self, project_id: int, run_ids: Iterable[str]) -> set[str]:
        """Which of ``run_ids`` already are tasks of the project (by ``data.run_id``).

        Uses the server's ``in_list`` filter operator (one query per 60 ids); if
        a server refuses it, falls back to OR-ed ``equal`` filters, 16 ids a query
        (each request line stays under the 4 KB that WSGI servers accept).
        """
        wanted = list(dict.fromkeys(run_ids))
        try:
            return self._lookup(project_id, wanted, _IN_LIST_CHUNK, _in_list_filter)
        except DeliveryFailure as failure:
            if failure.kind is not FailureKind.REJECTED:
                raise
        return self._lookup(project_id, wanted, _EQUAL_CHUNK, _or_equal_filter)

    def _lookup(
        self,
        project_id: int,
        wanted: list[str],
        chunk_size: int,
        make_filter: Callable[[list[str]], dict[str, Any]],
    ) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(wanted), chunk_size):
            chunk = wanted[start : start + chunk_size]
            query = json.dumps({"filters": make_filter(chunk)}, separators=(",", ":"))

            def run(query: str = query, size: int = len(chunk)) -> set[str]:
                page = self._sdk.tasks.list(
                    project=project_id,
                    query=query,
                    page_size=size,
                    fields="task_only",
                    include="id,data",
                )
                return {str((task.data or {}).get("run_id")) for task in page.items}

            found |= self._call(f"look up run ids in project {project_id}", run) & set(chunk)
        return found


def _in_list_filter(run_ids: list[str]) -> dict[str, Any]:
    item = {
        "filter": "filter:tasks:data.run_id",
        "operator": "in_list",
        "type": "String",
        "value": run_ids,
    }
    return {"conjunction": "and", "items": [item]}


def _or_equal_filter(run_ids: list[str]) -> dict[str, Any]:
    items = [
        {"filter": "filter:tasks:data.run_id", "operator": "equal", "type": "String", "value": r}
        for r in run_ids
    ]
    return {"conjunction": "or", "items": items}


def classify(exc: BaseException, what: str, url: str) -> DeliveryFailure:
    """Turn an SDK or httpx exception into a :class:`DeliveryFailure` with a clear message."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    if isinstance(exc, ApiError):
        status = exc.status_code or 0
        retry_after = _retry_after(exc.headers or {})
        detail = _short(exc.body)
        if status in (401, 403):
            return DeliveryFailure(
                FailureKind.AUTH,
                f"Label Studio at {url} refused the API key ({status}) while trying to {what}. "
                "Set LABEL_STUDIO_API_KEY or pass api_key=... with a valid token "
                "(Account & Settings > Access Token). Tasks stay in the spool.",
                status=status,
            )
        if status == 404:
            return DeliveryFailure(
                FailureKind.NOT_FOUND,
                f"Label Studio at {url} answered 404 while trying to {what}: {detail}. "
                "Check project_id (or LABEL_STUDIO_PROJECT_ID) and url.",
                status=status,
            )
        if status in (400, 413, 422):
            return DeliveryFailure(
                FailureKind.REJECTED,
                f"Label Studio refused to {what} ({status}): {detail}",
                status=status,
            )
        return DeliveryFailure(
            FailureKind.RETRY,
            f"Label Studio at {url} answered {status} while trying to {what}: {detail}",
            status=status,
            retry_after=retry_after,
            maybe_sent=status >= 500 or status == 408,
        )
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return DeliveryFailure(
            FailureKind.RETRY, f"cannot connect to Label Studio at {url} to {what}: {exc}"
        )
    if isinstance(exc, httpx.TransportError):  # read/write timeouts, dropped connections
        return DeliveryFailure(
            FailureKind.RETRY,
            f"connection to Label Studio at {url} failed while trying to {what}: "
            f"{type(exc).__name__} {exc}",
            maybe_sent=True,
        )
    return DeliveryFailure(
        FailureKind.RETRY,
        f"unexpected error while trying to {what} at {url}: {type(exc).__name__}: {exc}",
        maybe_sent=True,
    )


def _timed_out(exc: BaseException) -> bool:
    """A read/write/pool timeout: the request may have reached the server, or still will."""
    import httpx

    return isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


def _short(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    if text.lstrip().startswith("<"):
        return "(an HTML error page)"
    return text if len(text) <= 300 else text[:300] + "..."
