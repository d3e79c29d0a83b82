"""Which way an export reads a project: export snapshots, else pages of ``/api/tasks``.

Snapshots are the fast way (``snapshot``); a server that refuses them (an old
or restricted one, a key that may read tasks but not export) is read page by
page (``fetch``) instead, as long as nothing was read yet. Either way the
reader yields every task that has an annotation, a skip included, with its
annotations and predictions.
"""

from __future__ import annotations

import heapq
import json
import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lstrace._errors import ServerUnreachable
from lstrace._export.fetch import PAGE_SIZE, annotated_tasks
from lstrace._export.server import ReadClient
from lstrace._export.snapshot import SKIPS_ONLY, SUBMITTED, SnapshotRefused, snapshot_tasks

logger = logging.getLogger("lstrace")

ProgressFn = Callable[[int, int], None]  # (tasks read so far, tasks known to come in all)


@dataclass
class Reading:
    """How a read went: the way it took and how many tasks it read."""

    way: str = "snapshots"  # or "pages"
    tasks: int = 0
    total: int = 0
    fallback_reason: str | None = None


def annotated(
    client: ReadClient,
    project_id: int,
    reading: Reading,
    *,
    on_progress: ProgressFn | None = None,
    after_id: int = 0,
) -> Iterator[tuple[bool, dict[str, Any]]]:
    """Every annotated task of the project, in id order, each with whether the read is
    promised to be in id order there (so that it could resume after that task's id).

    ``after_id`` > 0 reads page by page from there (resuming an interrupted read).
    Raises :class:`~lstrace._errors.ExportError` when the project cannot be read: a lost
    connection or a refused key is not retried page by page.
    """
    if after_id == 0:
        read = 0
        try:
            for task in _snapshots(client, project_id, _counting(reading, on_progress)):
                read += 1
                _count(reading, on_progress)
                yield True, task
            return
        except SnapshotRefused as refused:
            if read:  # half a read cannot be completed another way without duplicates
                raise ServerUnreachable(f"{refused}, half-way through the read") from None
            reading.fallback_reason = str(refused)
            logger.info("lstrace export: %s; reading the project page by page", refused)
    reading.way = "pages"
    for task in annotated_tasks(
        client,
        project_id,
        after_id=after_id,
        page_size=PAGE_SIZE,
        on_page=on_progress,
    ):
        reading.tasks += 1
        yield True, task


def _snapshots(
    client: ReadClient, project_id: int, on_built: Callable[[int], None]
) -> Iterator[dict[str, Any]]:
    """Both snapshots' tasks merged in id order (as the server writes each, in id order):
    the tasks with skips only, usually few, wait in a temporary file meanwhile."""
    with tempfile.TemporaryFile() as spill:
        for task in snapshot_tasks(client, project_id, task_filter=SKIPS_ONLY, on_built=on_built):
            spill.write(json.dumps(task).encode() + b"\n")
        spill.seek(0)
        skips = (json.loads(line) for line in spill)
        submitted = snapshot_tasks(client, project_id, task_filter=SUBMITTED, on_built=on_built)
        yield from heapq.merge(skips, submitted, key=_task_id)


def _task_id(task: Mapping[str, Any]) -> int:
    return int(task["id"])


def _counting(reading: Reading, on_progress: ProgressFn | None) -> Callable[[int], None]:
    def built(count: int) -> None:
        reading.total += count
        if on_progress is not None:
            on_progress(reading.tasks, reading.total)

    return built


def _count(reading: Reading, on_progress: ProgressFn | None) -> None:
    reading.tasks += 1
    if on_progress is not None and (reading.tasks % 500 == 0 or reading.tasks == reading.total):
        on_progress(reading.tasks, max(reading.total, reading.tasks))
