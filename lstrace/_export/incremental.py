"""``--since last``: read only what changed since the last run, write the whole dataset.

A run (1) brings the output's state (``state``) up to date with Label Studio:
the first run reads every annotated task (snapshots, like a full export), later
runs page through the tasks the server updated since the last watermark, and
drop from the state the tasks that lost their annotations or were deleted;
then (2) writes the output from the state, in task id order, so it is what a
full export would write. The watermark moves only once a read is complete, and
a read stores its tasks as it goes: an interrupted run is resumed by the next.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lstrace._export.annotations import Controls, Filters, Review, Tally, review_task
from lstrace._export.fetch import PAGE_SIZE, annotated_tasks, task_query
from lstrace._export.read import ProgressFn, Reading, annotated
from lstrace._export.server import ProjectInfo, ReadClient
from lstrace._export.sink import Rows
from lstrace._export.state import ExportState, Read

logger = logging.getLogger("lstrace")

CHUNK = 200  # tasks stored per transaction: a crash loses at most this much reading
# The watermark is the server's clock at the start of a read, minus this margin, for
# annotations saved in requests that were still running when the read began.
MARGIN_S = 60


@dataclass
class Update:
    """What bringing the state up to date did."""

    read: Read
    reading: Reading = field(default_factory=Reading)
    changed: int = 0  # tasks read and stored
    forgotten: int = 0  # tasks dropped: no annotation left, or deleted
    reset_because: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """``read 12 tasks changed since ...``: for the summary line."""
        if self.read.since is None:
            what = f"read all {self.changed} annotated tasks"
        else:
            what = f"read {self.changed} tasks changed since {self.read.since}"
        if self.read.resumed:
            what += " (resuming an interrupted read)"
        if self.forgotten:
            what += f", dropped {self.forgotten} no longer annotated"
        if self.reset_because:
            what += f" (the stored state was not reused: {'; '.join(self.reset_because)})"
        return what


def update(
    client: ReadClient,
    info: ProjectInfo,
    state: ExportState,
    reset_because: list[str],
    controls: Controls,
    filters: Filters,
    users: dict[int, str],
    on_progress: ProgressFn | None,
) -> Update:
    """Read what changed into ``state``; returns what was done."""
    read = state.next_read(client.server_time(margin_s=MARGIN_S))
    done = Update(read, reset_because=reset_because)
    chunk: list[tuple[int, str, list[Review], Tally]] = []
    after, disordered = read.after_id, False
    for ordered, task in _changed(client, info, read, done.reading, on_progress):
        task_id = int(task["id"])
        if ordered and not disordered:  # a read can resume after the last id it stored
            disordered = task_id < after  # ... only while the ids come in order
            after = max(after, task_id)
        chunk.append((task_id, *review_task(task, controls, filters, users)))
        if len(chunk) >= CHUNK:
            state.store(chunk, after_id=0 if disordered else after)
            done.changed += len(chunk)
            chunk = []
    state.store(chunk, after_id=0 if disordered else after)
    done.changed += len(chunk)
    if read.since is not None:
        done.forgotten = _forget_unannotated(client, info.id, state, read.since)
    done.forgotten += _forget_deleted(client, info.id, state)
    state.complete(read)
    return done


def _changed(
    client: ReadClient,
    info: ProjectInfo,
    read: Read,
    reading: Reading,
    on_progress: ProgressFn | None,
) -> Iterator[tuple[bool, dict[str, Any]]]:
    """The tasks this read covers; whether each continues an id-ordered read."""
    if read.since is None:  # everything: the fast way, as a full export reads
        yield from annotated(
            client, info.id, reading, on_progress=on_progress, after_id=read.after_id
        )
        return
    reading.way = "pages"
    for task in annotated_tasks(
        client,
        info.id,
        after_id=read.after_id,
        updated_since=read.since,
        page_size=PAGE_SIZE,
        on_page=on_progress,
    ):
        reading.tasks += 1
        yield True, task


def _forget_unannotated(client: ReadClient, project_id: int, state: ExportState, since: str) -> int:
    """Tasks updated since the watermark that have no annotation left (all deleted)."""
    gone = client.task_ids(project_id, task_query(0, since, annotators=False))
    return state.forget(set(gone) & state.task_ids())


def _forget_deleted(client: ReadClient, project_id: int, state: ExportState) -> int:
    """Deleted tasks change no ``updated_at``: when the server counts fewer annotated tasks
    than the state holds, list the annotated ids and drop the others."""
    there = client.count_tasks(project_id, task_query(0))
    if there >= state.count():
        return 0
    kept = set(client.task_ids(project_id, task_query(0)))
    return state.forget(state.task_ids() - kept)


def write(state: ExportState, rows: Rows) -> None:
    """The whole dataset, from the state, in task id order."""
    for _task_id, run_id, found, tally in state.stored():
        rows.add(run_id, found, tally)
