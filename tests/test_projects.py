"""Which project a task goes to (lstrace/_delivery/projects.py), against a real server's answers.

project_id wins; otherwise the title is matched exactly (the server's filter is
a substring match) and the project created if missing, with the mode's or the
given config; results are cached per process and one project is created even
when threads race. With both project_id and project_config, the project is
checked once, at scope entry, to have the config's tags.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.language_models import FakeListLLM

import lstrace
from lstrace import ls_session
from lstrace._client import LabelStudioClient
from lstrace._delivery.projects import ProjectCache
from lstrace._labelconfig import CHAT_CONFIG, PROMPT_CONFIG, Target, default_target
from lstrace._options import make_args, resolve
from tests import readback

LLM = FakeListLLM(responses=["ok"])

# The custom config of the langchain-community handler's documentation.
FEEDBACK_CONFIG = """<View>
<Text name="prompt" value="$prompt"/>
<TextArea name="response" toName="prompt"/>
<TextArea name="user_feedback" toName="prompt"/>
<Rating name="rating" toName="prompt"/>
</View>"""
QUESTION_CONFIG = """<View>
<Text name="q" value="$question"/>
<TextArea name="answer" toName="q" editable="true"/>
</View>"""


def count_calls(monkeypatch: pytest.MonkeyPatch, method: str) -> Counter[str]:
    """Count calls of a LabelStudioClient method (the real method still runs)."""
    calls: Counter[str] = Counter()
    real: Callable[..., Any] = getattr(LabelStudioClient, method)

    def counted(self: LabelStudioClient, *args: Any, **kwargs: Any) -> Any:
        calls[method] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LabelStudioClient, method, counted)
    return calls


def test_project_id_wins_over_project_name() -> None:
    """Given an id and a name, tasks go to that id and no project with the name is created."""
    project = readback.create_project("projects: by id", PROMPT_CONFIG)
    with ls_session(project_id=project, project_name="projects: name not used"):
        LLM.invoke("sent by id")
    readback.flushed(1)
    assert [t["data"]["prompt"] for t in readback.tasks(project)] == ["sent by id"]
    assert readback.project_ids("projects: name not used") == []


def test_title_match_is_exact_even_though_the_servers_filter_is_a_substring() -> None:
    """With "Jokes 2" on the server, "Jokes" is a different project: it is created; a later
    "Jokes 2" session reuses the existing one."""
    jokes_2 = readback.create_project("Jokes 2", PROMPT_CONFIG)
    with ls_session(project_name="Jokes"):
        LLM.invoke("for Jokes")
    readback.flushed(1)
    with ls_session(project_name="Jokes 2"):
        LLM.invoke("for Jokes 2")
    readback.flushed(1)
    [jokes] = readback.project_ids("Jokes")
    assert jokes != jokes_2
    assert readback.project_ids("Jokes 2") == [jokes_2]
    assert [t["data"]["prompt"] for t in readback.tasks(jokes)] == ["for Jokes"]
    assert [t["data"]["prompt"] for t in readback.tasks(jokes_2)] == ["for Jokes 2"]


def test_a_missing_project_is_created_with_the_modes_config() -> None:
    """A new title in chat mode creates a project with the chat (Paragraphs) config."""
    with ls_session(project_name="projects: created chat", mode="chat"):
        LLM.invoke("hello chat")
    readback.flushed(1)
    project = readback.project_id("projects: created chat")
    assert readback.label_config(project) == CHAT_CONFIG
    [task] = readback.tasks(project)
    assert task["data"]["prompt"] == [{"role": "user", "content": "hello chat"}]


def test_custom_config_creates_the_project_and_its_keys_are_filled() -> None:
    """project_config creates the project with it; the prompt goes under its $variable and the
    response to its TextArea."""
    with ls_session(project_name="projects: custom config", project_config=QUESTION_CONFIG):
        LLM.invoke("What is 2+2?")
    readback.flushed(1)
    project = readback.project_id("projects: custom config")
    assert readback.label_config(project) == QUESTION_CONFIG
    [task] = readback.tasks(project)
    assert task["data"]["question"] == "What is 2+2?"
    [result] = task["predictions"][0]["result"]
    assert (result["from_name"], result["to_name"], result["value"]) == (
        "answer",
        "q",
        {"text": ["ok"]},
    )


def test_project_id_from_the_environment() -> None:
    """LABEL_STUDIO_PROJECT_ID sends tasks to that project when no project is named."""
    project = readback.create_project("projects: from env", PROMPT_CONFIG)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LABEL_STUDIO_PROJECT_ID", str(project))
        with ls_session():
            LLM.invoke("via env id")
    readback.flushed(1)
    assert [t["data"]["prompt"] for t in readback.tasks(project)] == ["via env id"]


def test_resolution_is_cached_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A project is looked up (and created) once; later batches to it ask nothing again."""
    calls = count_calls(monkeypatch, "projects_titled")
    config_calls = count_calls(monkeypatch, "project")
    for prompt in ("first batch", "second batch", "third batch"):
        with ls_session(project_name="projects: cached"):
            LLM.invoke(prompt)
        readback.flushed(1)
    assert calls["projects_titled"] == 2  # before and after creating it, in the first batch
    assert config_calls["project"] == 1
    assert len(readback.tasks("projects: cached")) == 3


def test_threads_resolving_a_new_project_at_once_create_one_project() -> None:
    """Four threads resolving the same missing title at the same moment get one project."""
    dest = resolve(make_args(project_name="projects: race"), None).destination
    options = resolve(make_args(), None)
    client = LabelStudioClient(dest.url, options.api_key)
    cache = ProjectCache()
    start = threading.Barrier(4)
    found: list[int] = []

    def resolve_it() -> None:
        start.wait()
        found.append(cache.resolve(dest, client).id)

    threads = [threading.Thread(target=resolve_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert readback.project_ids("projects: race") == [found[0]]
    assert found == [found[0]] * 4


def test_sessions_in_threads_for_a_new_project_fill_one_project() -> None:
    """Calls from several threads' sessions to one new title all land in one project."""

    def work(i: int) -> None:
        with ls_session(project_name="projects: threads"):
            LLM.invoke(f"thread {i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    readback.flushed(4)
    assert set(readback.by_prompt("projects: threads")) == {f"thread {i}" for i in range(4)}


def test_project_id_with_a_config_it_has_is_accepted_and_its_textarea_used() -> None:
    """project_id + project_config: entry checks the project has the config's tags; the
    response then goes to the config's TextArea, even when it is not the project's first."""
    project = readback.create_project("projects: has the tags", FEEDBACK_CONFIG)
    feedback_only = (
        '<View><Text name="prompt" value="$prompt"/>'
        '<TextArea name="user_feedback" toName="prompt"/></View>'
    )
    with ls_session(project_id=project, project_config=feedback_only):
        LLM.invoke("checked at entry")
    readback.flushed(1)
    [task] = readback.tasks(project)
    assert task["predictions"][0]["result"][0]["from_name"] == "user_feedback"


def test_project_id_with_a_config_it_lacks_fails_at_entry_once_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A project without the config's tags raises ConfigError at scope entry, naming the
    missing TextArea; the server is asked once, later entries fail from the cache."""
    project = readback.create_project("projects: lacks the tags", FEEDBACK_CONFIG)
    calls = count_calls(monkeypatch, "project")
    for _ in range(3):
        with (
            pytest.raises(lstrace.ConfigError, match="needs TextArea 'answer' on Text 'q'"),
            ls_session(project_id=project, project_config=QUESTION_CONFIG),
        ):
            LLM.invoke("never runs")
    assert calls["project"] == 1
    assert lstrace.stats().captured == 0
    # the same project without project_config is fine: it is used as it is
    with ls_session(project_id=project):
        LLM.invoke("as it is")
    readback.flushed(1)
    [task] = readback.tasks(project)
    assert task["predictions"][0]["result"][0]["from_name"] == "response"


def test_entry_check_on_an_unreachable_server_warns_and_captures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """When the entry check cannot reach the server, the scope opens with a warning and the
    call is captured (and kept) for the background sender."""
    caplog.set_level(logging.WARNING, logger="lstrace")
    with ls_session(project_id=3, project_config=QUESTION_CONFIG, url="http://127.0.0.1:18099"):
        assert LLM.invoke("kept for later") == "ok"
    assert "could not check that project id 3" in caplog.text
    result = lstrace.flush(timeout=1)
    assert (result.delivered, result.pending) == (0, 1)


def test_default_target_when_the_project_is_found_by_title() -> None:
    """A project found by title keeps its own config: responses go to its TextArea."""
    project = readback.create_project("projects: found by title", CHAT_CONFIG)
    with ls_session(project_name="projects: found by title"):  # prompt mode, chat project
        LLM.invoke("found")
    readback.flushed(1)
    [task] = readback.tasks(project)
    target = default_target("chat")
    assert isinstance(target, Target)
    assert task["predictions"][0]["result"][0]["to_name"] == target.to_name
    assert task["data"]["prompt"] == [{"role": "user", "content": "found"}]
