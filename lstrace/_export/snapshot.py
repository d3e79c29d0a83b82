"""Read a project through Label Studio's export snapshots, parsed as a stream.

An export snapshot (``POST /api/projects/{id}/exports``) has the server write
the project's tasks, with annotations and predictions, to a file in one pass
(in batches: the server does not hold the project in memory either); lstrace
downloads that file and parses it task by task with ijson, so memory stays
flat whatever the project's size. This is Label Studio's own way of exporting
large projects, and several times faster than paging ``/api/tasks``.

Two snapshots make one read (``lstrace._export.read`` merges them in id order):
the tasks whose annotations are all skips (few, usually; the export counts them,
and keeps them with ``--include-skipped``) and the tasks with at least one
submitted annotation: Label Studio's task filters cannot ask for both at once.
A snapshot is deleted once read, also when the read fails.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, Protocol

import ijson

from lstrace._errors import ExportError, ServerUnreachable, SnapshotRefused

logger = logging.getLogger("lstrace")

TITLE = "lstrace export (temporary; deleted when read)"
# The server's own filters (data_export/serializers.py, TaskFilterOptionsSerializer).
SKIPS_ONLY = {"skipped": "only", "annotated": "exclude"}
SUBMITTED = {"annotated": "only"}
# Predictions hold the model's answer: the snapshot must expand them (the default is ids).
SERIALIZATION = {
    "predictions": {"only_id": False},
    "drafts": {"only_id": True},
    "annotations__completed_by": {"only_id": True},
}
POLL_S = (0.2, 5.0)  # first and longest wait between looks at a snapshot still being built
BUILD_TIMEOUT_S = 3 * 3600.0  # the server gives its background export job 3 hours


class SnapshotServer(Protocol):
    """The snapshot endpoints. An answer refusing a snapshot raises :class:`SnapshotRefused`;
    any other failure (no connection, a refused key) an :class:`~lstrace._errors.ExportError`."""

    def create_snapshot(
        self, project_id: int, body: Mapping[str, Any]
    ) -> Mapping[str, Any]:  # the snapshot: id, status, counters
        ...

    def snapshot(self, project_id: int, export_id: int) -> Mapping[str, Any]: ...

    def download_snapshot(
        self, project_id: int, export_id: int
    ) -> contextlib.AbstractContextManager[Iterable[bytes]]:
        """The snapshot file, as chunks of bytes."""
        ...

    def delete_snapshot(self, project_id: int, export_id: int) -> None: ...


def snapshot_body(task_filter: Mapping[str, Any]) -> dict[str, Any]:
    """The request that creates one snapshot of the tasks ``task_filter`` selects."""
    return {
        "title": TITLE,
        "task_filter_options": dict(task_filter),
        "serialization_options": SERIALIZATION,
    }


def snapshot_tasks(
    server: SnapshotServer,
    project_id: int,
    *,
    task_filter: Mapping[str, Any],
    on_built: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Generator[dict[str, Any], None, None]:
    """The tasks ``task_filter`` selects (:data:`SKIPS_ONLY` or :data:`SUBMITTED`), from one
    snapshot deleted once read; ``on_built`` hears how many tasks it holds. Raises
    :class:`ExportError` when the server cannot make or serve the snapshot."""
    made = server.create_snapshot(project_id, snapshot_body(task_filter))
    export_id = int(made["id"])
    try:
        built = _wait_until_built(server, project_id, made, sleep)
        if on_built is not None:
            on_built(int((built.get("counters") or {}).get("task_number") or 0))
        with server.download_snapshot(project_id, export_id) as chunks:
            yield from parse_tasks(chunks)
    finally:
        with contextlib.suppress(ExportError, SnapshotRefused):  # left behind: only clutter
            server.delete_snapshot(project_id, export_id)


def _wait_until_built(
    server: SnapshotServer,
    project_id: int,
    snapshot: Mapping[str, Any],
    sleep: Callable[[float], None],
) -> Mapping[str, Any]:
    """Servers without a job queue build the snapshot within the POST; others in the
    background, so look until it is done. Returns the built snapshot."""
    wait, deadline = POLL_S[0], time.monotonic() + BUILD_TIMEOUT_S
    while snapshot.get("status") != "completed":
        if snapshot.get("status") == "failed":
            raise SnapshotRefused(
                f"Label Studio could not build an export snapshot of project {project_id} "
                "(status failed; its log says why)"
            )
        if time.monotonic() > deadline:
            raise ServerUnreachable(
                f"Label Studio took over {BUILD_TIMEOUT_S / 3600:.0f} hours to build an export "
                f"snapshot of project {project_id}; is its job queue running?"
            )
        sleep(wait)
        wait = min(wait * 2, POLL_S[1])
        snapshot = server.snapshot(project_id, int(snapshot["id"]))
    return snapshot


def parse_tasks(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The items of a JSON array arriving in chunks, one at a time (ijson's push parser:
    only the task being parsed is in memory). Numbers with a fraction become floats."""
    found: list[dict[str, Any]] = ijson.sendable_list()
    parser = ijson.items_coro(found, "item", use_float=True)
    for chunk in chunks:
        if not chunk:
            continue  # an empty send means end of input to ijson
        parser.send(chunk)
        yield from found
        del found[:]
    parser.close()
    yield from found
