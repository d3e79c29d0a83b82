"""The ``lstrace`` command, run through ``lstrace.cli.main([...])``: exports, sync, status,
projects, help, and one clear error line with a documented exit code for every failure."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import pytest
from langchain_core.language_models import FakeListLLM

import lstrace
from lstrace._delivery import sender as _sender
from lstrace._delivery import spool as _spool
from lstrace._delivery import worker as _worker
from lstrace._errors import SnapshotRefused
from lstrace._export import incremental
from lstrace._export.server import ReadClient
from lstrace.cli import main
from tests import readback
from tests.spooled import spooled
from tests.test_export import annotate, choices, golden, rating, seed_prompt_project, textarea
from tests.test_pairwise import flush_returning

WRONG_KEY = "not-the-key-0123456789"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``lstrace ARGV``."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The single error line a failing command prints (and no traceback)."""
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("lstrace: error: ")
    return line


def spool_a_call(spool: Path, title: str) -> None:
    """Capture one call into the spool and stop the sender before it delivers it."""
    with lstrace.ls_session(project_name=title):
        FakeListLLM(responses=["Later."]).invoke(
            "Deliver me later", config={"run_id": UUID(int=41)}
        )
    spooled(spool, 1)
    _worker.reset()  # the long batching window means nothing was sent; the row stays


# -- export --------------------------------------------------------------------------------


def test_export_writes_the_dataset_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lstrace export` writes the same dataset as the Python API and one summary line, which
    counts every annotation read, a task's only annotation being a skip included."""
    seed_prompt_project("CLI sft")
    out = tmp_path / "sft.jsonl"
    code, stdout, err = run(
        capsys, "export", "--project", "CLI sft", "--format", "sft", "-o", str(out)
    )
    assert code == 0 and stdout == ""
    assert err.strip().splitlines() == [
        f"lstrace export: wrote 5 sft rows to {out} from 5 of 7 annotations on 6 tasks of "
        f"project 'CLI sft' (id {readback.project_id('CLI sft')}); left out: 1 skipped, "
        "1 superseded by another annotation of the task."
    ]
    golden("sft_prompt.jsonl", out.read_text(encoding="utf-8"))


def test_export_ratings_as_csv_to_stdout_with_progress(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without -o the dataset goes to stdout; --csv makes ratings CSV; --progress reports the
    tasks read on stderr even when stderr is not a terminal."""
    seed_prompt_project("CLI ratings")
    code, stdout, err = run(
        capsys, "export", "--project", "CLI ratings", "--format", "ratings", "--csv", "--progress"
    )
    assert code == 0
    header, *rows = stdout.splitlines()
    assert header == (
        "task_id,run_id,model,annotator,skipped,prompt,response,corrected_response,rating"
    )
    assert len(rows) == 5
    assert "lstrace export: project 'CLI ratings'" in err and "6/6 tasks read (100 %)" in err


def test_nothing_to_export_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A project nobody annotated: exit 1, one line saying so, no output file."""
    with lstrace.ls_session(project_name="CLI empty"):
        FakeListLLM(responses=["y"]).invoke("Anyone?", config={"run_id": UUID(int=42)})
    readback.flushed(1)
    out = tmp_path / "out.jsonl"
    code, _, err = run(
        capsys, "export", "--project", "CLI empty", "--format", "sft", "-o", str(out)
    )
    assert code == 1
    assert "has no annotated tasks to export" in one_error_line(err)
    assert not out.exists()


def test_since_after_every_annotation_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--since later than every annotation: exit 1 with the reason, not an internal error."""
    seed_prompt_project("CLI since")
    out = tmp_path / "out.jsonl"
    args = ("export", "--project", "CLI since", "--format", "preference", "-o", str(out))
    code, _, err = run(capsys, *args, "--since", "2030-01-01")
    assert code == 1
    assert "last updated before 2030-01-01T00:00:00+00:00" in one_error_line(err)
    assert not out.exists()


class ClosingReader(io.StringIO):
    """Standard output whose reader goes away after ``lines`` lines, like ``| head -1``."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.left = lines

    def write(self, text: str) -> int:
        if self.left <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= text.count("\n")
        return super().write(text)


def test_export_into_a_closed_pipe_exits_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lstrace export ... | head -1`: once the reader is gone the export stops with exit 141
    (as a Unix tool killed by SIGPIPE) and prints nothing, no traceback, no summary."""
    seed_prompt_project("CLI head")
    stdout = ClosingReader(lines=1)
    monkeypatch.setattr(sys, "stdout", stdout)
    code = main(["export", "--project", "CLI head", "--format", "sft"])
    assert code == 141
    assert len(stdout.getvalue().splitlines()) == 1
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("argv", "codes"),
    [
        (["status", "--url", "http://127.0.0.1:9"], {141}),
        (["sync"], {141}),
        (["--help"], {0, 141}),  # argparse itself may swallow the failed write and exit 0
        (["--version"], {0, 141}),
    ],
    ids=["status", "sync", "help", "version"],
)
def test_commands_writing_into_a_closed_pipe_exit_quietly(
    argv: list[str], codes: set[int], tmp_path: Path
) -> None:
    """`lstrace status | head -3` and the like, in a real process whose stdout is a pipe
    nobody reads any more: exit 141 (status stops at its first line, before asking the
    server), nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first line
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lstrace.cli", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "LSTRACE_SPOOL_PATH": str(tmp_path / "none.sqlite3")},
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode in codes


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the installed lstrace version."""
    code, out, _ = run(capsys, "--version")
    assert (code, out) == (0, f"lstrace {lstrace.__version__}\n")


def test_since_last_reads_the_changes_into_a_state_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--since last with --state: the first run reads every annotated task, the second none
    (nothing changed), and both write the whole dataset, here to standard output; the
    summary says what was read and where the state is."""
    monkeypatch.setattr(incremental, "MARGIN_S", 0)
    seed_prompt_project("CLI incremental")
    time.sleep(1.1)  # past the server clock's second of the last annotation
    state = tmp_path / "sft.state"
    args = ("export", "--project", "CLI incremental", "--format", "sft", "--since", "last")
    code, first, err = run(capsys, *args, "--state", str(state))
    assert code == 0 and err.startswith(
        f"lstrace export: read all 6 annotated tasks by snapshots (state {state}).\n"
    )
    time.sleep(1.1)
    code, second, err = run(capsys, *args, "--state", str(state))
    assert code == 0 and second == first and len(first.splitlines()) == 5
    assert err.startswith("lstrace export: read 0 tasks changed since ")
    code, _, err = run(capsys, *args)
    assert code == 2 and "say where with --state PATH" in one_error_line(err)


def test_unknown_project_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown project: exit 2 and a pointer to `lstrace projects`."""
    code, _, err = run(capsys, "export", "--project", "Nope", "--format", "sft")
    assert code == 2
    assert "no project titled 'Nope'; run `lstrace projects`" in one_error_line(err)


def test_config_without_textarea_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A project whose config has no TextArea: exit 2 with the tag to add."""
    config = (
        '<View><Text name="prompt" value="$prompt"/>'
        '<Choices name="ok" toName="prompt"><Choice value="yes"/></Choices></View>'
    )
    project = readback.create_project("CLI no textarea", config)
    readback.import_tasks(project, [{"data": {"prompt": "hi"}}])
    [task] = readback.tasks(project)
    annotate(task["id"], [choices(["yes"], "ok", "prompt")])
    code, _, err = run(capsys, "export", "--project", str(project), "--format", "ratings")
    assert code == 2
    assert "has no TextArea pointing at the prompt" in one_error_line(err)


def test_unexpected_result_types_are_reported_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Result items of types an export does not read (here labels) are left out with a note;
    the rest of the annotation still exports."""
    with lstrace.ls_session(project_name="CLI odd results"):
        FakeListLLM(responses=["Fine."]).invoke("How are you?", config={"run_id": UUID(int=43)})
    readback.flushed(1)
    [task] = readback.tasks("CLI odd results")
    labels = {
        "id": "lbl0000001",
        "from_name": "sentiment",
        "to_name": "prompt",
        "type": "labels",
        "value": {"start": 0, "end": 3, "labels": ["Positive"]},
    }
    annotate(task["id"], [textarea("Fine, thanks."), rating(4), labels])
    out = tmp_path / "r.jsonl"
    args = ("export", "--project", "CLI odd results", "--format", "ratings", "-o", str(out))
    code, _, err = run(capsys, *args)
    assert code == 0
    assert json.loads(out.read_text())["corrected_response"] == "Fine, thanks."
    assert err.strip().splitlines()[-1] == (
        "lstrace export: note: left out 1 annotation result items of types it does not read: "
        "labels (1); it reads textarea, rating and choices."
    )


# -- credentials and connection ---------------------------------------------------------------


def test_refused_key_exits_4_and_is_never_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """A key Label Studio refuses: exit 4, one line naming the fix, the key not echoed."""
    code, out, err = run(capsys, "projects", "--api-key", WRONG_KEY)
    assert code == 4
    assert "refused the API key (401)" in one_error_line(err)
    assert WRONG_KEY not in out + err


def test_missing_key_exits_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No key anywhere: exit 4 before any request, saying which variable to set."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    code, _, err = run(capsys, "export", "--project", "x", "--format", "sft")
    assert code == 4
    assert "no API key" in one_error_line(err) and "LABEL_STUDIO_API_KEY" in err


def test_unreachable_server_exits_3(tmp_path: Path) -> None:
    """Nothing listening at --url: exit 3 with one line, in a real process (no cassette)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        port = sock.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from lstrace.cli import main; sys.exit(main(sys.argv[1:]))",
                "projects",
                "--url",
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "LABEL_STUDIO_API_KEY": WRONG_KEY},
            timeout=120,
            check=False,
        )
    assert proc.returncode == 3
    line = one_error_line(proc.stderr)
    assert f"cannot reach Label Studio at http://127.0.0.1:{port}" in line
    assert WRONG_KEY not in proc.stdout + proc.stderr


# -- usage ---------------------------------------------------------------------------------


def test_help_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """--help works on the command and each subcommand, and lists the exit codes."""
    code, out, _ = run(capsys, "--help")
    assert code == 0
    words = ("export", "sync", "status", "set-aside", "projects", "exit codes")
    assert all(word in out for word in words)
    for command in ("export", "sync", "status", "set-aside", "projects"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and f"usage: lstrace {command}" in out and "exit codes" in out
    code, out, _ = run(capsys, "export", "--help")
    assert all(opt in out for opt in ("--min-rating", "--since", "--annotator-policy", "--csv"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["export", "--format", "sft"], "the following arguments are required: --project"),
        (["export", "--project", "p", "--format", "dpo"], "invalid choice: 'dpo'"),
        (["projects", "--url", "localhost:8080"], "must start with http:// or https://"),
        (["export", "--project", "p", "--format", "sft", "--since", "soon"], "since must be"),
        (["export", "--project", "p", "--format", "sft", "--csv"], "ratings format only"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad or missing options exit 2 before any request, saying what is wrong."""
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_an_export_read_page_by_page_says_so_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that refuses export snapshots is read page by page, much slower on a large
    project: the summary says so, and what the server answered."""
    seed_prompt_project("CLI export by pages")

    def refuse(*args: object, **kwargs: object) -> None:
        raise SnapshotRefused("Label Studio at x answered 500 while trying to create a snapshot")

    monkeypatch.setattr(ReadClient, "create_snapshot", refuse)
    out = tmp_path / "sft.jsonl"
    code, _, err = run(
        capsys, "export", "--project", "CLI export by pages", "--format", "sft", "-o", str(out)
    )
    assert code == 0
    assert err.splitlines()[0] == (
        "lstrace export: read page by page, slower (export snapshots refused: Label Studio "
        "at x answered 500 while trying to create a snapshot)."
    )
    assert err.splitlines()[1].startswith("lstrace export: wrote 5 sft rows to ")


# -- status, projects, sync ------------------------------------------------------------------


def test_status_reports_spool_server_key_and_projects(
    lstrace_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """status: tasks waiting in the spool, the server's version, whose key, how many projects."""
    spool_a_call(lstrace_state, "CLI status")
    code, out, err = run(capsys, "status", "--spool", str(lstrace_state))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == (
        f"spool        {lstrace_state}: 1 tasks waiting (deliver them with `lstrace sync`)"
    )
    url = os.environ["LABEL_STUDIO_URL"]
    assert lines[1] == f"             1 for project 'CLI status' on {url}"
    assert lines[2] == f"Label Studio {url}: reachable, version 1.23.2"
    assert lines[3] == "API key      accepted (user record@lstrace.local)"
    assert lines[4].startswith("projects     ") and int(lines[4].split()[-1]) >= 0


def test_status_with_a_refused_key_exits_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """status with a refused key still shows the spool and the server, then exits 4."""
    code, out, err = run(
        capsys, "status", "--spool", str(tmp_path / "none.sqlite3"), "--api-key", WRONG_KEY
    )
    assert code == 4
    assert "no spool file yet" in out and "reachable, version" in out
    assert "refused the API key" in one_error_line(err)


def test_sync_delivers_what_an_earlier_process_spooled(
    lstrace_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """sync delivers spooled tasks to their project and exits 0 once the spool is empty."""
    spool_a_call(lstrace_state, "CLI sync")
    code, out, _ = run(capsys, "sync", "--spool", str(lstrace_state), "--timeout", "30")
    assert code == 0
    assert out == "lstrace sync: delivered 1 tasks; nothing waits in the spool.\n"
    [task] = readback.tasks("CLI sync")
    assert task["data"]["run_id"] == str(UUID(int=41))
    code, out, _ = run(capsys, "status", "--spool", str(lstrace_state))
    assert f"{lstrace_state}: 0 tasks waiting" in out


def test_projects_lists_task_and_annotation_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """projects: one row per project with tasks, annotated tasks, annotations and skips."""
    llm = FakeListLLM(responses=["a", "b", "c"])
    with lstrace.ls_session(project_name="CLI projects"):
        for n in range(3):
            llm.invoke(f"question {n}", config={"run_id": UUID(int=50 + n)})
    readback.flushed(3)
    first, second, _ = sorted(t["id"] for t in readback.tasks("CLI projects"))
    annotate(first, [rating(3)])
    annotate(second, [], skipped=True)
    code, out, _ = run(capsys, "projects", "--json")
    assert code == 0
    [row] = [r for r in map(json.loads, out.splitlines()) if r["title"] == "CLI projects"]
    assert {k: v for k, v in row.items() if k not in ("id", "title")} == {
        "tasks": 3,
        "annotated_tasks": 1,
        "annotations": 1,
        "skipped": 1,
    }
    code, out, _ = run(capsys, "projects")
    assert code == 0
    assert out.splitlines()[0].split() == [
        "id",
        "tasks",
        "annotated",
        "annotations",
        "skipped",
        "title",
    ]
    assert f"{row['id']:>6}        3         1           1       1  CLI projects" in out


def test_export_options_reach_the_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every filter option is wired through: first annotations, skips kept, no dedupe, a
    since date, and a minimum rating that leaves the two tasks rated 5 by their first
    annotator."""
    seed_prompt_project("CLI options")
    out = tmp_path / "sft.jsonl"
    code, _, err = run(
        capsys,
        "export",
        "--project",
        "CLI options",
        "--format",
        "sft",
        "-o",
        str(out),
        "--annotator-policy",
        "first",
        "--include-skipped",
        "--no-dedupe",
        "--since",
        "2000-01-01",
        "--min-rating",
        "5",
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["What is the capital of France?", "Tell me a joke."]
    assert "1 superseded" in err and "4 below --min-rating or unrated" in err


def test_sync_with_an_empty_spool_does_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """sync with nothing spooled says so and exits 0 without starting a sender."""
    code, out, _ = run(capsys, "sync", "--spool", str(tmp_path / "empty.sqlite3"))
    assert code == 0
    assert out.startswith("lstrace sync: nothing waits in the spool (")


def test_sync_without_a_key_exits_4(
    lstrace_state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tasks wait but no key is set: exit 4 at once, naming the variable; the tasks stay."""
    spool_a_call(lstrace_state, "CLI sync no key")
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    code, _, err = run(capsys, "sync", "--spool", str(lstrace_state))
    assert code == 4
    assert "1 tasks wait in" in one_error_line(err) and "LABEL_STUDIO_API_KEY" in err
    code, out, _ = run(capsys, "status", "--spool", str(lstrace_state), "--api-key", "x")
    assert "1 tasks waiting" in out


def set_aside_a_lonely_pairwise_call(monkeypatch: pytest.MonkeyPatch, title: str) -> None:
    """Leave one set-aside task in the spool: a pairwise call whose partner never came."""
    monkeypatch.setattr(_sender, "PAIR_TIMEOUT_S", 0)
    with lstrace.ls_session(project_name=title, mode="pairwise"):
        FakeListLLM(responses=["alone"]).invoke("Anyone there?", config={"run_id": UUID(int=44)})
    lstrace.flush(60)
    assert lstrace.stats().dead == 1
    _worker.reset()


def test_set_aside_tasks_are_named_honestly_and_can_be_retried(
    lstrace_state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pairwise call that found no partner: status and sync say it was set aside and never
    sent (not "refused by Label Studio", not a bare "nothing waits"); `lstrace set-aside`
    lists it with its reason, project, run id and prompt; --retry puts it back in line and
    sync delivers it alone, the other side empty."""
    set_aside_a_lonely_pairwise_call(monkeypatch, "CLI set aside")
    spool = str(lstrace_state)
    words = "1 set aside (1 a pairwise call that found no partner (never sent))"
    code, out, _ = run(capsys, "status", "--spool", spool)
    assert out.splitlines()[0] == (
        f"spool        {spool}: 0 tasks waiting; {words}: `lstrace set-aside` lists them"
    )
    assert "refused" not in out
    code, out, _ = run(capsys, "sync", "--spool", spool)
    assert code == 0 and words in out
    code, out, _ = run(capsys, "set-aside", "--spool", spool)
    assert code == 0
    row, hint = out.splitlines()
    assert "a pairwise call that found no partner (never sent); project 'CLI set aside'" in row
    assert str(UUID(int=44)) in row and "'Anyone there?'" in row
    assert "--retry ID..." in hint
    code, out, _ = run(capsys, "set-aside", "--spool", spool, "--retry", "--all")
    assert (code, out) == (
        0,
        f"lstrace set-aside: 1 tasks back in the spool at {spool} (1 pairwise calls go alone, "
        "the other side empty); `lstrace sync` sends them (or the next process that uses "
        "lstrace).\n",
    )
    code, out, _ = run(capsys, "sync", "--spool", spool, "--timeout", "30")
    assert out == "lstrace sync: delivered 1 tasks; nothing waits in the spool.\n"
    [task] = readback.tasks("CLI set aside")
    assert (task["data"]["answer_a"], task["data"]["answer_b"]) == ("alone", "")


def test_a_pairwise_call_waiting_for_its_partner_in_status_and_sync(
    lstrace_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """While its process runs, status counts a lone pairwise call as waiting for a partner
    (not as a task `lstrace sync` delivers); once that process is gone without its exit
    flush, sync sets it aside as unpaired (no partner can come any more) and says so in the
    words status and set-aside use."""
    with lstrace.ls_session(project_name="CLI waits for partner", mode="pairwise"):
        FakeListLLM(responses=["alone"]).invoke("Anyone there?", config={"run_id": UUID(int=45)})
    assert flush_returning().waiting_for_partner == 1
    spool = str(lstrace_state)
    code, out, _ = run(capsys, "status", "--spool", spool)
    assert (code, out.splitlines()[0]) == (
        0,
        f"spool        {spool}: 1 tasks waiting, 1 pairwise calls waiting for a partner "
        "(set aside as unpaired when their process ends)",
    )
    _worker.reset()  # the process ends without its exit flush (killed): the call still waits
    words = "1 set aside (1 a pairwise call that found no partner (never sent))"
    code, out, _ = run(capsys, "sync", "--spool", spool)
    assert (code, out) == (
        0,
        f"lstrace sync: delivered 0 tasks; nothing waits in the spool; {words}: "
        "`lstrace set-aside` lists them.\n",
    )
    code, out, _ = run(capsys, "status", "--spool", spool)
    assert out.splitlines()[0] == (
        f"spool        {spool}: 0 tasks waiting; {words}: `lstrace set-aside` lists them"
    )
    code, out, _ = run(capsys, "set-aside", "--spool", spool)
    assert str(UUID(int=45)) in out and "a pairwise call that found no partner (never sent)" in out


def test_set_aside_discard_deletes_only_what_is_named(
    lstrace_state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--discard deletes the set-aside tasks named by id (or --all); an unknown id, no id at
    all, or ids without --retry/--discard are usage errors (exit 2) that change nothing."""
    set_aside_a_lonely_pairwise_call(monkeypatch, "CLI discard")
    spool = str(lstrace_state)
    [aside] = _spool.set_aside(lstrace_state)
    for argv, message in (
        (["--discard", "999"], "no set-aside task with id 999"),
        (["--discard"], "name the set-aside tasks by id, or pass --all"),
        ([str(aside.id)], "say what to do with them: --retry or --discard"),
    ):
        code, _, err = run(capsys, "set-aside", "--spool", spool, *argv)
        assert code == 2 and message in one_error_line(err)
    assert _spool.set_aside(lstrace_state) == [aside]
    code, out, _ = run(capsys, "set-aside", "--spool", spool, "--discard", str(aside.id))
    assert (code, out) == (0, f"lstrace set-aside: discarded 1 tasks from {spool}.\n")
    code, out, _ = run(capsys, "set-aside", "--spool", spool)
    assert out == f"lstrace set-aside: no task is set aside in {spool}.\n"


SYNC_TO_A_DEAD_SERVER = """
import sys, time
import lstrace
from lstrace._delivery import sender as _sender
from lstrace._delivery import spool as _spool
from lstrace._delivery import worker as _worker
from langchain_core.language_models import FakeListLLM
from lstrace.cli import main

spool, url = sys.argv[1], sys.argv[2]
lstrace.configure(spool_path=spool, flush_interval=3600)
with lstrace.ls_session(project_name="Nowhere", url=url):
    FakeListLLM(responses=["x"]).invoke("hi")
while lstrace.stats().spooled < 1:
    time.sleep(0.01)
_worker.reset()  # as if this process had ended before delivering
sys.exit(main(["sync", "--spool", spool, "--timeout", "5"]))
"""


def test_sync_to_an_unreachable_server_exits_3(tmp_path: Path) -> None:
    """sync whose server refuses connections: exit 3 with one line; the task stays spooled.
    Runs in a real process with a real refused connection (no cassette)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        proc = subprocess.run(
            [sys.executable, "-c", SYNC_TO_A_DEAD_SERVER, str(tmp_path / "s.sqlite3"), url],
            capture_output=True,
            text=True,
            env={**os.environ, "LABEL_STUDIO_API_KEY": WRONG_KEY},
            timeout=120,
            check=False,
        )
    assert proc.returncode == 3, proc.stderr
    assert "1 tasks still wait in" in one_error_line(proc.stderr)
    assert WRONG_KEY not in proc.stdout + proc.stderr
