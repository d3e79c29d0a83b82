"""Which way an export reads a project: export snapshots, else pages of ``/api/tasks``.

Snapshots are the fast way (``snapshot``); a server that refuses them (an old
or restricted one, a key that may read tasks but not export) is read page by
page (``fetch``) instead, as long as nothing was read yet. Either way the
reader yields every task that has an annotation, a skip included, with its
annotations and predictions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

from lstrace._errors import SnapshotRefused
from lstrace._export.fetch import PAGE_SIZE, TaskPages, annotated_tasks
from lstrace._export.snapshot import SKIPS_ONLY, SUBMITTED, SnapshotServer, snapshot_tasks

logger = logging.getLogger("lstrace")

ProgressFn = Callable[[int, int], None]  # (tasks read so far, tasks known to come in all)


class Reader(SnapshotServer, TaskPages, Protocol):
    """What a read asks of the server (:class:`~lstrace._export.server.ReadClient` does it):
    export snapshots, else pages of tasks."""


@dataclass
class Reading:
    """How a read went: the way it took and how many tasks it read."""

    way: str = "snapshots"  # or "pages"
    tasks: int = 0
    total: int = 0
    fallback_reason: str | None = None


def annotated(
    client: Reader,
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
        try:
            tasks = _snapshots(client, project_id, reading, on_progress)
        except SnapshotRefused as refused:
            reading.fallback_reason = str(refused)
            logger.info("lstrace export: %s; reading the project page by page", refused)
        else:
            for task in tasks:
                yield True, task
            return
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
    client: Reader, project_id: int, reading: Reading, on_progress: ProgressFn | None
) -> Iterator[dict[str, Any]]:
    """Both snapshots' tasks, in id order. The server writes a snapshot in whatever order
    its database hands out the ids (on PostgreSQL, none in particular), so every task waits
    in a temporary file, one JSON line each, and is read back sorted by id: only the ids and
    their places in the file stay in memory. Both snapshots are read (and deleted) before
    the first task is handed on, so a refusal can still turn to pages without duplicates."""
    with contextlib.ExitStack() as on_failure:
        spill = on_failure.enter_context(tempfile.TemporaryFile())
        ids, offsets = array("q"), array("q")
        on_built = _counting(reading, on_progress)
        for task_filter in (SKIPS_ONLY, SUBMITTED):
            for task in snapshot_tasks(
                client, project_id, task_filter=task_filter, on_built=on_built
            ):
                ids.append(int(task["id"]))
                offsets.append(spill.tell())
                spill.write(json.dumps(task).encode() + b"\n")
                _count(reading, on_progress)
        on_failure.pop_all()  # read back: _read_back closes it
    return _read_back(spill, ids, offsets)


def _read_back(spill: IO[bytes], ids: array[int], offsets: array[int]) -> Iterator[dict[str, Any]]:
    """The spilled tasks in id order (in file order when that is id order already)."""
    with spill:
        order = sorted(range(len(ids)), key=ids.__getitem__)
        spill.seek(0)
        if all(i == n for n, i in enumerate(order)):
            for line in spill:
                yield json.loads(line)
            return
        for i in order:
            spill.seek(offsets[i])
            yield json.loads(spill.readline())


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
