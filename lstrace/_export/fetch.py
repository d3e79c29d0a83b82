"""Stream a project's annotated tasks, one page in memory at a time.

Pages are fetched by key (``id > last id seen``, ordered by id) rather than by
page number, so annotations submitted while an export runs can neither shift
a task into a page already read nor make one appear twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from lstrace._export.server import ReadClient

PAGE_SIZE = 100  # the server's default page size

ProgressFn = Callable[[int, int], None]  # (tasks read so far, tasks in all)


def annotated_tasks(
    client: ReadClient,
    project_id: int,
    *,
    page_size: int = PAGE_SIZE,
    on_page: ProgressFn | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every task with at least one annotation (a skip counts), in id order, with
    annotations and predictions: the skips are left out, and counted, by the reader."""
    last_id = 0
    read = 0
    total: int | None = None
    while True:
        page = client.task_page(project_id, task_query(last_id), page_size)
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


def task_query(after_id: int) -> dict[str, Any]:
    """The Data Manager query for annotated tasks with an id above ``after_id``.

    A task is annotated when it has annotators: ``total_annotations`` counts
    submitted annotations only, and would hide a task whose only annotation is
    a skip (the export counts that skip, and keeps it with --include-skipped).
    """
    annotated = {
        "filter": "filter:tasks:annotators",
        "operator": "empty",
        "type": "List",
        "value": False,
    }
    after = {
        "filter": "filter:tasks:id",
        "operator": "greater",
        "type": "Number",
        "value": after_id,
    }
    return {
        "filters": {"conjunction": "and", "items": [annotated, after]},
        "ordering": ["tasks:id"],
    }
