"""Export: lstrace's own tasks, annotated through Label Studio's API the way the UI does,
read back as sft, preference and ratings datasets (``lstrace.export.export_project``).

Every test builds its project from scratch inside its cassette: fake-model calls in an
``ls_session`` (fixed run ids), a flush, then annotations by several users (edits,
ratings, choices, skips). Outputs are compared with golden files under tests/golden/
(regenerate them with ``LSTRACE_UPDATE_GOLDEN=1`` while recording, then review the diff).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_core.language_models import FakeListChatModel, FakeListLLM

import lstrace
from lstrace import templates
from lstrace._errors import SnapshotRefused
from lstrace._export import incremental
from lstrace._export.annotations import review_task
from lstrace._export.server import ReadClient
from lstrace.export import BadRequest, ExportResult, NothingToExport, export_project
from tests import readback

GOLDEN = Path(__file__).parent / "golden"

# (run id, prompt, the model's response); two calls share a prompt, the last stays unreviewed.
PROMPT_CALLS = [
    (1, "What is the capital of France?", "Paris."),
    (2, "What is 2 + 2?", "5"),
    (3, "Name a primary colour.", "Red."),
    (4, "Say something rude.", "No."),
    (5, "Tell me a joke.", "Why did the chicken cross the road? To get to the other side."),
    (6, "Tell me a joke.", "I have no jokes."),
    (7, "Translate 'chat' to English.", "cat"),
]

SYSTEM = ("system", "You are a terse assistant.")
CHAT_CALLS: list[tuple[int, list[tuple[str, str]], str]] = [
    (11, [SYSTEM, ("human", "Hi!")], "Hello."),
    (
        12,
        [SYSTEM, ("human", "Hi!"), ("ai", "Hello."), ("human", "What is 3 x 3?")],
        "6",
    ),
    (13, [SYSTEM, ("human", "Tell me a joke.")], "Knock knock."),
    (14, [SYSTEM, ("human", "Tell me a joke.")], "No."),
    (15, [SYSTEM, ("human", "Bye.")], "Goodbye."),
]

CUSTOM_CONFIG = """<View>
  <Text name="question" value="$prompt"/>
  <TextArea name="answer" toName="question" editable="true" maxSubmissions="1"/>
  <Rating name="helpfulness" toName="question"/>
  <Rating name="harmlessness" toName="question"/>
  <Choices name="verdict" toName="question" choice="single">
    <Choice value="good"/><Choice value="bad"/>
  </Choices>
  <Choices name="issues" toName="question" choice="multiple">
    <Choice value="too long"/><Choice value="wrong"/><Choice value="rude"/>
  </Choices>
  <Number name="minutes" toName="question"/>
  <TextArea name="comment" toName="question"/>
</View>"""


# -- building a reviewed project ------------------------------------------------------


def run_id(n: int) -> UUID:
    return UUID(int=n)


def textarea(text: str, name: str = "response", to: str = "prompt") -> dict[str, Any]:
    """A TextArea result item as the labeling UI submits it."""
    return _item(name, to, "textarea", {"text": [text]})


def rating(stars: int, name: str = "rating", to: str = "prompt") -> dict[str, Any]:
    return _item(name, to, "rating", {"rating": stars})


def choices(values: list[str], name: str, to: str) -> dict[str, Any]:
    return _item(name, to, "choices", {"choices": values})


def _item(name: str, to: str, kind: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": hashlib.sha1(f"{name}{value}".encode()).hexdigest()[:10],  # the UI's random ids
        "from_name": name,
        "to_name": to,
        "type": kind,
        "origin": "manual",
        "value": value,
    }


def user_id(email: str) -> int:
    """The id of a user of the organization, created through the API if missing."""
    client = readback.client()
    for user in client.users.list():
        if user.email == email:
            return int(user.id)
    return int(client.users.create(email=email, username=email.split("@", maxsplit=1)[0]).id)


def annotate(
    task_id: int,
    result: list[dict[str, Any]],
    *,
    by: str | None = None,
    skipped: bool = False,
) -> Any:
    """Submit (or skip) an annotation as ``by`` (default: the token's user)."""
    extra = {"completed_by": user_id(by)} if by else {}
    return readback.client().annotations.create(
        id=task_id, result=result, was_cancelled=skipped, lead_time=12.5, **extra
    )


def tasks_by_run(title: str) -> dict[int, int]:
    """Task id by run-id number, for a project lstrace filled."""
    return {UUID(t["data"]["run_id"]).int: t["id"] for t in readback.tasks(title)}


def seed_prompt_project(title: str) -> dict[str, Any]:
    """Prompt-mode tasks from lstrace, reviewed; returns the annotations by label.

    run 1: alice edits and rates 5. run 2: edited (5 -> 4), rated 1. run 3: accepted as is
    and rated 4, later bob edits it and rates 5. run 4: skipped. run 5: accepted, rated 5.
    run 6: rated 2 without touching the text. run 7: not reviewed.
    """
    llm = FakeListLLM(responses=[response for _, _, response in PROMPT_CALLS])
    with lstrace.ls_session(project_name=title):
        for n, prompt, _ in PROMPT_CALLS:
            llm.invoke(prompt, config={"run_id": run_id(n)})
    readback.flushed(len(PROMPT_CALLS))
    task = tasks_by_run(title)
    return {
        "alice_1": annotate(
            task[1],
            [textarea("Paris is the capital of France."), rating(5)],
            by="alice@lstrace.test",
        ),
        "own_2": annotate(task[2], [textarea("4"), rating(1)]),
        "own_3": annotate(task[3], [textarea("Red."), rating(4)]),
        "skip_4": annotate(task[4], [], skipped=True),
        "own_5": annotate(task[5], [textarea(PROMPT_CALLS[4][2]), rating(5)]),
        "own_6": annotate(task[6], [rating(2)]),
        "bob_3": annotate(
            task[3], [textarea("Red is a primary colour."), rating(5)], by="bob@lstrace.test"
        ),
    }


def seed_chat_project(title: str) -> None:
    """Chat-mode tasks from lstrace, reviewed: 11 edited (5), 12 edited (1), 13 accepted (4),
    14 rated 1, 15 not reviewed."""
    chat = FakeListChatModel(responses=[response for _, _, response in CHAT_CALLS])
    with lstrace.ls_session(project_name=title, mode="chat"):
        for n, messages, _ in CHAT_CALLS:
            chat.invoke(messages, config={"run_id": run_id(n)})
    readback.flushed(len(CHAT_CALLS))
    task = tasks_by_run(title)

    def chat_text(text: str) -> dict[str, Any]:
        return textarea(text, to="dialogue")

    def chat_rating(stars: int) -> dict[str, Any]:
        return rating(stars, to="dialogue")

    annotate(task[11], [chat_text("Hello! How can I help?"), chat_rating(5)])
    annotate(task[12], [chat_text("9"), chat_rating(1)], by="alice@lstrace.test")
    annotate(task[13], [chat_text("Knock knock."), chat_rating(4)])
    annotate(task[14], [chat_rating(1)])


# -- reading the output -----------------------------------------------------------------


def golden(name: str, text: str) -> None:
    """Compare an export with tests/golden/<name> exactly (or rewrite it when updating)."""
    path = GOLDEN / name
    if os.environ.get("LSTRACE_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"export differs from {path}"


def without_task_ids(text: str) -> str:
    """Task ids depend on what else the recording server holds; everything else is stable."""
    return re.sub(r'"task_id": \d+', '"task_id": "<id>"', text)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def export(
    tmp_path: Path, project: str | int, fmt: str, **options: Any
) -> tuple[Path, ExportResult]:
    out = tmp_path / f"{fmt}.{'csv' if options.get('as_csv') else 'jsonl'}"
    return out, export_project(project, fmt, out, **options)


def completions(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    return {row["prompt"]: row["completion"] for row in rows}


# -- sft ---------------------------------------------------------------------------------


def test_sft_prompt_mode(tmp_path: Path) -> None:
    """sft in prompt mode: one prompt/completion row per reviewed task, the completion being
    the annotator's edit or else the accepted prediction; skipped and unreviewed tasks are
    left out, and the latest annotation of a task wins."""
    seed_prompt_project("Export sft prompt")
    out, result = export(tmp_path, "Export sft prompt", "sft")
    rows = lines(out)
    assert completions(rows)["What is the capital of France?"] == "Paris is the capital of France."
    assert completions(rows)["Name a primary colour."] == "Red is a primary colour."  # bob's, later
    assert "Say something rude." not in completions(rows)  # skipped
    assert "Translate 'chat' to English." not in completions(rows)  # never reviewed
    assert [r["completion"] for r in rows if r["prompt"] == "Tell me a joke."] == [
        PROMPT_CALLS[4][2],
        "I have no jokes.",  # only rated: the prediction was accepted
    ]
    assert (result.rows, result.tasks, result.used, result.annotations) == (5, 6, 5, 7)
    assert result.dropped == {"skipped": 1, "superseded": 1}
    golden("sft_prompt.jsonl", out.read_text(encoding="utf-8"))


def test_sft_chat_mode(tmp_path: Path) -> None:
    """sft in chat mode: OpenAI/TRL messages, the whole dialogue then the approved assistant
    turn (the edit, or the model's answer when only rated)."""
    seed_chat_project("Export sft chat")
    out, result = export(tmp_path, "Export sft chat", "sft")
    rows = lines(out)
    assert [list(r) for r in rows] == [["messages"]] * 4
    first, second = rows[0]["messages"], rows[1]["messages"]
    assert first == [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello! How can I help?"},
    ]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user", "assistant"]
    assert second[-1]["content"] == "9"
    assert rows[3]["messages"][-1] == {"role": "assistant", "content": "No."}
    assert result.rows == 4
    golden("sft_chat.jsonl", out.read_text(encoding="utf-8"))


def test_min_rating_keeps_well_rated_annotations(tmp_path: Path) -> None:
    """--min-rating keeps annotations rated at least that much and drops unrated ones."""
    seed_prompt_project("Export min rating")
    out, result = export(tmp_path, "Export min rating", "sft", min_rating=5)
    assert sorted(completions(lines(out))) == [
        "Name a primary colour.",
        "Tell me a joke.",
        "What is the capital of France?",
    ]
    assert result.dropped["below_min_rating"] == 2


def test_annotator_policies(tmp_path: Path) -> None:
    """With two annotations on one task: latest takes bob's later edit, first the earlier
    acceptance, all both of them (oldest first)."""
    seed_prompt_project("Export policies")
    found = {}
    for policy in ("latest", "first", "all"):
        out, _ = export(tmp_path, "Export policies", "sft", annotator_policy=policy)
        found[policy] = [
            r["completion"] for r in lines(out) if r["prompt"] == "Name a primary colour."
        ]
    assert found == {
        "latest": ["Red is a primary colour."],
        "first": ["Red."],
        "all": ["Red.", "Red is a primary colour."],
    }


def test_since_keeps_annotations_updated_at_or_after(tmp_path: Path) -> None:
    """since= keeps tasks whose picked annotation was last updated at or after that time."""
    made = seed_prompt_project("Export since")
    since = made["bob_3"].updated_at
    out, result = export(tmp_path, "Export since", "sft", since=since.isoformat())
    assert completions(lines(out)) == {"Name a primary colour.": "Red is a primary colour."}
    assert result.dropped["before_since"] == 4


def test_duplicate_run_ids_export_once(tmp_path: Path) -> None:
    """A task delivered twice (same run_id, e.g. a retried import) exports once: the first
    reviewed copy. With dedupe=False both copies come out."""
    seed_prompt_project("Export dedupe")
    project = readback.project_id("Export dedupe")
    original = next(t for t in readback.tasks(project) if UUID(t["data"]["run_id"]).int == 1)
    readback.import_tasks(
        project, [{"data": original["data"], "predictions": original["predictions"]}]
    )
    copy = max(t["id"] for t in readback.tasks(project))
    annotate(copy, [textarea("Paris (copy)."), rating(3)])
    out, result = export(tmp_path, project, "sft")
    france = [
        r["completion"] for r in lines(out) if r["prompt"] == "What is the capital of France?"
    ]
    assert france == ["Paris is the capital of France."]
    assert result.dropped["duplicate_run_id"] == 1
    out, _ = export(tmp_path, project, "sft", dedupe=False)
    france = [
        r["completion"] for r in lines(out) if r["prompt"] == "What is the capital of France?"
    ]
    assert france == ["Paris is the capital of France.", "Paris (copy)."]


# -- preference ----------------------------------------------------------------------------


def test_preference_prompt_mode(tmp_path: Path) -> None:
    """preference in prompt mode: each edit is chosen over the model's answer; of two answers
    to one prompt, the higher rated is chosen. Rows are TRL's standard prompt/chosen/rejected."""
    seed_prompt_project("Export pref prompt")
    out, result = export(tmp_path, "Export pref prompt", "preference")
    rows = lines(out)
    assert rows == [
        {
            "prompt": "What is the capital of France?",
            "chosen": "Paris is the capital of France.",
            "rejected": "Paris.",
        },
        {"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"},
        {
            "prompt": "Name a primary colour.",
            "chosen": "Red is a primary colour.",
            "rejected": "Red.",
        },
        {"prompt": "Tell me a joke.", "chosen": PROMPT_CALLS[4][2], "rejected": "I have no jokes."},
    ]
    assert result.rows == 4
    golden("preference_prompt.jsonl", out.read_text(encoding="utf-8"))


def test_preference_chat_mode(tmp_path: Path) -> None:
    """preference in chat mode: TRL's conversational layout, the prompt a list of messages
    and chosen/rejected one assistant message each."""
    seed_chat_project("Export pref chat")
    out, _ = export(tmp_path, "Export pref chat", "preference")
    rows = lines(out)
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows] == [
        ("Hello! How can I help?", "Hello."),
        ("9", "6"),
        ("Knock knock.", "No."),  # rated 4 over rated 1, same prompt
    ]
    assert all(r["chosen"][0]["role"] == r["rejected"][0]["role"] == "assistant" for r in rows)
    assert rows[1]["prompt"][-1] == {"role": "user", "content": "What is 3 x 3?"}
    golden("preference_chat.jsonl", out.read_text(encoding="utf-8"))


def test_preference_from_pairwise_comparisons(tmp_path: Path) -> None:
    """In a pairwise project the response the annotator picked is chosen, the other rejected;
    sft takes the picked response as the completion."""
    model_a = FakeListLLM(responses=["Paris.", "22"])
    model_b = FakeListLLM(responses=["Lyon.", "4"])
    with lstrace.ls_session(project_name="Export pairwise", mode="pairwise"):
        for prompt in ("Capital of France?", "2 + 2?"):
            model_a.invoke(prompt)
            model_b.invoke(prompt)
    readback.flushed(4)
    task = {t["data"]["prompt"]: t["id"] for t in readback.tasks("Export pairwise")}
    pick = _item("preference", "answer_a,answer_b", "pairwise", {"selected": "left"})
    annotate(task["Capital of France?"], [pick])
    annotate(task["2 + 2?"], [{**pick, "value": {"selected": "right"}}])
    out, _ = export(tmp_path, "Export pairwise", "preference")
    assert lines(out) == [
        {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."},
        {"prompt": "2 + 2?", "chosen": "4", "rejected": "22"},
    ]
    out, _ = export(tmp_path, "Export pairwise", "sft")
    assert completions(lines(out)) == {"Capital of France?": "Paris.", "2 + 2?": "4"}


class ModelA(FakeListLLM):
    """A fake LLM whose tasks name it ``ModelA``."""


class ModelB(FakeListLLM):
    """A fake LLM whose tasks name it ``ModelB``."""


def test_pairwise_exports_name_both_answers_their_models_and_the_winner(tmp_path: Path) -> None:
    """In a pairwise project a pick between two identical answers is still a preference row,
    and ratings rows carry both answers, model_a and model_b, the winning side, and the
    picked answer as the response with its model."""
    model_a = ModelA(responses=["Paris.", "Same."])
    model_b = ModelB(responses=["Lyon.", "Same."])
    with lstrace.ls_session(project_name="Export pairwise sides", mode="pairwise"):
        for prompt in ("Capital of France?", "Say same."):
            model_a.invoke(prompt)
            model_b.invoke(prompt)
    readback.flushed(4)
    task = {t["data"]["prompt"]: t["id"] for t in readback.tasks("Export pairwise sides")}
    pick = _item("preference", "answer_a,answer_b", "pairwise", {"selected": "right"})
    annotate(task["Capital of France?"], [pick])
    annotate(task["Say same."], [{**pick, "value": {"selected": "left"}}])
    out, result = export(tmp_path, "Export pairwise sides", "preference")
    assert lines(out) == [
        {"prompt": "Capital of France?", "chosen": "Lyon.", "rejected": "Paris."},
        {"prompt": "Say same.", "chosen": "Same.", "rejected": "Same."},
    ]
    assert result.dropped == {}
    out, _ = export(tmp_path, "Export pairwise sides", "ratings")
    sides = ("response", "model", "winner", "response_a", "response_b", "model_a", "model_b")
    assert [tuple(row[k] for k in sides) for row in lines(out)] == [
        ("Lyon.", "ModelB", "b", "Paris.", "Lyon.", "ModelA", "ModelB"),
        ("Same.", "ModelA", "a", "Same.", "Same.", "ModelA", "ModelB"),
    ]
    out, _ = export(tmp_path, "Export pairwise sides", "ratings", as_csv=True)
    header, first, _ = out.read_text(encoding="utf-8").splitlines()
    assert header.split(",")[6:12] == [
        "response",
        "winner",
        "response_a",
        "response_b",
        "model_a",
        "model_b",
    ]
    assert first.split(",")[6:12] == ["Lyon.", "b", "Paris.", "Lyon.", "ModelA", "ModelB"]


# -- ratings -------------------------------------------------------------------------------


def test_ratings_jsonl_one_row_per_annotation(tmp_path: Path) -> None:
    """ratings: one row per annotation (policy all) with prompt, the model's response, the
    correction, rating, annotator and model; skipped annotations only on request."""
    seed_prompt_project("Export ratings")
    out, result = export(tmp_path, "Export ratings", "ratings", annotator_policy="all")
    rows = lines(out)
    assert [
        (r["annotator"], r["rating"]) for r in rows if r["prompt"] == "Name a primary colour."
    ] == [
        ("record@lstrace.local", 4),
        ("bob@lstrace.test", 5),
    ]
    france = rows[0]
    assert france["response"] == "Paris." and france["model"] == "FakeListLLM"
    assert france["corrected_response"] == "Paris is the capital of France."
    assert france["task_id"] == tasks_by_run("Export ratings")[1]
    assert not any(r["skipped"] for r in rows) and result.rows == 6
    golden("ratings_prompt.jsonl", without_task_ids(out.read_text(encoding="utf-8")))
    out, _ = export(tmp_path, "Export ratings", "ratings", include_skipped=True)
    skipped = [r for r in lines(out) if r["skipped"]]
    assert [(r["prompt"], r["response"], r["rating"]) for r in skipped] == [
        ("Say something rude.", "No.", None)
    ]


def test_ratings_csv_on_a_custom_config(tmp_path: Path) -> None:
    """A custom config is read by tag type: its TextArea holds the response, every Rating,
    Choices and extra TextArea gets a CSV column; a Number result is left out and reported."""
    llm = FakeListLLM(responses=["A long answer.", "Short."])
    with lstrace.ls_session(project_name="Export custom", project_config=CUSTOM_CONFIG):
        llm.invoke("First question?", config={"run_id": run_id(21)})
        llm.invoke("Second question?", config={"run_id": run_id(22)})
    readback.flushed(2)
    task = tasks_by_run("Export custom")
    to = "question"
    annotate(
        task[21],
        [
            textarea("An answer.", "answer", to),
            rating(4, "helpfulness", to),
            rating(5, "harmlessness", to),
            choices(["good"], "verdict", to),
            choices(["too long", "wrong"], "issues", to),
            _item("minutes", to, "number", {"number": 3}),
            textarea("Trimmed it.", "comment", to),
        ],
        by="alice@lstrace.test",
    )
    annotate(task[22], [rating(2, "helpfulness", to), choices(["bad"], "verdict", to)])
    out, result = export(tmp_path, "Export custom", "ratings", as_csv=True)
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert rows[0]["rating"] == "4" and rows[0]["ratings.harmlessness"] == "5"
    assert (
        rows[0]["choices.issues"] == "too long; wrong" and rows[0]["texts.comment"] == "Trimmed it."
    )
    assert rows[0]["corrected_response"] == "An answer." and rows[1]["corrected_response"] == ""
    assert result.ignored_result_types == {"number": 1}
    golden("ratings_custom.csv", re.sub(r"(?m)^\d+,", "<id>,", out.read_text(encoding="utf-8")))


# -- how an export reads: snapshots, pages, incremental --------------------------------------


def test_a_server_refusing_snapshots_is_read_page_by_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exports read Label Studio's export snapshots; a server that refuses them (here, a
    405 answer, played behind lstrace's client) is read page by page, with the same
    dataset. (The live tier proves it with a real 405, from a proxy.)"""
    seed_prompt_project("Export fallback")
    out, result = export(tmp_path, "Export fallback", "sft")
    assert result.read == "snapshots" and result.read_tasks == 6
    by_snapshots = out.read_text(encoding="utf-8")
    golden("sft_prompt.jsonl", by_snapshots)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise SnapshotRefused("Label Studio at x answered 405 while trying to create a snapshot")

    monkeypatch.setattr(ReadClient, "create_snapshot", refuse)
    out, result = export(tmp_path, "Export fallback", "sft")
    assert result.read == (
        "pages (export snapshots refused: Label Studio at x answered 405 while trying to "
        "create a snapshot)"
    )
    assert out.read_text(encoding="utf-8") == by_snapshots


def test_since_last_reads_only_what_changed_and_writes_the_whole_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--since last: the first run reads every annotated task; after an edit and a new
    annotation the next run reads just those two tasks; a deleted annotation and a deleted
    task drop out; every run writes what a full export writes; the state lives beside the
    output."""
    monkeypatch.setattr(incremental, "MARGIN_S", 0)
    seed_prompt_project("Export incremental")
    project = readback.project_id("Export incremental")
    task = tasks_by_run("Export incremental")
    time.sleep(1.1)  # the watermark has the server clock's one-second steps: pass the last one
    out = tmp_path / "sft.jsonl"
    first = export_project(project, "sft", out, since="last")
    assert (first.read_tasks, first.rows, first.state) == (
        6,
        5,
        str(tmp_path / ".sft.jsonl.lstrace-state"),
    )
    assert first.read.startswith("read all 6 annotated tasks by snapshots")
    golden("sft_prompt.jsonl", out.read_text(encoding="utf-8"))

    [own_6] = readback.client().annotations.list(id=task[6])
    readback.client().annotations.update(id=own_6.id, result=[textarea("A joke."), rating(3)])
    annotate(task[7], [textarea("Chat means cat."), rating(4)])
    time.sleep(1.1)
    second = export_project(project, "sft", out, since="last")
    assert second.read_tasks == 2 and second.read.startswith("read 2 tasks changed since ")
    full = tmp_path / "full.jsonl"
    export_project(project, "sft", full)
    assert out.read_text(encoding="utf-8") == full.read_text(encoding="utf-8")
    assert "Chat means cat." in full.read_text(encoding="utf-8")

    third = export_project(project, "sft", out, since="last")
    assert (third.read_tasks, third.rows) == (0, 6)

    readback.client().annotations.delete(id=own_6.id)
    readback.client().tasks.delete(id=str(task[7]))  # the SDK types a task id as str
    fourth = export_project(project, "sft", out, since="last")
    assert fourth.rows == 4 and "dropped 2 no longer annotated" in fourth.read
    export_project(project, "sft", full)
    assert out.read_text(encoding="utf-8") == full.read_text(encoding="utf-8")


def test_since_last_state_is_not_reused_for_other_filters_or_config(tmp_path: Path) -> None:
    """A state made under other filters, or before the label config changed, is not
    reused: that run reads everything again and says why."""
    seed_prompt_project("Export incremental reset")
    project = readback.project_id("Export incremental reset")
    out = tmp_path / "sft.jsonl"
    export_project(project, "sft", out, since="last")
    again = export_project(project, "sft", out, since="last", min_rating=4)
    assert again.read_tasks == 6 and "other filters" in again.read
    head, _, _ = readback.label_config(project).rpartition("</View>")
    config = head + '<Choices name="ok" toName="prompt"><Choice value="yes"/></Choices></View>'
    readback.client().projects.update(id=project, label_config=config)
    again = export_project(project, "sft", out, since="last", min_rating=4)
    assert again.read_tasks == 6 and "the project's label config changed" in again.read


def test_an_interrupted_since_last_export_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --since last run that stops half-way (here: interrupted after storing two tasks)
    leaves the old output alone; the next run goes on from the last task stored, page by
    page, and writes the whole dataset."""
    seed_prompt_project("Export resume")
    project = readback.project_id("Export resume")
    out = tmp_path / "sft.jsonl"
    monkeypatch.setattr(incremental, "CHUNK", 2)
    real = review_task  # what incremental calls, under the same name
    calls = []

    def interrupted(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(incremental, "review_task", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_project(project, "sft", out, since="last")
    assert not out.exists()
    monkeypatch.setattr(incremental, "review_task", real)
    resumed = export_project(project, "sft", out, since="last")
    assert "(resuming an interrupted read)" in resumed.read
    assert resumed.read_tasks == 4  # the tasks after the last one stored (tasks 1 and 2)
    golden("sft_prompt.jsonl", out.read_text(encoding="utf-8"))


def test_since_last_needs_a_state_for_standard_output() -> None:
    """--since last to standard output (or a stream) needs --state: it has nowhere else to
    keep what it read."""
    with pytest.raises(BadRequest, match=r"say where with --state PATH"):
        export_project("any", "sft", "-", since="last")


# -- what cannot be exported ------------------------------------------------------------


def test_unknown_project_is_a_bad_request(tmp_path: Path) -> None:
    """An unknown project title or id fails with BadRequest naming `lstrace projects`."""
    with pytest.raises(BadRequest, match=r"no project titled 'No such project'.*lstrace projects"):
        export_project("No such project", "sft", tmp_path / "out.jsonl")
    with pytest.raises(BadRequest, match="or with id 999999"):
        export_project(999999, "sft", tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_project_without_annotations_has_nothing_to_export(tmp_path: Path) -> None:
    """A project whose tasks nobody reviewed raises NothingToExport and writes no file."""
    with lstrace.ls_session(project_name="Export empty"):
        FakeListLLM(responses=["y"]).invoke("Anyone?", config={"run_id": run_id(31)})
    readback.flushed(1)
    (tmp_path / "out").mkdir()
    with pytest.raises(NothingToExport, match=r"'Export empty' .* has no annotated tasks"):
        export_project("Export empty", "sft", tmp_path / "out" / "sft.jsonl")
    assert not list((tmp_path / "out").iterdir())  # neither the file nor a partial one


def test_filters_that_leave_nothing_say_why(tmp_path: Path) -> None:
    """When filters leave no row, the message counts what each one removed."""
    seed_prompt_project("Export filtered")
    with pytest.raises(
        NothingToExport,
        match=r"1 skipped \(add --include-skipped to keep them\); 5 rated below 9 or not rated",
    ):
        export_project("Export filtered", "sft", tmp_path / "out.jsonl", min_rating=9)


def test_an_empty_export_without_min_rating_says_why(tmp_path: Path) -> None:
    """An export that ends empty for a reason other than --min-rating explains itself: an
    accepted, unrated answer gives no preference pair, and --since after every annotation
    leaves nothing (NothingToExport naming the cause, not an internal error)."""
    with lstrace.ls_session(project_name="Export nothing to pair"):
        FakeListLLM(responses=["Paris."]).invoke("Capital?", config={"run_id": run_id(71)})
    readback.flushed(1)
    [task] = readback.tasks("Export nothing to pair")
    annotate(task["id"], [textarea("Paris.")])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(NothingToExport, match=r"of 1 annotations on 1 tasks, 1 neither edited"):
        export_project("Export nothing to pair", "preference", out / "p.jsonl")
    with pytest.raises(NothingToExport, match=r"1 last updated before 2030-01-01T00:00:00\+00:00"):
        export_project("Export nothing to pair", "sft", out / "s.jsonl", since="2030-01-01")
    assert not list(out.iterdir())


def test_config_without_textarea_is_a_bad_request(tmp_path: Path) -> None:
    """A project whose config has no TextArea holds no responses: BadRequest saying what to add."""
    config = (
        '<View><Text name="prompt" value="$prompt"/>'
        '<Choices name="ok" toName="prompt"><Choice value="yes"/></Choices></View>'
    )
    project = readback.create_project("Export no textarea", config)
    readback.import_tasks(project, [{"data": {"prompt": "hi"}}])
    [task] = readback.tasks(project)
    annotate(task["id"], [choices(["yes"], "ok", "prompt")])
    with pytest.raises(BadRequest, match=r"has no TextArea.*<TextArea"):
        export_project(project, "ratings", tmp_path / "out.jsonl")


def test_bad_options_fail_before_any_request(tmp_path: Path) -> None:
    """Unknown formats or policies, CSV for sft, and unreadable dates are BadRequest."""
    for options, message in (
        ({"format": "dpo"}, "format must be one of"),
        ({"format": "sft", "annotator_policy": "best"}, "policy must be one of"),
        ({"format": "sft", "as_csv": True}, "CSV is available for the ratings format only"),
        ({"format": "sft", "since": "last week"}, "since must be a date"),
    ):
        with pytest.raises(BadRequest, match=message):
            export_project("any", output=tmp_path / "x", **options)


def test_ratings_csv_of_the_response_grading_template(tmp_path: Path) -> None:
    """The response-grading template exports like any config: its two Choices become
    columns, its Rating the rating, its TextArea the correction."""
    llm = FakeListLLM(responses=["Berlin.", "Water boils at 90 C."])
    with lstrace.ls_session(
        project_name="Export grading", project_config=templates.get("response-grading")
    ):
        llm.invoke("Capital of Germany?", config={"run_id": run_id(61)})
        llm.invoke("Boiling point of water?", config={"run_id": run_id(62)})
    readback.flushed(2)
    task = tasks_by_run("Export grading")
    annotate(task[61], [choices(["Correct"], "grade", "prompt"), rating(5)])
    annotate(
        task[62],
        [
            textarea("Water boils at 100 C at sea level."),
            choices(["Wrong"], "grade", "prompt"),
            choices(["Made-up facts", "Incomplete"], "problems", "prompt"),
            rating(1),
        ],
    )
    out, result = export(tmp_path, "Export grading", "ratings", as_csv=True)
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [(r["choices.grade"], r["choices.problems"], r["rating"]) for r in rows] == [
        ("Correct", "", "5"),
        ("Wrong", "Made-up facts; Incomplete", "1"),
    ]
    assert [r["corrected_response"] for r in rows] == ["", "Water boils at 100 C at sea level."]
    assert result.ignored_result_types == {}
