"""What lstrace sends renders in a real Label Studio: every mode, every template.

Each test captures calls of LangChain fake models through lstrace, delivers them to a
real server, then opens the project's Data Manager and the task's labeling view in
headless Chromium. A JavaScript page error fails the test at once (a task Label
Studio cannot render makes the whole project unviewable); so does content missing
from the page. Screenshots of every view go to ``artifacts/browser/``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.language_models import FakeListLLM, GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from typing_extensions import Unpack

import lstrace
from lstrace import TraceOptions, ls_session, templates
from lstrace._labelconfig import DEFAULT_CONFIGS, Target, target_from_xml
from tests.browser.pages import LabelStudioPage
from tests.browser.server import Server

pytestmark = pytest.mark.browser

SYSTEM = "You are Ada, the support assistant of Acme Cloud.\nBe concise and friendly."
QUESTION = "My deploy failed with 'quota exceeded'. What can I do?"
TOOL_RESULT = '{"project": "web-prod", "cpu": "8/8 vCPU", "memory": "30/32 GB"}'
ANSWER = (
    "Your project web-prod uses all 8 of its 8 vCPUs, so the new release cannot start.\n"
    "You can:\n"
    "1. stop a service you no longer need (Services > Stop), or\n"
    "2. ask for a higher quota in Settings > Quotas; requests are usually approved "
    "within an hour."
)
CONVERSATION: list[BaseMessage] = [
    SystemMessage(SYSTEM),
    HumanMessage(QUESTION),
    AIMessage("", tool_calls=[{"name": "get_quota", "args": {"project": "web-prod"}, "id": "c1"}]),
    ToolMessage(TOOL_RESULT, tool_call_id="c1"),
]
PROMPT = "Explain recursion to a new programmer.\nKeep it to two sentences."
COMPLETION = (
    "Recursion is when a function solves a problem by calling itself on a smaller "
    "piece of the same problem.\nIt stops at a base case simple enough to answer directly."
)
CUSTOM_CONFIG = """<View>
  <Text name="question" value="$prompt"/>
  <Header value="Answer"/>
  <TextArea name="answer" toName="question" editable="true" maxSubmissions="1"/>
  <Header value="Verdict"/>
  <Choices name="verdict" toName="question" choice="single-radio" showInline="true">
    <Choice value="Good"/>
    <Choice value="Bad"/>
  </Choices>
  <Header value="Stars"/>
  <Rating name="stars" toName="question" maxRating="5"/>
</View>"""


def capture_completion(**scope: Unpack[TraceOptions]) -> None:
    """One completion-model call (a plain prompt) captured in a session with ``scope``."""
    with ls_session(**scope):
        FakeListLLM(responses=[COMPLETION]).invoke(PROMPT)
    deliver()


def capture_chat(
    messages: Sequence[BaseMessage] = CONVERSATION, **scope: Unpack[TraceOptions]
) -> None:
    """One chat-model call on ``messages`` captured in a session with ``scope``."""
    with ls_session(**scope):
        GenericFakeChatModel(messages=iter([AIMessage(ANSWER)])).invoke(list(messages))
    deliver()


def deliver() -> None:
    """Deliver what was captured now; fail if any task is left behind."""
    result = lstrace.flush(timeout=60)
    assert result.pending == 0 and result.delivered > 0, f"not delivered: {result}"


def only_task(server: Server, title: str) -> tuple[int, int]:
    """The project id and the id of its one task."""
    project = server.project_id(title)
    tasks = server.task_ids(project)
    assert len(tasks) == 1, f"expected one task in {title!r}, found {tasks}"
    return project, tasks[0]


def check_data_manager(ui: LabelStudioPage, project: int, expected: str) -> None:
    """The task list shows one row whose cells include ``expected``."""
    rows = ui.open_data_manager(project)
    assert rows.count() == 1
    assert expected in rows.first.inner_text()
    ui.settle()
    ui.screenshot("datamanager")


def test_prompt_mode_renders_prompt_and_editable_response(
    ui: LabelStudioPage, ls_server: Server, title: str
) -> None:
    """Prompt mode: the Data Manager lists the task; the labeling view shows the prompt,
    the response pre-filled and editable, and the rating, with no page error."""
    capture_completion(project_name=title)
    project, task = only_task(ls_server, title)
    check_data_manager(ui, project, "Explain recursion")

    area = ui.open_task(project, task)
    assert "Explain recursion to a new programmer." in area.inner_text()
    assert ui.response_box().first.inner_text().strip() == COMPLETION
    ui.wait_visible(area.get_by_text("Rate the response:"), "the rating's label")
    ui.settle()
    ui.screenshot("task")
    assert one_line(ui.edit_response().input_value()) == one_line(COMPLETION)


def test_chat_mode_shows_every_turn_and_the_response(
    ui: LabelStudioPage, ls_server: Server, title: str
) -> None:
    """Chat mode: each turn (system, user, the assistant's tool call, the tool's answer)
    shows with its role, and the final response is pre-filled and editable."""
    capture_chat(project_name=title, mode="chat")
    project, task = only_task(ls_server, title)
    check_data_manager(ui, project, "You are Ada")

    area = ui.open_task(project, task)
    text = area.inner_text()
    for role in ("system", "user", "assistant", "tool"):
        ui.wait_visible(area.get_by_text(role, exact=True), f"the role {role!r}")
    for turn in ("You are Ada", QUESTION, '[tool call] get_quota({"project": "web-prod"})'):
        assert turn in text, turn
    assert "8/8 vCPU" in text
    assert ui.response_box().first.inner_text().strip() == ANSWER
    ui.settle()
    ui.screenshot("task")
    assert one_line(ui.edit_response().input_value()) == one_line(ANSWER)


def one_line(text: str) -> str:
    """``text`` without line breaks, as the defaults' one-line edit box shows it."""
    return text.replace("\n", "")


@pytest.mark.parametrize("mode", ["prompt", "chat"])
def test_default_configs_keep_line_breaks_when_editing(
    ui: LabelStudioPage, ls_server: Server, title: str, mode: str
) -> None:
    """Editing a multi-line response in a default config starts from all of its lines."""
    if mode == "chat":
        capture_chat(project_name=title, mode="chat")
    else:
        capture_completion(project_name=title)
    project, task = only_task(ls_server, title)
    ui.open_task(project, task)
    assert ui.edit_response().input_value() == (ANSWER if mode == "chat" else COMPLETION)


def test_custom_config_with_choices_and_rating_submits_an_annotation(
    ui: LabelStudioPage, ls_server: Server, title: str
) -> None:
    """A custom config (own TextArea, Choices, Rating): the response lands in its TextArea,
    and an annotator can pick a choice, rate and submit; the server stores all three."""
    capture_completion(project_name=title, project_config=CUSTOM_CONFIG)
    project, task = only_task(ls_server, title)
    check_data_manager(ui, project, "Explain recursion")

    area = ui.open_task(project, task)
    assert ui.response_box().first.inner_text().strip() == COMPLETION
    area.locator(".lsf-choice__item", has_text="Good").click()
    area.locator(".ant-rate-star").nth(3).click()
    ui.settle()
    ui.screenshot("task")
    ui.page.get_by_role("button", name="Submit").click()

    results = submitted_results(ls_server, task)
    assert results["answer"]["value"]["text"] == [COMPLETION]
    assert results["verdict"]["value"]["choices"] == ["Good"]
    assert results["stars"]["value"]["rating"] == 4
    ui.check_no_errors()


def submitted_results(server: Server, task: int, timeout: float = 20.0) -> dict[str, Any]:
    """The results of the task's first submitted annotation, by control name."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        annotations = server.annotations(task)
        if annotations:
            return {r["from_name"]: r for r in annotations[0].result}
        time.sleep(0.5)
    raise AssertionError(f"no annotation of task {task} after {timeout:.0f} s")


EXTRA_TEMPLATES = [name for name in templates.names() if name not in DEFAULT_CONFIGS]


def wants_dialogue(xml: str) -> bool:
    """Whether a template (none is pairwise: each has a TextArea) shows a conversation."""
    target = target_from_xml(xml)
    assert isinstance(target, Target), target
    return target.wants_dialogue


@pytest.mark.parametrize("name", EXTRA_TEMPLATES)
def test_template_renders_metadata_response_and_details(
    ui: LabelStudioPage, ls_server: Server, title: str, name: str
) -> None:
    """Each named template: the model and tags line, the prompt or conversation, the
    pre-filled response, its controls' labels, and the collapsed details (run id)."""
    xml = templates.get(name)
    dialogue = wants_dialogue(xml)
    scope: TraceOptions = {"project_name": title, "project_config": xml, "tags": ["smoke", "v2"]}
    if dialogue:
        capture_chat(**scope)
    else:
        capture_completion(**scope)
    project, task = only_task(ls_server, title)
    check_data_manager(ui, project, "Acme Cloud" if dialogue else "Explain recursion")

    area = ui.open_task(project, task)
    model = "GenericFakeChatModel" if dialogue else "FakeListLLM"
    ui.wait_visible(area.get_by_text(f"Model: {model} · Tags: smoke, v2"), "the model line")
    assert (QUESTION if dialogue else "Explain recursion to a new programmer.") in (
        area.inner_text()
    )
    assert ui.response_box().first.inner_text().strip() == (ANSWER if dialogue else COMPLETION)
    assert area.locator(".lsf-choices").count() >= 1
    assert area.locator(".ant-rate").count() == 1
    ui.screenshot("task")
    assert ui.edit_response().input_value() == (ANSWER if dialogue else COMPLETION)

    run_id = ls_server.sdk.tasks.get(task).data["run_id"]
    area.get_by_text("Details (run, tokens, latency, metadata)").click()
    ui.wait_visible(area.get_by_text(f"Run: {run_id}", exact=False), "the details panel")
    ui.settle()
    ui.screenshot("task-details")


@pytest.mark.parametrize("name", [n for n in EXTRA_TEMPLATES if wants_dialogue(templates.get(n))])
def test_chat_templates_set_the_system_prompt_apart(
    ui: LabelStudioPage, ls_server: Server, title: str, name: str
) -> None:
    """In chat templates the system turn has its own background, unlike user turns, and the
    audio time stamps Label Studio prints on every turn are hidden."""
    capture_chat(project_name=title, project_config=templates.get(name))
    project, task = only_task(ls_server, title)
    area = ui.open_task(project, task)
    backgrounds: dict[str, str] = area.evaluate(
        """el => Object.fromEntries([...el.querySelectorAll('[data-testid^="phrase:"]')]
              .map(p => [p.querySelector('[class*="dialoguename"]').textContent,
                         getComputedStyle(p).backgroundColor]))"""
    )
    assert set(backgrounds) == {"system", "user", "assistant", "tool"}
    assert backgrounds["system"] != backgrounds["user"]
    assert backgrounds["user"] == backgrounds["assistant"]
    assert not area.get_by_text("00:00:00 - 00:00:00").first.is_visible()
    ui.check_no_errors()


def test_pairwise_mode_shows_both_answers_and_records_the_choice(
    ui: LabelStudioPage, ls_server: Server, title: str
) -> None:
    """Pairwise mode: two models answering one prompt make one task showing the prompt and
    both answers side by side; clicking one submits that preference."""
    with ls_session(project_name=title, mode="pairwise"):
        FakeListLLM(responses=[COMPLETION]).invoke(PROMPT)
        FakeListLLM(responses=["Recursion: see recursion."]).invoke(PROMPT)
    deliver()
    project, task = only_task(ls_server, title)
    check_data_manager(ui, project, "Explain recursion")

    ui.page.goto(f"{ls_server.url}/projects/{project}/data?task={task}")
    area = ui.page.locator(".lsf-main-view__annotation")
    answer_b = area.get_by_text("Recursion: see recursion.")
    ui.wait_visible(answer_b, "the second answer")
    assert "Explain recursion to a new programmer." in area.inner_text()
    assert "It stops at a base case" in area.inner_text()
    answer_b.click()
    ui.settle()
    ui.screenshot("task")
    ui.page.get_by_role("button", name="Submit").click()
    assert submitted_results(ls_server, task)["preference"]["value"] == {"selected": "right"}
