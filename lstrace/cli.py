"""The ``lstrace`` command: export, sync, status, set-aside, projects.

Exit codes (the same for every command) are :data:`lstrace._errors.EXIT_CODES`, derived
from the exception tree there; ``lstrace --help`` lists them.

Errors print one line on stderr, saying what to fix. The API key is never printed.
``LSTRACE_DEBUG=1`` also shows lstrace's log lines (the sender's retries...).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from lstrace._client import server_key, server_url
from lstrace._delivery.spool import SetAside
from lstrace._errors import (
    EXIT_CODES,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PIPE,
    AuthFailed,
    BadRequest,
    ExportError,
    TasksWaiting,
)
from lstrace._export.spoolview import SpoolView, look
from lstrace._secrets import redact_url

_EPILOG = "exit codes: " + "; ".join(f"{c} {m}" for c, m in EXIT_CODES.items()) + "."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lstrace`` command line; returns the exit code."""
    _quiet_logs()
    try:
        return _run(argv)
    except BrokenPipeError:
        return _reader_gone()


def _run(argv: Sequence[str] | None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        sys.stdout.flush()
        return int(exc.code or 0)
    command: Callable[[argparse.Namespace], int] = args.run
    try:
        code = command(args)
        sys.stdout.flush()  # a reader that left shows here, not in Python's exit handler
        return code
    except BrokenPipeError:
        raise
    except ExportError as exc:
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted.")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get("LSTRACE_DEBUG"):
            raise
        _error(
            f"internal error ({type(exc).__name__}: {exc}); set LSTRACE_DEBUG=1 for the "
            "traceback and report it."
        )
        return EXIT_INTERNAL


def _reader_gone() -> int:
    """Standard output's reader left (``| head``): stop quietly, as Unix tools do.

    Further writes (Python flushes stdout at exit) go to /dev/null instead of
    printing a second BrokenPipeError.
    """
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_PIPE


def _say(line: str) -> None:
    """One line of a command's report, flushed so a reader sees it (or leaves) at once."""
    print(line, flush=True)


def _quiet_logs() -> None:
    """The commands print their own outcome; lstrace's log lines only with LSTRACE_DEBUG=1."""
    log = logging.getLogger("lstrace")
    if os.environ.get("LSTRACE_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")
    elif not log.handlers:
        log.addHandler(logging.NullHandler())  # keeps Python's last-resort printer out


def _error(message: str) -> None:
    print(f"lstrace: error: {redact_url(message)}", file=sys.stderr)


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"must start with http:// or https://, got {value!r}")
    return value.rstrip("/")


def _server_options(*, every_server: bool = False) -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "--url",
        type=_url,
        default=None,  # server_url(): $LABEL_STUDIO_URL, else http://localhost:8080
        help="Label Studio URL (default: "
        + ("every server in the spool" if every_server else "$LABEL_STUDIO_URL")
        + ", else http://localhost:8080)",
    )
    shared.add_argument(
        "--api-key",
        default=None,
        help="API token (default: $LABEL_STUDIO_API_KEY; prefer the variable: "
        "options show in the process list)",
    )
    return shared


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstrace",
        description="Review LangChain LLM calls in Label Studio and export them as datasets.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"lstrace {_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_export(commands)
    sync = commands.add_parser(
        "sync",
        parents=[_server_options(every_server=True)],
        help="deliver tasks waiting in the spool",
        description="Deliver the tasks earlier processes left in the spool. With --url, only "
        "those for that server.",
        epilog=_EPILOG,
    )
    sync.add_argument("--timeout", type=float, default=60.0, help="seconds to try (default 60)")
    sync.add_argument("--spool", type=Path, help="spool file (default: $LSTRACE_SPOOL_PATH)")
    sync.set_defaults(run=run_sync)
    status = commands.add_parser(
        "status",
        parents=[_server_options()],
        help="check the server, the API key and the spool",
        description="Is Label Studio reachable, is the API key accepted, how many projects, "
        "how many tasks wait in the spool.",
        epilog=_EPILOG,
    )
    status.add_argument("--spool", type=Path, help="spool file (default: $LSTRACE_SPOOL_PATH)")
    status.set_defaults(run=run_status)
    _add_set_aside(commands)
    projects = commands.add_parser(
        "projects",
        parents=[_server_options()],
        help="list projects with task and annotation counts",
        description="List the projects the API key can see, with their task and annotation counts.",
        epilog=_EPILOG,
    )
    projects.add_argument("--json", action="store_true", help="one JSON object per line")
    projects.set_defaults(run=run_projects)
    return parser


def _version() -> str:
    from lstrace import __version__

    return __version__


def _add_export(commands: Any) -> None:
    from lstrace._export.annotations import POLICIES
    from lstrace._export.formats import FORMATS, MAX_PAIRS_PER_PROMPT

    export = commands.add_parser(
        "export",
        parents=[_server_options()],
        help="write annotated tasks as an SFT, preference or ratings dataset",
        description=(
            "Write a project's annotated tasks as a dataset. sft: prompt/completion or chat "
            "messages ending with the approved answer. preference: prompt/chosen/rejected "
            "(TRL's DPO layout) from edits and ratings. ratings: one row per annotation."
        ),
        epilog=_EPILOG,
    )
    export.add_argument("--project", required=True, help="project title or id")
    export.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        dest="fmt",
        help="sft (JSONL), preference (JSONL), ratings (JSONL, or CSV with --csv)",
    )
    export.add_argument(
        "-o", "--output", default="-", help="output file (default: standard output)"
    )
    export.add_argument(
        "--csv", action="store_true", help="ratings as CSV (implied by an -o ending in .csv)"
    )
    export.add_argument(
        "--min-rating", type=float, help="keep annotations rated at least this (drops unrated)"
    )
    export.add_argument(
        "--include-skipped", action="store_true", help="keep skipped (cancelled) annotations"
    )
    export.add_argument(
        "--since",
        help="keep annotations last updated at or after this date or time (ISO 8601; UTC "
        "unless an offset is given); 'last': incremental, read only the tasks changed since "
        "the last run with this output, and write the whole dataset",
    )
    export.add_argument(
        "--state",
        type=Path,
        help="with --since last: where to keep what was read (default: .NAME.lstrace-state "
        "beside the output file; needed for standard output)",
    )
    export.add_argument(
        "--no-dedupe",
        dest="dedupe",
        action="store_false",
        help="keep every task of a run_id (default: the first annotated one)",
    )
    export.add_argument(
        "--annotator-policy",
        choices=POLICIES,
        default="latest",
        help="several annotations on one task: latest (last updated; default), first, or all",
    )
    export.add_argument(
        "--max-pairs-per-prompt",
        type=int,
        default=MAX_PAIRS_PER_PROMPT,
        metavar="N",
        help="preference: at most N rating pairs per prompt, best-rated answer first "
        f"(default {MAX_PAIRS_PER_PROMPT})",
    )
    export.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress on stderr (default: when stderr is a terminal)",
    )
    export.set_defaults(run=run_export)


def _add_set_aside(commands: Any) -> None:
    aside = commands.add_parser(
        "set-aside",
        help="list, retry or discard tasks the sender set aside",
        description="Tasks the sender set aside instead of delivering (a pairwise call that "
        "found no partner, a task Label Studio refused): list them with the reason, put them "
        "back in line (--retry; `lstrace sync` then sends them, a lone pairwise call with its "
        "other side empty), or delete them (--discard).",
        epilog=_EPILOG,
    )
    aside.add_argument("ids", nargs="*", type=int, metavar="ID", help="set-aside task ids")
    aside.add_argument("--all", action="store_true", help="every set-aside task")
    action = aside.add_mutually_exclusive_group()
    action.add_argument("--retry", action="store_true", help="put them back in the spool")
    action.add_argument("--discard", action="store_true", help="delete them for good")
    aside.add_argument("--spool", type=Path, help="spool file (default: $LSTRACE_SPOOL_PATH)")
    aside.set_defaults(run=run_set_aside)


def run_export(args: argparse.Namespace) -> int:
    """``lstrace export``: write the dataset, then one summary line on stderr."""
    from lstrace.export import describe_dropped, export_project, ignored_note

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = export_project(
        args.project,
        args.fmt,
        args.output,
        url=args.url,
        api_key=args.api_key,
        as_csv=True if args.csv else None,
        min_rating=args.min_rating,
        include_skipped=args.include_skipped,
        since=args.since,
        state=args.state,
        dedupe=args.dedupe,
        annotator_policy=args.annotator_policy,
        max_pairs_per_prompt=args.max_pairs_per_prompt,
        progress=progress,
    )
    where = "standard output" if result.output == "-" else result.output
    left_out = describe_dropped(result.dropped)
    if result.state is not None:
        print(f"lstrace export: {result.read} (state {result.state}).", file=sys.stderr)
    elif result.read.startswith("pages ("):  # the snapshots were refused: say why it is slow
        print(f"lstrace export: read page by page, slower {result.read[6:]}.", file=sys.stderr)
    print(
        f"lstrace export: wrote {result.rows} {result.format} rows to {where} from "
        f"{result.used} of {result.annotations} annotations on {result.tasks} tasks of project "
        f"{result.project_title!r} (id {result.project_id})"
        + (f"; left out: {left_out}" if left_out else "")
        + ".",
        file=sys.stderr,
    )
    if result.ignored_result_types:
        print(f"lstrace export: note: {ignored_note(result.ignored_result_types)}", file=sys.stderr)
    return EXIT_OK


def run_sync(args: argparse.Namespace) -> int:
    """``lstrace sync``: deliver the spool; 0 when it is empty afterwards."""
    import lstrace
    from lstrace._delivery import worker as _worker
    from lstrace._delivery.spool import default_path

    before = look(args.spool or default_path())
    if before.waiting == 0 and before.orphaned == 0:  # running traces are not ours to send
        _say(f"lstrace sync: nothing waits in the spool ({before.line()}).")
        return EXIT_OK
    if not server_key(args.api_key):
        traces = f" and {before.orphaned} unfinished traces" if before.orphaned else ""
        raise AuthFailed(
            f"{before.waiting} tasks{traces} wait in {before.path}, but there is no API key "
            "to send them with: set LABEL_STUDIO_API_KEY or pass --api-key."
        )
    if args.spool is not None:
        lstrace.configure(spool_path=args.spool)
    try:
        result = lstrace.sync(url=args.url, api_key=args.api_key, timeout=args.timeout)
    finally:
        # final: a pairwise call left by a process that ended will get no partner any more;
        # it is set aside (unpaired) rather than left waiting for one
        left = _worker.shutdown(timeout=0, report=False, final=True)
    if left is not None:
        result = replace(result, pending=left.pending)
    after = look(before.path)
    aside = f"; {after.set_aside_words()}" if after.dead > before.dead else ""
    if result.pending == 0:
        _say(
            f"lstrace sync: delivered {result.delivered} tasks; nothing waits in the spool{aside}."
        )
        return EXIT_OK
    if aside:
        _say(f"lstrace sync: delivered {result.delivered} tasks{aside}.")
    where = f"{result.pending} tasks still wait in {result.spool_path}"
    _diagnose(after, args.url, args.api_key, where)
    raise TasksWaiting(
        f"{where} (delivered {result.delivered}); run `lstrace sync` again with more --timeout."
    )


def _diagnose(spool: SpoolView, only_url: str | None, api_key: str | None, where: str) -> None:
    """Raise the reason tasks could not go: a server that cannot be reached, a refused key."""
    from lstrace._export.server import ReadClient

    key = server_key(api_key)
    for stored in dict.fromkeys(u for u, _, _ in spool.by_destination):
        # the spool holds the URL redacted: its credentials can only come from --url
        url = only_url if only_url is not None and redact_url(only_url) == stored else stored
        if only_url is None or url == only_url:
            try:
                ReadClient(url, key).whoami()
            except ExportError as exc:
                raise type(exc)(f"{where}: {exc}") from None


def run_status(args: argparse.Namespace) -> int:
    """``lstrace status``: the spool, then the server, the key and the projects."""
    from lstrace._delivery.spool import default_path
    from lstrace._export.server import ReadClient

    spool = look(args.spool or default_path())
    _say(f"spool        {spool.line()}")
    for server, project, count in spool.by_destination:
        _say(f"             {count} for {project} on {server}")
    for line in spool.trace_lines():
        _say(f"             {line}")
    url = server_url(args.url)
    client = ReadClient(url, server_key(args.api_key))
    _say(f"Label Studio {redact_url(url)}: reachable, version {client.version()}")
    _say(f"API key      accepted (user {client.whoami()})")
    _say(f"projects     {sum(1 for _ in client.projects())}")
    return EXIT_OK


def run_set_aside(args: argparse.Namespace) -> int:
    """``lstrace set-aside``: list set-aside tasks, or retry or discard them."""
    from lstrace._delivery import spool as _spool

    path = args.spool or _spool.default_path()
    rows = _spool.set_aside(path) if path.exists() else []
    if not (args.retry or args.discard):
        if args.ids or args.all:
            raise BadRequest("say what to do with them: --retry or --discard.")
        return _list_set_aside(path, rows)
    chosen = _chosen(rows, args.ids, every=args.all, path=path)
    if args.discard:
        done = _spool.discard(path, [r.id for r in chosen])
        _say(f"lstrace set-aside: discarded {done} tasks from {path}.")
        return EXIT_OK
    done = _spool.revive(path, [r.id for r in chosen])
    alone = sum(r.reason == "unpaired" for r in chosen)
    note = f" ({alone} pairwise calls go alone, the other side empty)" if alone else ""
    _say(
        f"lstrace set-aside: {done} tasks back in the spool at {path}{note}; `lstrace sync` "
        "sends them (or the next process that uses lstrace)."
    )
    return EXIT_OK


def _list_set_aside(path: Path, rows: Sequence[SetAside]) -> int:
    if not rows:
        _say(f"lstrace set-aside: no task is set aside in {path}.")
        return EXIT_OK
    for row in rows:
        prompt = " ".join(str(row.content.get("prompt") or "").split())
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.captured))
        _say(
            f"{row.id:>6}  {when}  {row.why()}; {row.destination.describe()}; "
            f"run {row.run_id}; {prompt[:60]!r}"
        )
    _say(
        f"({len(rows)} set aside in {path}: `lstrace set-aside --retry ID...` puts them back, "
        "`--discard ID...` deletes them, `--all` for every one)"
    )
    return EXIT_OK


def _chosen(
    rows: Sequence[SetAside], ids: Sequence[int], *, every: bool, path: Path
) -> list[SetAside]:
    """The rows named by ``ids`` (or all with ``every``); an unknown id is a usage error."""
    if every == bool(ids):
        raise BadRequest("name the set-aside tasks by id, or pass --all (not both).")
    if every:
        return list(rows)
    known = {row.id: row for row in rows}
    missing = [i for i in ids if i not in known]
    if missing:
        raise BadRequest(
            f"no set-aside task with id {', '.join(map(str, missing))} in {path}; "
            "`lstrace set-aside` lists them."
        )
    return [known[i] for i in ids]


def run_projects(args: argparse.Namespace) -> int:
    """``lstrace projects``: one line per project."""
    from lstrace._export.server import ReadClient

    client = ReadClient(server_url(args.url), server_key(args.api_key))
    rows: list[dict[str, Any]] = [
        {
            "id": p.id,
            "title": p.title,
            "tasks": p.tasks,
            "annotated_tasks": p.annotated_tasks,
            "annotations": p.annotations,
            "skipped": p.skipped,
        }
        for p in client.projects()
    ]
    rows.sort(key=lambda r: r["id"])
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print(f"no projects on {client.url}")
        return EXIT_OK
    print(f"{'id':>6} {'tasks':>8} {'annotated':>9} {'annotations':>11} {'skipped':>7}  title")
    for r in rows:
        print(
            f"{r['id']:>6} {r['tasks']:>8} {r['annotated_tasks']:>9} {r['annotations']:>11} "
            f"{r['skipped']:>7}  {r['title']}"
        )
    return EXIT_OK


__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
