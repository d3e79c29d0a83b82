"""Export a project's reviewed LLM calls as training or evaluation data.

The Python side of ``lstrace export``::

    from lstrace.export import export_project

    result = export_project("Support bot", "sft", "sft.jsonl", min_rating=4)
    print(result.rows, "rows")

Tasks are streamed from Label Studio's export snapshots (or a page at a time,
from servers that refuse those) and rows are written as they come, so a
project of any size exports in flat memory.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from lstrace._client import server_key, server_url
from lstrace._errors import (
    AuthFailed,
    BadRequest,
    ExportError,
    NothingToExport,
    ServerUnreachable,
)
from lstrace._export import incremental
from lstrace._export.annotations import POLICIES, Controls, Filters, Tally, parse_since, review_task
from lstrace._export.formats import FORMATS, MAX_PAIRS_PER_PROMPT, Writer, make_writer
from lstrace._export.output import opened, writes_through
from lstrace._export.read import ProgressFn, Reading, annotated
from lstrace._export.server import ProjectInfo, ReadClient
from lstrace._export.sink import Rows
from lstrace._export.state import ExportState, identity
from lstrace._export.state import default_path as default_state_path

__all__ = [
    "FORMATS",
    "POLICIES",
    "AuthFailed",
    "BadRequest",
    "ExportError",
    "ExportResult",
    "NothingToExport",
    "ServerUnreachable",
    "export_project",
]

logger = logging.getLogger("lstrace")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote, and what it read but left out (reason -> count)."""

    project_id: int
    project_title: str
    format: str
    output: str  # a path, or "-" for standard output
    rows: int
    tasks: int  # annotated tasks the dataset comes from
    annotations: int  # annotations on them
    used: int  # annotations that passed the filters
    dropped: dict[str, int] = field(default_factory=dict)
    ignored_result_types: dict[str, int] = field(default_factory=dict)
    read: str = ""  # how this run read Label Studio, in words
    read_tasks: int = 0  # tasks this run read from Label Studio
    state: str | None = None  # the state file of an incremental export


def export_project(
    project: str | int,
    format: str,
    output: str | Path | TextIO = "-",
    *,
    url: str | None = None,
    api_key: str | None = None,
    as_csv: bool | None = None,
    min_rating: float | None = None,
    include_skipped: bool = False,
    since: dt.datetime | dt.date | str | None = None,
    state: str | Path | None = None,
    dedupe: bool = True,
    annotator_policy: str = "latest",
    max_pairs_per_prompt: int = MAX_PAIRS_PER_PROMPT,
    progress: bool | TextIO = False,
) -> ExportResult:
    """Write the annotated tasks of ``project`` (title or id) in ``format`` to ``output``.

    ``format``: ``sft``, ``preference`` or ``ratings`` (JSON lines; CSV when
    ``as_csv`` or when ``output`` ends in ``.csv``). ``annotator_policy``
    decides between several annotations of one task: ``latest`` (the last
    updated, the default), ``first`` or ``all``; skipped annotations are left
    out first unless ``include_skipped``, then ``since`` (annotation last
    updated at or after it; naive values are UTC) and ``min_rating`` apply.
    ``dedupe`` keeps one task per ``run_id``. ``preference`` pairs each edit
    with the model's answer, and answers to one prompt by rating, at most
    ``max_pairs_per_prompt`` (best-rated first). A regular file ``output`` is
    written under a temporary name and renamed when complete (anything else,
    a FIFO or a device, is written through); ``progress`` (True for stderr, or
    a stream) reports the tasks read.

    ``since="last"`` makes the export incremental: ``state`` (default: a
    hidden ``.NAME.lstrace-state`` beside a file ``output``; required for
    other outputs) remembers what earlier runs read, so this run reads only the
    tasks Label Studio updated since the last one, and still writes the whole
    dataset. A state made for another server, project, label config or filter
    set is not reused (the run reads everything and says why).

    Raises :class:`NothingToExport` when no row results, :class:`BadRequest`
    for an unknown project, a config without TextArea or a bad option,
    :class:`ServerUnreachable` and :class:`AuthFailed` (all :class:`ExportError`,
    with one-line messages naming the fix).
    """
    as_csv = _check_options(
        format, output, as_csv, annotator_policy, min_rating, max_pairs_per_prompt
    )
    since_last = isinstance(since, str) and since.strip().lower() == "last"
    filters = Filters(
        annotator_policy, include_skipped, None if since_last else parse_since(since), min_rating
    )
    state_path = _state_path(output, state) if since_last else None
    client = ReadClient(server_url(url), server_key(api_key))
    info = client.project(project)
    controls = Controls.from_parsed(info.parsed_config, info.describe())
    users = _annotators(client) if format == "ratings" else {}
    meter = _Progress(progress if not isinstance(progress, bool) else sys.stderr, info.describe())
    on_progress = meter if progress else None

    def write(fill: Callable[[Rows], None]) -> Rows:
        with opened(output) as out:
            writer = make_writer(
                format, out, controls, as_csv=as_csv, max_pairs_per_prompt=max_pairs_per_prompt
            )
            rows = Rows(writer, dedupe=dedupe)
            fill(rows)
            if rows.finish() == 0:
                raise NothingToExport(_why_empty(info, format, filters, rows.tally, writer))
        return rows

    if state_path is not None:
        rows, how, read_tasks = _incremental(
            client, info, controls, filters, users, state_path, on_progress, write
        )
    else:
        reading = Reading()

        def fill(rows: Rows) -> None:
            for _, task in annotated(client, info.id, reading, on_progress=on_progress):
                rows.add(*review_task(task, controls, filters, users))

        rows = write(fill)
        how, read_tasks = _way(reading), reading.tasks
    if progress:
        meter.done()
    tally = rows.tally
    if tally.ignored_types:
        logger.warning("lstrace export: %s", ignored_note(tally.ignored_types))
    return ExportResult(
        project_id=info.id,
        project_title=info.title,
        format=format,
        output=output if isinstance(output, str) else str(getattr(output, "name", output)),
        rows=rows.rows,
        tasks=tally.tasks,
        annotations=tally.annotations,
        used=tally.used,
        dropped={k: v for k, v in (tally.dropped + rows.writer.dropped).items() if v},
        ignored_result_types=dict(tally.ignored_types),
        read=how,
        read_tasks=read_tasks,
        state=str(state_path) if state_path is not None else None,
    )


def _incremental(
    client: ReadClient,
    info: ProjectInfo,
    controls: Controls,
    filters: Filters,
    users: dict[int, str],
    state_path: Path,
    on_progress: ProgressFn | None,
    write: Callable[[Callable[[Rows], None]], Rows],
) -> tuple[Rows, str, int]:
    """Bring the state up to date, then write the whole dataset from it."""
    stored = ExportState(state_path)
    try:
        wanted = identity(
            client.url,
            info.id,
            info.parsed_config,
            {
                "policy": filters.policy,
                "include_skipped": filters.include_skipped,
                "min_rating": filters.min_rating,
            },
        )
        reset_because = stored.adopt(wanted)
        done = incremental.update(
            client, info, stored, reset_because, controls, filters, users, on_progress
        )
        rows = write(lambda sink: incremental.write(stored, sink))
    finally:
        stored.close()
    return rows, done.describe() + f" by {_way(done.reading)}", done.changed


def _way(reading: Reading) -> str:
    if reading.way == "pages" and reading.fallback_reason:
        return f"pages (export snapshots refused: {reading.fallback_reason})"
    return reading.way


def _state_path(output: str | Path | TextIO, state: str | Path | None) -> Path:
    if state is not None:
        return Path(state)
    if isinstance(output, str | Path) and str(output) != "-" and not writes_through(Path(output)):
        return default_state_path(Path(output))
    raise BadRequest(
        "--since last keeps its state beside the output file; for standard output or a "
        "stream, say where with --state PATH."
    )


def _annotators(client: ReadClient) -> dict[int, str]:
    """E-mails by user id; a key that may not list users gets ``user 7``-style names."""
    try:
        return client.users()
    except (AuthFailed, BadRequest):
        return {}


def _check_options(
    fmt: str,
    output: str | Path | TextIO,
    as_csv: bool | None,
    policy: str,
    min_rating: float | None,
    max_pairs: int,
) -> bool:
    if fmt not in FORMATS:
        raise BadRequest(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    if policy not in POLICIES:
        raise BadRequest(f"annotator policy must be one of {', '.join(POLICIES)}, not {policy!r}.")
    if min_rating is not None and not isinstance(min_rating, int | float):
        raise BadRequest(f"min_rating must be a number, not {min_rating!r}.")
    if not isinstance(max_pairs, int) or max_pairs < 1:
        raise BadRequest(
            f"max_pairs_per_prompt must be a positive whole number, not {max_pairs!r}."
        )
    if as_csv is None:
        as_csv = fmt == "ratings" and str(output).lower().endswith(".csv")
    if as_csv and fmt != "ratings":
        raise BadRequest(f"CSV is available for the ratings format only, not for {fmt}.")
    return as_csv


_REASONS = {
    "skipped": "{n} skipped (add --include-skipped to keep them)",
    "before_since": "{n} last updated before {since}",
    "below_min_rating": "{n} rated below {min_rating} or not rated",
    "duplicate_run_id": "{n} duplicate tasks of one run_id",
    "empty_response": "{n} with an empty response",
    "no_prompt": "{n} without a prompt",
    "neither_edited_nor_rated": "{n} neither edited nor rated",
    "rated_without_pair": "{n} rated, but no prompt has two responses rated differently",
}


def _why_empty(info: ProjectInfo, fmt: str, filters: Filters, tally: Tally, writer: Writer) -> str:
    if tally.tasks == 0:
        hint = ""
        if info.skipped and not filters.include_skipped:
            hint = f" (it has {info.skipped} skipped annotations: add --include-skipped)"
        return (
            f"{info.describe()} has no annotated tasks to export{hint}; "
            "annotate some in Label Studio, then export again."
        )
    counts = tally.dropped + writer.dropped
    since = filters.since.isoformat() if filters.since is not None else ""
    min_rating = f"{filters.min_rating:g}" if filters.min_rating is not None else ""
    reasons = [
        text.format(n=counts[key], since=since, min_rating=min_rating)
        for key, text in _REASONS.items()
        if counts[key]
    ]
    if info.skipped and not filters.include_skipped and not counts["skipped"]:
        reasons.append(
            f"the project also has {info.skipped} skipped annotation(s), left out "
            "(add --include-skipped to keep them)"
        )
    return (
        f"nothing to export as {fmt} from {info.describe()}: of {tally.annotations} annotations "
        f"on {tally.tasks} tasks, " + ("; ".join(reasons) or "none gave a row") + "."
    )


DROPPED_LABELS = {
    "skipped": "skipped",
    "superseded": "superseded by another annotation of the task",
    "before_since": "updated before --since",
    "below_min_rating": "below --min-rating or unrated",
    "duplicate_run_id": "duplicate tasks of a run_id",
    "empty_response": "with an empty response",
    "no_prompt": "without a prompt",
    "neither_edited_nor_rated": "neither edited nor rated",
    "rated_without_pair": "rated, with no differently rated answer to pair with",
}


def describe_dropped(dropped: Mapping[str, int]) -> str:
    """``3 skipped, 1 superseded by ...``: what an export left out, in words."""
    return ", ".join(f"{n} {DROPPED_LABELS.get(why, why)}" for why, n in sorted(dropped.items()))


def ignored_note(ignored: Mapping[str, int]) -> str:
    """One line about result items of types the export does not read."""
    kinds = ", ".join(f"{kind} ({n})" for kind, n in sorted(ignored.items()))
    return (
        f"left out {sum(ignored.values())} annotation result items of types it does not read: "
        f"{kinds}; it reads textarea, rating and choices."
    )


class _Progress:
    """Tasks read so far on stderr: one updating line on a terminal, else every 10 %."""

    def __init__(self, stream: TextIO, what: str) -> None:
        self.stream = stream
        self.what = what
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last_step = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        line = f"lstrace export: {self.what}: {done}/{total} tasks read ({percent} %)"
        if self.tty:
            self.stream.write("\r" + line)
            self.stream.flush()
        elif percent // 10 != self._last_step:
            self._last_step = percent // 10
            self.stream.write(line + "\n")

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
