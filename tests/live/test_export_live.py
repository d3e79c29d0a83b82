"""Export at scale against a real Label Studio (``pytest -m live tests/live/test_export_live.py``).

The session's server of each backend (SQLite development server, PostgreSQL behind gunicorn
workers) gets a project of 3,000 tasks in lstrace's layout by bulk import, 2,500 of them
annotated inline (edits, ratings, skips). The exports must read all of them through
export snapshots (or page by page from a server that refuses those, writing rows while the
pages still arrive), in task id order, and match what the annotations say; --since last
must read only what changed. Time and memory figures come from ``benchmarks/bench_export.py``.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from lstrace._errors import AuthFailed, ExportError, ServerUnreachable
from lstrace._export import incremental
from lstrace._export.server import ReadClient, TaskPage
from lstrace.export import export_project
from tests.annotated_project import (
    GROUPS,
    expected_rating,
    is_edited,
    is_skipped,
    seed_project,
    textarea,
)
from tests.live.fault_proxy import FaultProxy
from tests.servers import Server, selected_backends

pytestmark = pytest.mark.live

TOKEN = "0123456789abcdef0123456789abcdef01234567"
ANNOTATED = 2_500
UNANNOTATED = 500


@pytest.fixture(scope="module", params=selected_backends())
def server(request: pytest.FixtureRequest) -> str:
    """The URL of the session's server of each selected backend in turn."""
    return str(request.getfixturevalue(f"{request.param}_session").url)


@pytest.fixture(scope="module")
def project(server: str) -> int:
    return seed_project(server, TOKEN, "Export paging", ANNOTATED, UNANNOTATED)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- the tests -------------------------------------------------------------------------------


def test_sft_reads_every_annotated_task_from_snapshots_in_id_order(
    server: str, project: int, tmp_path: Path
) -> None:
    """sft reads the 2,500 annotated tasks (250 with a skip only, counted) through two
    export snapshots and writes them in task id order, on both backends (PostgreSQL writes
    a snapshot's tasks in no particular order), with the progress of the read."""
    out = tmp_path / "sft.jsonl"
    progress = io.StringIO()
    result = export_project(project, "sft", out, url=server, api_key=TOKEN, progress=progress)
    kept = [i for i in range(ANNOTATED) if not is_skipped(i)]
    assert (result.read, result.rows, result.tasks) == ("snapshots", len(kept), ANNOTATED)
    assert [row["completion"] for row in lines(out)] == [
        f"Edited answer {i}." if is_edited(i) else f"Answer {i}." for i in kept
    ]
    assert progress.getvalue().splitlines()[-1].endswith("2500/2500 tasks read (100 %)")


def test_a_server_refusing_snapshots_is_read_page_by_page(
    sqlite_server: Server, proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that answers 405 to export snapshots (here a proxy in front of the real
    one) is read page by page instead: the same rows, written while pages still arrive."""
    project = seed_project(sqlite_server.url, TOKEN, "Export refused", 400, 20)
    by_snapshots = tmp_path / "snapshots.jsonl"
    export_project(project, "ratings", by_snapshots, url=sqlite_server.url, api_key=TOKEN)
    out = tmp_path / "pages.jsonl"
    partial = tmp_path / ".pages.jsonl.partial"
    written_at_fetch: list[int] = []
    real_page = ReadClient.task_page

    def spying(self: ReadClient, *args: Any, **kwargs: Any) -> TaskPage:
        written_at_fetch.append(partial.stat().st_size if partial.exists() else 0)
        return real_page(self, *args, **kwargs)

    monkeypatch.setattr(ReadClient, "task_page", spying)
    proxy.fail_next(1, status=405, path="/exports", method="POST")
    result = export_project(project, "ratings", out, url=proxy.url, api_key=TOKEN)
    assert result.read.startswith("pages (export snapshots refused: Label Studio at ")
    assert "answered 405 while trying to create an export snapshot" in result.read
    assert out.read_text(encoding="utf-8") == by_snapshots.read_text(encoding="utf-8")
    assert len(written_at_fetch) == 5 and written_at_fetch[-1] > 0  # 4 pages of 100, then none
    # a server error on the snapshot's build (a worker timeout, on a large project) says so
    proxy.fail_next(1, status=500, path="/exports", method="POST")
    result = export_project(project, "ratings", out, url=proxy.url, api_key=TOKEN)
    assert result.read.startswith("pages (export snapshots refused: Label Studio at ")
    assert "often the server's worker or proxy timeout" in result.read
    assert out.read_text(encoding="utf-8") == by_snapshots.read_text(encoding="utf-8")


@pytest.mark.parametrize("fault", ["connection lost", "key refused"])
def test_a_lost_connection_or_a_refused_key_is_not_read_page_by_page(
    sqlite_server: Server, proxy: FaultProxy, tmp_path: Path, fault: str
) -> None:
    """Only a refusal of the snapshot itself falls back to pages: a connection lost on the
    snapshot request, or the key refused there (401), fails the export with its own error
    and exit code, and no page of tasks is asked for."""
    project = seed_project(sqlite_server.url, TOKEN, f"Export {fault}", 20, 0)
    if fault == "connection lost":
        proxy.drop_next(1, path="/exports", method="POST")
        error: type[ExportError] = ServerUnreachable
    else:
        proxy.fail_next(1, status=401, path="/exports", method="POST")
        error = AuthFailed
    out = tmp_path / "sft.jsonl"
    with pytest.raises(error, match="create an export snapshot") as raised:
        export_project(project, "sft", out, url=proxy.url, api_key=TOKEN)
    assert raised.value.exit_code == (3 if fault == "connection lost" else 4)
    assert proxy.pending() == 0 and proxy.counts["/api/tasks/"] == 0
    assert not out.exists()


def test_since_last_reads_only_the_tasks_changed_since_the_last_run(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--since last on 1,000 annotated tasks: the first run reads them all (snapshots), the
    second, after three new annotations, just those three (pages), and writes the same
    dataset as a full export."""
    from label_studio_sdk import LabelStudio  # noqa: PLC0415 - slow; only this test needs it

    monkeypatch.setattr(incremental, "MARGIN_S", 0)
    project = seed_project(server, TOKEN, "Export incremental", 1_000, 10)
    time.sleep(1.1)  # the watermark has the server clock's one-second steps: pass the last one
    out = tmp_path / "sft.jsonl"
    first = export_project(project, "sft", out, url=server, api_key=TOKEN, since="last")
    assert first.read_tasks == 1_000 and first.read.endswith("by snapshots")
    sdk: Any = LabelStudio(base_url=server, api_key=TOKEN)  # type: ignore[no-untyped-call]
    fresh = [t.id for t in sdk.tasks.list(project=project)][-3:]
    for task_id in fresh:
        sdk.annotations.create(id=task_id, result=[textarea(f"New {task_id}.")])
    time.sleep(1.1)
    second = export_project(project, "sft", out, url=server, api_key=TOKEN, since="last")
    assert second.read_tasks == 3 and second.read.endswith("by pages")
    full = tmp_path / "full.jsonl"
    export_project(project, "sft", full, url=server, api_key=TOKEN)
    assert out.read_text(encoding="utf-8") == full.read_text(encoding="utf-8")
    assert second.rows == first.rows + 3


def test_ratings_with_skips_has_one_row_per_annotation(
    server: str, project: int, tmp_path: Path
) -> None:
    """ratings with skipped annotations: all 2,500 annotated tasks, none of the 500 others."""
    out = tmp_path / "ratings.jsonl"
    result = export_project(
        project, "ratings", out, url=server, api_key=TOKEN, include_skipped=True
    )
    rows = lines(out)
    assert result.rows == len(rows) == ANNOTATED
    assert sum(row["skipped"] for row in rows) == sum(map(is_skipped, range(ANNOTATED)))
    assert len({row["run_id"] for row in rows}) == ANNOTATED
    assert all(
        row["rating"] == (None if is_skipped(i) else expected_rating(i))
        for i, row in enumerate(rows)
    )


def test_preference_pairs_edits_and_ratings_across_pages(
    server: str, project: int, tmp_path: Path
) -> None:
    """preference: one pair per edit, plus one per differently rated pair of answers to the
    same prompt, even when the two answers sit on different pages."""
    out = tmp_path / "preference.jsonl"
    result = export_project(project, "preference", out, url=server, api_key=TOKEN)
    kept = [i for i in range(ANNOTATED) if not is_skipped(i)]
    edits = sum(map(is_edited, kept))
    by_prompt: dict[int, list[int]] = {}
    for i in kept:
        by_prompt.setdefault(i % GROUPS, []).append(expected_rating(i))
    ranked = sum(sum(1 for a in stars for b in stars if a > b) for stars in by_prompt.values())
    rows = lines(out)
    assert result.rows == len(rows) == edits + ranked
    a, b = 1, 1 + 3 * GROUPS  # one prompt, about 15 pages apart
    assert expected_rating(a) != expected_rating(b)
    better, worse = (a, b) if expected_rating(a) > expected_rating(b) else (b, a)
    pair = {"prompt": "Question 1?", "chosen": f"Answer {better}.", "rejected": f"Answer {worse}."}
    assert pair in rows
