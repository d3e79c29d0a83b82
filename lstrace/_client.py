"""The Label Studio client: the one module that talks HTTP, on httpx.

Delivery (the sender's imports and project look-ups) and the export (reads) both
go through :class:`LabelStudioClient`. Nothing here retries: the sender owns its
retry policy, so a bulk import is never re-posted behind its back. Every failure
comes out as one classified :class:`~lstrace._errors.DeliveryFailure`; the export
turns those into :class:`~lstrace._errors.ExportError` (``lstrace._export.server``).

The seam: the sender is given a ``connect(url, api_key, timeout)`` that returns a
:class:`Client`; offline tests hand it a fake that fails on cue.

Authentication: a legacy token is sent as ``Authorization: Token ...``. A personal
access token is a JWT refresh token: it is exchanged at ``POST /api/token/refresh/``
for a short-lived access token, sent as ``Bearer``, and exchanged again shortly
before that expires.

Everything this module uses is imported when ``lstrace`` is imported, on the
application's thread (see :func:`_warm_up_transport`): the background threads
that call it import nothing, so they cannot race an application that is
importing the same modules.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx

from lstrace import _json
from lstrace._errors import DeliveryFailure, FailureKind
from lstrace._secrets import redact_url

T = TypeVar("T")

DEFAULT_URL = "http://localhost:8080"
USER_AGENT = "lstrace"

_PROJECT_PAGE = 100  # the server's largest page of projects
# Run ids per look-up: the filter travels in the URL, and production servers cap the request
# line (gunicorn 4,094 bytes, uWSGI 4 KB, nginx 8 KB; Django's development server does not):
# 60 ids in ``in_list`` make about 3.0 KB, 16 OR-ed ``equal`` filters about 3.0 KB.
_IN_LIST_CHUNK = 60
_EQUAL_CHUNK = 16
_REFRESH_MARGIN_S = 30.0  # exchange a personal access token this long before it expires
# A server without a job queue builds an export snapshot inside the request that asks for
# it (about a millisecond a task); its background job may take 3 hours: so may this.
SNAPSHOT_TIMEOUT_S = 3 * 3600.0
_DOWNLOAD_CHUNK = 1 << 16


def server_url(url: str | None = None) -> str:
    """``url``, else ``LABEL_STUDIO_URL``, else ``http://localhost:8080``; no trailing slash."""
    return (url or os.environ.get("LABEL_STUDIO_URL") or DEFAULT_URL).rstrip("/")


def server_key(key: str | None = None) -> str | None:
    """``key``, else ``LABEL_STUDIO_API_KEY``; None when neither is set."""
    return key or os.environ.get("LABEL_STUDIO_API_KEY") or None


def encode_json(value: Any) -> bytes:
    """``value`` as a compact UTF-8 JSON request body (:func:`lstrace._json.encode`)."""
    return _json.encode(value)


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
class TaskIds:
    """One page of task ids, and how many tasks match the query in all."""

    ids: list[int]
    total: int


@dataclass(frozen=True)
class TaskCopy:
    """One task holding a run's call, as the duplicate check sees it."""

    id: int
    run_id: str
    annotations: int  # annotations of any kind (submitted or skipped) and drafts


@dataclass(frozen=True)
class TaskPage:
    """One page of tasks as plain dicts, and how many tasks match the query in all."""

    tasks: list[dict[str, Any]]
    total: int


class Client(Protocol):
    """What the sender needs from Label Studio: the seam offline tests put a fake behind.

    Every method raises :class:`~lstrace._errors.DeliveryFailure` when the request fails.
    """

    url: str

    def projects_titled(self, title: str) -> list[int]:
        """Ids, lowest first, of the projects titled exactly ``title``."""
        ...

    def create_project(self, title: str, label_config: str) -> int:
        """Create a project; returns its id."""
        ...

    def delete_project(self, project_id: int) -> None: ...

    def project(self, project_id: int) -> ProjectInfo:
        """The project's counters and ``parsed_label_config``."""
        ...

    def import_tasks(self, project_id: int, tasks: Sequence[bytes]) -> int:
        """Bulk-import tasks, each already encoded as JSON, in one request; how many were stored."""
        ...

    def existing_run_ids(self, project_id: int, run_ids: Iterable[str]) -> set[str]:
        """Which of ``run_ids`` already are tasks of the project (by ``data.run_id``)."""
        ...

    def copies(self, project_id: int, run_ids: Iterable[str]) -> list[TaskCopy]:
        """Every task of the project holding one of ``run_ids`` (duplicates included), with
        how many annotations each has."""
        ...

    def delete_tasks(self, project_id: int, task_ids: Sequence[int]) -> None:
        """Delete tasks of a project by id."""
        ...

    def close(self) -> None:
        """Close the connections the client keeps open."""
        ...


Connect = Callable[[str, str, float], Client]  # (url, api key, timeout) -> a client


def open_client(url: str, api_key: str, timeout: float) -> Client:
    """The real client (the sender's default :data:`Connect`)."""
    return LabelStudioClient(url, api_key, timeout=timeout)


class LabelStudioClient:
    """A typed client for the Label Studio endpoints lstrace uses (sender and export).

    Construction does no I/O. Raises :class:`DeliveryFailure` (``AUTH``) at once for
    a personal access token that has expired; without ``api_key`` only
    :meth:`version` works.
    """

    def __init__(self, url: str, api_key: str | None, *, timeout: float = 30.0) -> None:
        given = url.rstrip("/")
        self.url = redact_url(given)  # for messages; only httpx is given the URL as it is
        self.timeout = timeout
        self._key = api_key or None
        self._refresh_expires = _jwt_expiry(self._key) if self._key else None
        if self._refresh_expires is not None and self._refresh_expires <= time.time():
            raise _http_failure(
                401, {}, "the personal access token has expired", "authenticate", self.url
            )
        self._access: str | None = None
        self._access_expires = 0.0
        self._refresh_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=given,
            timeout=timeout,
            verify=_TLS,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    def close(self) -> None:
        """Close the connections this client keeps open."""
        self._http.close()

    # -- projects ---------------------------------------------------------------------

    def projects_titled(self, title: str) -> list[int]:
        """Ids, lowest first, of the projects titled exactly ``title`` (the server's
        ``title`` filter is a case-insensitive substring match)."""
        what = f"list projects titled {title!r}"
        found = self._pages(what, {"title": title, "include": "id,title"}, _titled(title))
        return sorted(pid for page in found for pid in page)

    def projects(self, title: str | None = None) -> Iterator[ProjectInfo]:
        """Every project the key can see, with counters (with ``title``: whose title
        contains it)."""
        params = {"title": title} if title is not None else {}
        pages = self._pages("list projects", params, _project_infos)
        return (project for page in pages for project in page)

    def _pages(
        self, what: str, params: Mapping[str, Any], read: Callable[[list[Any]], list[T]]
    ) -> Iterator[list[T]]:
        """``/api/projects/`` page by page, each page's results read by ``read``."""
        page = 1
        more = True
        while more:  # by the answer's ``next``: asking past the last page is a 404
            items, more = self._request(
                "GET",
                "/api/projects/",
                what,
                params={**params, "page": page, "page_size": _PROJECT_PAGE},
                read=lambda a: (read(a["results"] or []), bool(a["results"]) and bool(a["next"])),
            )
            yield items
            page += 1

    def create_project(self, title: str, label_config: str) -> int:
        body = encode_json({"title": title, "label_config": label_config})
        what = f"create project {title!r}"
        return self._request("POST", "/api/projects/", what, body=body, read=_id)

    def delete_project(self, project_id: int) -> None:
        what = f"delete project {project_id}"
        self._request("DELETE", f"/api/projects/{project_id}/", what, read=_nothing)

    def project(self, project_id: int) -> ProjectInfo:
        """The project's counters and ``parsed_label_config``."""
        what = f"get project {project_id}"
        return self._request("GET", f"/api/projects/{project_id}/", what, read=_project_info)

    # -- tasks ------------------------------------------------------------------------

    def import_tasks(self, project_id: int, tasks: Sequence[bytes]) -> int:
        """Bulk-import tasks, each already encoded as JSON (:func:`encode_json`), in one
        request; returns how many the server stored."""
        body = b"[" + b",".join(tasks) + b"]"
        return self._request(
            "POST",
            f"/api/projects/{project_id}/import",
            f"import {len(tasks)} tasks into project {project_id}",
            params={"return_task_ids": "true"},
            body=body,
            read=lambda answer: int(answer.get("task_count") or len(tasks)),
        )

    def existing_run_ids(self, project_id: int, run_ids: Iterable[str]) -> set[str]:
        """Which of ``run_ids`` already are tasks of the project (by ``data.run_id``).

        Uses the server's ``in_list`` filter operator (one query per 60 ids); if a
        server refuses it, falls back to OR-ed ``equal`` filters, 16 ids a query (each
        request line stays under the 4 KB that WSGI servers accept).
        """
        return self._by_run_ids(self._lookup, project_id, run_ids)

    def copies(self, project_id: int, run_ids: Iterable[str]) -> list[TaskCopy]:
        """Every task of the project whose ``data.run_id`` is one of ``run_ids``, duplicates
        included, with its count of annotations (submitted, skipped) and drafts; filtered
        as :meth:`existing_run_ids` is, a page at a time."""
        return self._by_run_ids(self._copies, project_id, run_ids)

    @staticmethod
    def _by_run_ids(
        lookup: Callable[[int, list[str], int, Callable[[list[str]], dict[str, Any]]], T],
        project_id: int,
        run_ids: Iterable[str],
    ) -> T:
        """``lookup`` with the ``in_list`` filter, 60 ids a query; if the server refuses that
        operator, with OR-ed ``equal`` filters, 16 ids a query."""
        wanted = list(dict.fromkeys(run_ids))
        try:
            return lookup(project_id, wanted, _IN_LIST_CHUNK, _in_list_filter)
        except DeliveryFailure as failure:
            if failure.kind is not FailureKind.REJECTED:
                raise
        return lookup(project_id, wanted, _EQUAL_CHUNK, _or_equal_filter)

    def _copies(
        self,
        project_id: int,
        wanted: list[str],
        chunk_size: int,
        make_filter: Callable[[list[str]], dict[str, Any]],
    ) -> list[TaskCopy]:
        found: dict[int, TaskCopy] = {}
        for start in range(0, len(wanted), chunk_size):
            chunk = wanted[start : start + chunk_size]
            query = json.dumps({"filters": make_filter(chunk)}, separators=(",", ":"))
            page, seen = 1, 0
            while True:  # by the answer's total: asking past the last page is a 404
                tasks, total = self._request(
                    "GET",
                    "/api/tasks/",
                    f"look up copies of run ids in project {project_id}",
                    params={
                        "project": project_id,
                        "query": query,
                        "page": page,
                        "page_size": 2 * len(chunk),
                        # "all" for the drafts (a task_only answer leaves them empty); the
                        # include list keeps annotations and predictions out of the answer
                        "fields": "all",
                        "include": "id,data,total_annotations,cancelled_annotations,drafts",
                    },
                    read=lambda a: (_task_copies(a["tasks"]), int(a.get("total") or 0)),
                )
                found.update((c.id, c) for c in tasks if c.run_id in chunk)
                seen += len(tasks)
                if not tasks or seen >= total:
                    break
                page += 1
        return sorted(found.values(), key=lambda c: c.id)

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
            there = self._request(
                "GET",
                "/api/tasks/",
                f"look up run ids in project {project_id}",
                params={
                    "project": project_id,
                    "query": query,
                    "page_size": len(chunk),
                    "fields": "task_only",
                    "include": "id,data",
                },
                read=_run_ids,
            )
            found |= there & set(chunk)
        return found

    def delete_tasks(self, project_id: int, task_ids: Sequence[int]) -> None:
        """Delete tasks of a project by id, in one Data Manager action."""
        body = encode_json({"selectedItems": {"all": False, "included": list(task_ids)}})
        self._request(
            "POST",
            "/api/dm/actions/",
            f"delete {len(task_ids)} tasks of project {project_id}",
            params={"id": "delete_tasks", "project": project_id},
            body=body,
            read=_nothing,
        )

    def task_page(self, project_id: int, query: Mapping[str, Any], page_size: int) -> TaskPage:
        """The first ``page_size`` tasks matching a Data Manager ``query``, with their
        annotations and predictions."""
        return self._request(
            "GET",
            "/api/tasks/",
            f"list the tasks of project {project_id}",
            params={
                "project": project_id,
                "fields": "all",
                "query": json.dumps(query),
                "page": 1,
                "page_size": page_size,
            },
            read=_task_page,
        )

    def task_ids(self, project_id: int, query: Mapping[str, Any], page_size: int) -> TaskIds:
        """The ids of the first ``page_size`` tasks matching a Data Manager ``query`` (no
        annotations or predictions: a light page), and how many match in all."""
        return self._request(
            "GET",
            "/api/tasks/",
            f"list task ids of project {project_id}",
            params={
                "project": project_id,
                "fields": "task_only",
                "include": "id",
                "query": json.dumps(query),
                "page": 1,
                "page_size": page_size,
            },
            read=lambda a: TaskIds([int(t["id"]) for t in a["tasks"]], int(a.get("total") or 0)),
        )

    # -- exports ----------------------------------------------------------------------

    def create_snapshot(self, project_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """Start an export snapshot (``POST /api/projects/{id}/exports/``): the snapshot's id,
        status and counters. A server without a job queue builds it within this request,
        which may take minutes for a large project."""
        return self._request(
            "POST",
            f"/api/projects/{project_id}/exports/",
            f"create an export snapshot of project {project_id}",
            body=encode_json(body),
            read=dict,
            timeout=SNAPSHOT_TIMEOUT_S,
        )

    def snapshot(self, project_id: int, export_id: int) -> dict[str, Any]:
        """An export snapshot's status and counters."""
        return self._request(
            "GET",
            f"/api/projects/{project_id}/exports/{export_id}",
            f"look at export snapshot {export_id} of project {project_id}",
            read=dict,
        )

    @contextlib.contextmanager
    def download_snapshot(self, project_id: int, export_id: int) -> Iterator[Iterator[bytes]]:
        """The snapshot's file as it arrives, in chunks; never held whole. A connection lost
        while reading raises :class:`DeliveryFailure` from the iteration."""
        what = f"download export snapshot {export_id} of project {project_id}"
        request = self._http.build_request(
            "GET",
            f"/api/projects/{project_id}/exports/{export_id}/download",
            headers=self._headers(what, needs_key=True, body=False),
        )
        try:
            response = self._http.send(request, stream=True)
        except Exception as exc:
            raise _network_failure(exc, what, self.url, self.timeout) from None
        try:
            if response.status_code >= 400:
                response.read()
                raise _http_failure(
                    response.status_code, response.headers, _detail(response), what, self.url
                )
            yield self._chunks(response, what)
        finally:
            response.close()

    def _chunks(self, response: httpx.Response, what: str) -> Iterator[bytes]:
        try:
            yield from response.iter_bytes(_DOWNLOAD_CHUNK)
        except httpx.HTTPError as exc:
            raise _network_failure(exc, what, self.url, self.timeout) from None

    def delete_snapshot(self, project_id: int, export_id: int) -> None:
        what = f"delete export snapshot {export_id} of project {project_id}"
        path = f"/api/projects/{project_id}/exports/{export_id}"
        self._request("DELETE", path, what, read=_nothing)

    def server_time(self) -> dt.datetime:
        """The server's clock, from the ``Date`` of an answer (whole seconds, rounded
        down); needs no key."""
        return self._request(
            "GET",
            "/api/version/",
            "read its clock",
            needs_key=False,
            answer=lambda response: email.utils.parsedate_to_datetime(response.headers["date"]),
        )

    # -- the server and its users -----------------------------------------------------

    def version(self) -> str:
        """The server's release (needs no valid key)."""
        return self._request(
            "GET",
            "/api/version/",
            "read its version",
            needs_key=False,
            read=lambda answer: str(answer.get("release") or "unknown version"),
        )

    def whoami(self) -> str:
        """The e-mail of the user the key belongs to; checks the key."""
        return self._request("GET", "/api/current-user/whoami", "check the API key", read=_name)

    def users(self) -> dict[int, str]:
        """E-mail (or user name) by user id, for naming annotators."""
        return self._request(
            "GET",
            "/api/users/",
            "list users",
            read=lambda users: {int(u["id"]): _name(u) for u in users},
        )

    # -- one request ------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        read: Callable[[Any], T] | None = None,
        params: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        needs_key: bool = True,
        timeout: float | None = None,
        answer: Callable[[httpx.Response], T] | None = None,
    ) -> T:
        """Send one request; what ``read`` makes of the answer's JSON (None when empty), or
        ``answer`` of the whole response. ``timeout`` replaces the client's for this one.

        Raises :class:`DeliveryFailure` for any failure, classified for the retry policy;
        an answer ``read`` cannot make sense of is one too.
        """
        headers = self._headers(what, needs_key=needs_key, body=body is not None)
        try:
            response = self._http.request(
                method,
                path,
                params=dict(params or {}),
                content=body,
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except Exception as exc:  # httpx's errors, and anything a transport may raise
            raise _network_failure(exc, what, self.url, timeout or self.timeout) from None
        if response.status_code >= 400:
            raise _http_failure(
                response.status_code, response.headers, _detail(response), what, self.url
            )
        try:
            if answer is not None:
                return answer(response)
            assert read is not None, "a request reads its answer's JSON or the response"
            return read(json.loads(response.content) if response.content else None)
        except (ValueError, LookupError, TypeError, AttributeError):
            detail = _detail(response)
            raise DeliveryFailure(
                FailureKind.RETRY,
                f"unexpected answer from {self.url} while trying to {what} "
                f"({response.status_code}: {detail})",
                maybe_sent=method != "GET",
                status=response.status_code,
                detail=detail,
                what=what,
                url=self.url,
            ) from None

    def _headers(self, what: str, *, needs_key: bool, body: bool) -> dict[str, str]:
        headers = {}
        if self._key is not None:
            headers["Authorization"] = self._authorization()
        elif needs_key:
            raise DeliveryFailure(
                FailureKind.AUTH,
                f"no API key for Label Studio at {self.url} to {what}",
                what=what,
                url=self.url,
            )
        if body:
            headers["Content-Type"] = "application/json"
        return headers

    def _authorization(self) -> str:
        if self._refresh_expires is None:
            return f"Token {self._key}"
        if self._access is None or self._access_expires - _REFRESH_MARGIN_S <= time.time():
            with self._refresh_lock:  # one exchange, however many threads need it at once
                if self._access is None or self._access_expires - _REFRESH_MARGIN_S <= time.time():
                    self._exchange()
        return f"Bearer {self._access}"

    def _exchange(self) -> None:
        """Exchange the personal access token (a JWT refresh token) for an access token."""
        what = "exchange the personal access token"
        try:
            response = self._http.post(
                "/api/token/refresh/",
                content=encode_json({"refresh": self._key}),
                headers={"Content-Type": "application/json"},
            )
        except Exception as exc:
            raise _network_failure(exc, what, self.url, self.timeout) from None
        if response.status_code >= 400:
            raise _http_failure(
                response.status_code, response.headers, _detail(response), what, self.url
            )
        try:
            access = str(json.loads(response.content)["access"])
        except (ValueError, KeyError, TypeError):
            raise DeliveryFailure(
                FailureKind.AUTH,
                f"Label Studio at {self.url} gave no access token for the personal access token",
                what=what,
                url=self.url,
            ) from None
        self._access = access
        self._access_expires = _jwt_expiry(access) or time.time() + 300.0


# -- the failure classifier (the only one) ---------------------------------------------


def _http_failure(
    status: int, headers: Mapping[str, str], detail: str, what: str, url: str
) -> DeliveryFailure:
    """An HTTP error answer as a :class:`DeliveryFailure` with a clear message."""
    common: dict[str, Any] = {"status": status, "detail": detail, "what": what, "url": url}
    if status in (401, 403):
        return DeliveryFailure(
            FailureKind.AUTH,
            f"Label Studio at {url} refused the API key ({status}) while trying to {what}. "
            "Set LABEL_STUDIO_API_KEY or pass api_key=... with a valid token "
            "(Account & Settings > Access Token). Tasks stay in the spool.",
            **common,
        )
    if status == 404:
        return DeliveryFailure(
            FailureKind.NOT_FOUND,
            f"Label Studio at {url} answered 404 while trying to {what}: {detail}. "
            "Check project_id (or LABEL_STUDIO_PROJECT_ID) and url.",
            **common,
        )
    if status in (400, 413, 422):
        return DeliveryFailure(
            FailureKind.REJECTED, f"Label Studio refused to {what} ({status}): {detail}", **common
        )
    return DeliveryFailure(
        FailureKind.RETRY,
        f"Label Studio at {url} answered {status} while trying to {what}: {detail}",
        retry_after=_retry_after(headers),
        maybe_sent=status >= 500 or status == 408,
        **common,
    )


def _network_failure(exc: Exception, what: str, url: str, timeout: float) -> DeliveryFailure:
    """No answer: a refused connection (nothing was sent), a lost one (maybe it was), or
    an error of the transport itself (counted as maybe sent: it cannot tell)."""
    common: dict[str, Any] = {"what": what, "url": url, "detail": type(exc).__name__}
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return DeliveryFailure(
            FailureKind.RETRY, f"cannot connect to Label Studio at {url} to {what}: {exc}", **common
        )
    if not isinstance(exc, httpx.TransportError):
        return DeliveryFailure(
            FailureKind.RETRY,
            f"unexpected error while trying to {what} at {url}: {type(exc).__name__}: {exc}",
            maybe_sent=True,
            **common,
        )
    failure = DeliveryFailure(
        FailureKind.RETRY,
        f"connection to Label Studio at {url} failed while trying to {what}: "
        f"{type(exc).__name__} {exc}",
        maybe_sent=True,
        **common,
    )
    if isinstance(exc, httpx.TimeoutException):
        # The server may still be working on it (queued behind a proxy, slow): give it as
        # long again before the sender checks what arrived, or the check misses a late
        # import and the re-send duplicates it.
        failure.retry_after = timeout
    return failure


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the sender's own backoff applies


def _detail(response: httpx.Response) -> str:
    """What the server said, on one line of at most 300 characters."""
    text = response.content.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    if isinstance(body, dict) and "detail" in body:
        errors = body.get("validation_errors")
        body = f"{body['detail']} {json.dumps(errors)}" if errors else body["detail"]
    text = body if isinstance(body, str) else json.dumps(body)
    if text.lstrip().startswith("<"):
        return "(an HTML page)"
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:300] + "..."


# -- answers ---------------------------------------------------------------------------


def _project_info(project: Mapping[str, Any]) -> ProjectInfo:
    return ProjectInfo(
        id=int(project["id"]),
        title=str(project.get("title") or ""),
        tasks=int(project.get("task_number") or 0),
        annotated_tasks=int(project.get("num_tasks_with_annotations") or 0),
        annotations=int(project.get("total_annotations_number") or 0),
        skipped=int(project.get("skipped_annotations_number") or 0),
        parsed_config=dict(project.get("parsed_label_config") or {}),
    )


def _project_infos(projects: list[Any]) -> list[ProjectInfo]:
    return [_project_info(p) for p in projects]


def _titled(title: str) -> Callable[[list[Any]], list[int]]:
    def ids(projects: list[Any]) -> list[int]:
        return [int(p["id"]) for p in projects if p["title"] == title]

    return ids


def _id(answer: Any) -> int:
    return int(answer["id"])


def _nothing(answer: Any) -> None:
    return None


def _name(user: Any) -> str:
    return str(user.get("email") or user.get("username") or user["id"])


def _run_ids(answer: Any) -> set[str]:
    return {str((task["data"] or {}).get("run_id")) for task in answer["tasks"]}


def _task_copies(tasks: list[Any]) -> list[TaskCopy]:
    return [
        TaskCopy(
            int(task["id"]),
            str((task.get("data") or {}).get("run_id")),
            int(task.get("total_annotations") or 0)
            + int(task.get("cancelled_annotations") or 0)
            + len(task.get("drafts") or []),
        )
        for task in tasks
    ]


def _task_page(answer: Any) -> TaskPage:
    """Only what an export reads of each task, and the number of matching tasks."""
    tasks = [
        {
            "id": int(task["id"]),
            "data": dict(task.get("data") or {}),
            "annotations": list(task.get("annotations") or []),
            "predictions": list(task.get("predictions") or []),
        }
        for task in answer["tasks"]
    ]
    return TaskPage(tasks, int(answer.get("total") or 0))


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


def _jwt_expiry(token: str) -> float | None:
    """A JWT's ``exp`` (0.0 when it has none: unusable); None when ``token`` is no JWT
    (a legacy token). The signature is the server's business, not checked here."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    exp = payload.get("exp")
    return float(exp) if isinstance(exp, int | float) else 0.0


# -- imports and TLS, settled on the importing thread ----------------------------------

# One SSL context for every client: loading the CA bundle takes tens of milliseconds.
_TLS = httpx.create_ssl_context()


def _warm_up_transport() -> None:
    """Load what httpx loads lazily (its transport, and what that imports) here, on the
    thread importing lstrace, never later on a background thread."""
    httpx.HTTPTransport(verify=_TLS).close()


_warm_up_transport()
