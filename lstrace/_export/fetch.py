"""Stream a project's annotated tasks, one page in memory at a time.

Pages are fetched by key (``id > last id seen``, ordered by id) rather than by
page number, so annotations submitted while an export runs can neither shift
a task into a page already read nor make one appear twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from lstrace._client import TaskPage

PAGE_SIZE = 100  # the server's default page size

ProgressFn = Callable[[int, int], None]  # (tasks read so far, tasks in all)


class TaskPages(Protocol):
    """The one call a page-by-page read makes (:class:`~lstrace._export.server.ReadClient`'s)."""

    def task_page(self, project_id: int, query: Mapping[str, Any], page_size: int) -> TaskPage: ...


def annotated_tasks(
    client: TaskPages,
    project_id: int,
    *,
    after_id: int = 0,
    updated_since: str | None = None,
    page_size: int = PAGE_SIZE,
    on_page: ProgressFn | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every task with at least one annotation (a skip counts), in id order, with
    annotations and predictions: the skips are left out, and counted, by the reader.

    ``after_id``: only tasks with a higher id; ``updated_since``: only tasks Label Studio
    updated (an annotation added, changed or deleted) at or after that time, in the
    Data Manager's format (:func:`server_time`).
    """
    last_id = after_id
    read = 0
    total: int | None = None
    while True:
        page = client.task_page(project_id, task_query(last_id, updated_since), page_size)
        if total is None:
            total = page.total
        fresh = [t for t in page.tasks if t["id"] > last_id]
        read += len(fresh)
        if on_page is not None:
            on_page(read, max(total, read))
        if not fresh:
            return
        last_id = max(t["id"] for t in fresh)
        yield from fresh
        if len(page.tasks) < page_size:
            return


def task_query(
    after_id: int, updated_since: str | None = None, *, annotators: bool = True
) -> dict[str, Any]:
    """The Data Manager query for annotated tasks with an id above ``after_id``.

    A task is annotated when it has annotators: ``total_annotations`` counts
    submitted annotations only, and would hide a task whose only annotation is
    a skip (the export counts that skip, and keeps it with --include-skipped).
    With ``annotators=False``, the tasks without any annotation instead.
    """
    annotated = {
        "filter": "filter:tasks:annotators",
        "operator": "empty",
        "type": "List",
        "value": not annotators,
    }
    after = {
        "filter": "filter:tasks:id",
        "operator": "greater",
        "type": "Number",
        "value": after_id,
    }
    items = [annotated, after]
    if updated_since is not None:
        items.append(
            {
                "filter": "filter:tasks:updated_at",
                "operator": "greater_or_equal",
                "type": "Datetime",
                "value": updated_since,
            }
        )
    return {"filters": {"conjunction": "and", "items": items}, "ordering": ["tasks:id"]}


def with_after_id(query: Mapping[str, Any], after_id: int) -> dict[str, Any]:
    """``query`` (made by :func:`task_query`) asking for ids above ``after_id`` instead."""
    items = [
        {**item, "value": after_id} if item.get("filter") == "filter:tasks:id" else item
        for item in query["filters"]["items"]
    ]
    return {**query, "filters": {**query["filters"], "items": items}}
