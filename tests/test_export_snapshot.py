"""Export snapshots without a server: the streaming parse, waiting for a snapshot the
server builds in the background, and clean-up when a read fails. A fake behind the
snapshot seam (``SnapshotServer``) plays the server; the same paths run against a real
Label Studio in tests/live/test_export_live.py and through cassettes in test_export.py."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest

from lstrace._client import LabelStudioClient, TaskPage
from lstrace._errors import DeliveryFailure, FailureKind, ServerUnreachable, SnapshotRefused
from lstrace._export.read import Reading, annotated
from lstrace._export.server import ReadClient
from lstrace._export.snapshot import (
    SKIPS_ONLY,
    SUBMITTED,
    SnapshotServer,
    parse_tasks,
)
from lstrace._export.snapshot import snapshot_tasks as one_snapshot


def snapshot_tasks(server: SnapshotServer, project_id: int, **options: Any) -> Iterator[Any]:
    """Both snapshots of one read, as lstrace._export.read makes them."""
    for phase in (SKIPS_ONLY, SUBMITTED):
        yield from one_snapshot(server, project_id, task_filter=phase, **options)


def test_tasks_are_parsed_one_at_a_time_across_any_chunking() -> None:
    """A JSON array split anywhere (mid-string, mid-number, mid-escape) yields the same
    tasks; a task is handed out as soon as its last byte arrived."""
    tasks = [
        {"id": i, "data": {"prompt": f'q\u00e9 {i} "quoted"'}, "score": i / 3} for i in range(1, 40)
    ]
    raw = json.dumps(tasks).encode()
    for size in (1, 7, 64, len(raw)):
        chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
        assert list(parse_tasks(chunks)) == tasks
    first = json.dumps(tasks[0]).encode()
    stream = parse_tasks(iter([b"[" + first + b",", b"{"]))
    assert next(stream) == tasks[0]  # before the rest of the file has come


class FakeSnapshots:
    """Plays the snapshot endpoints: built in the background after ``builds`` looks."""

    def __init__(self, files: Mapping[str, list[dict[str, Any]]], builds: int = 0) -> None:
        self.files = files
        self.builds = builds
        self.created: list[dict[str, Any]] = []
        self.deleted: list[int] = []
        self.looks = 0
        self.fail_download = False

    def _status(self) -> str:
        return "completed" if self.looks >= self.builds else "in_progress"

    def create_snapshot(self, project_id: int, body: Mapping[str, Any]) -> Mapping[str, Any]:
        self.created.append(dict(body))
        return {"id": len(self.created), "status": self._status(), "counters": {"task_number": 2}}

    def snapshot(self, project_id: int, export_id: int) -> Mapping[str, Any]:
        self.looks += 1
        return {"id": export_id, "status": self._status()}

    @contextlib.contextmanager
    def download_snapshot(self, project_id: int, export_id: int) -> Iterator[Iterable[bytes]]:
        body = self.created[export_id - 1]["task_filter_options"]
        key = "skips" if body == SKIPS_ONLY else "submitted"
        raw = json.dumps(self.files[key]).encode()
        if self.fail_download:
            raise ServerUnreachable("the connection broke")
        yield [raw[:10], raw[10:]]

    def delete_snapshot(self, project_id: int, export_id: int) -> None:
        self.deleted.append(export_id)


def test_skip_only_tasks_then_the_rest_and_every_snapshot_deleted() -> None:
    """One read is two snapshots (tasks with skips only, then tasks with a submitted
    annotation), each asking for predictions in full; both are deleted once read."""
    server = FakeSnapshots({"skips": [{"id": 4}], "submitted": [{"id": 1}, {"id": 7}]})
    built: list[int] = []
    assert [t["id"] for t in snapshot_tasks(server, 3, on_built=built.append)] == [4, 1, 7]
    assert built == [2, 2]  # what each snapshot's counters said
    assert [body["task_filter_options"] for body in server.created] == [SKIPS_ONLY, SUBMITTED]
    assert all(
        body["serialization_options"]["predictions"] == {"only_id": False}
        for body in server.created
    )
    assert server.deleted == [1, 2]


def test_a_snapshot_built_in_the_background_is_waited_for() -> None:
    """A server with a job queue answers `in_progress`: the read looks again, waiting a
    little longer each time, until the snapshot is complete."""
    server = FakeSnapshots({"skips": [], "submitted": [{"id": 1}]}, builds=4)
    waits: list[float] = []
    assert [t["id"] for t in snapshot_tasks(server, 3, sleep=waits.append)] == [1]
    assert waits == [0.2, 0.4, 0.8, 1.6]


def test_a_failed_read_still_deletes_its_snapshot() -> None:
    """A download that breaks, a consumer that stops early, or a snapshot the server
    could not build (a refusal: the export then reads pages): the error reaches the
    caller and no snapshot is left behind."""
    server = FakeSnapshots({"skips": [], "submitted": [{"id": 1}]})
    server.fail_download = True
    with pytest.raises(ServerUnreachable, match="connection broke"):
        list(snapshot_tasks(server, 3))
    assert server.deleted == [1]

    server = FakeSnapshots({"skips": [{"id": 4}, {"id": 5}], "submitted": []})
    with contextlib.closing(one_snapshot(server, 3, task_filter=SKIPS_ONLY)) as tasks:
        assert next(tasks)["id"] == 4
    assert server.deleted == [1]

    class Failing(FakeSnapshots):
        def snapshot(self, project_id: int, export_id: int) -> Mapping[str, Any]:
            return {"id": export_id, "status": "failed"}

    server = Failing({"skips": [], "submitted": []}, builds=1)
    with pytest.raises(SnapshotRefused, match="could not build an export snapshot"):
        list(snapshot_tasks(server, 3, sleep=lambda _: None))
    assert server.deleted == [1]


class FakeReader(FakeSnapshots):
    """Snapshots that fail on cue, and pages of ``/api/tasks`` (every task in one page)."""

    def __init__(self, files: Mapping[str, list[dict[str, Any]]], fail: Exception | None) -> None:
        super().__init__(files)
        self.fail = fail
        self.pages = 0

    def create_snapshot(self, project_id: int, body: Mapping[str, Any]) -> Mapping[str, Any]:
        if body["task_filter_options"] == SUBMITTED and self.fail is not None:
            raise self.fail
        return super().create_snapshot(project_id, body)

    def task_page(self, project_id: int, query: Mapping[str, Any], page_size: int) -> TaskPage:
        self.pages += 1
        tasks = sorted(self.files["skips"] + self.files["submitted"], key=lambda t: t["id"])
        after = next(i["value"] for i in query["filters"]["items"] if "tasks:id" in i["filter"])
        fresh = [t for t in tasks if t["id"] > after]
        return TaskPage(fresh, len(tasks))


def test_only_a_refusal_before_any_task_was_read_falls_back_to_pages() -> None:
    """A refused snapshot before any task was handed on (also after the first snapshot was
    read): the read goes page by page, each task once, and says why. A lost connection is
    an error: pages would not get through either."""
    refused = SnapshotRefused("Label Studio at x answered 405 while trying to create one")
    reader = FakeReader({"skips": [], "submitted": [{"id": 1}, {"id": 2}]}, refused)
    reading = Reading()
    assert [t["id"] for _, t in annotated(reader, 3, reading)] == [1, 2]
    assert (reading.way, reading.fallback_reason, reader.pages) == ("pages", str(refused), 1)

    reader = FakeReader({"skips": [{"id": 1}], "submitted": [{"id": 2}]}, refused)
    tasks = [t["id"] for _, t in annotated(reader, 3, Reading())]
    assert tasks == [1, 2] and reader.deleted == [1]  # the skips' snapshot, read, not yielded

    lost = ServerUnreachable("cannot reach Label Studio at x")
    reader = FakeReader({"skips": [], "submitted": [{"id": 2}]}, lost)
    with pytest.raises(ServerUnreachable, match="cannot reach"):
        list(annotated(reader, 3, Reading()))
    assert reader.pages == 0


def test_tasks_are_handed_on_in_id_order_whatever_order_the_server_wrote() -> None:
    """A server on PostgreSQL writes a snapshot in no particular order: the read hands on
    the tasks of both snapshots sorted by id (each once, whole), as paging would."""
    skips: list[dict[str, Any]] = [{"id": 9, "annotations": [{"was_cancelled": True}]}, {"id": 2}]
    submitted = [{"id": i, "data": {"prompt": f"q{i}", "score": i / 4}} for i in (7, 1, 12, 3)]
    reader = FakeReader({"skips": skips, "submitted": submitted}, fail=None)
    reading = Reading()
    tasks = [t for _, t in annotated(reader, 3, reading)]
    assert [t["id"] for t in tasks] == [1, 2, 3, 7, 9, 12]
    assert tasks[0] == submitted[1] and tasks[4] == skips[0]
    assert (reading.way, reading.tasks, reader.pages, reader.deleted) == ("snapshots", 6, 0, [1, 2])


@pytest.mark.parametrize(("status", "hinted"), [(500, True), (502, True), (405, False)])
def test_a_server_error_on_a_snapshot_build_names_the_likely_timeout(
    monkeypatch: pytest.MonkeyPatch, status: int, hinted: bool
) -> None:
    """A snapshot the server failed to build (5xx: without a job queue it builds inside the
    request, and a worker timeout kills a large project's) is refused with a hint at that
    timeout; other refusals (an old server's 405) are described as they are. (Seen live at
    100,000 tasks on PostgreSQL behind gunicorn; tests/live/test_export_live.py has the 500.)"""
    url = "http://127.0.0.1:9"

    def fail(*args: object, **kwargs: object) -> None:
        raise DeliveryFailure(
            FailureKind.RETRY,
            f"Label Studio at {url} answered {status}",
            status=status,
            url=url,
            what="create an export snapshot of project 1",
        )

    monkeypatch.setattr(LabelStudioClient, "create_snapshot", fail)
    with pytest.raises(SnapshotRefused) as refused:
        ReadClient(url, "key").create_snapshot(1, {})
    assert f"answered {status} while trying to create an export snapshot" in str(refused.value)
    assert ("often the server's worker or proxy timeout" in str(refused.value)) is hinted
