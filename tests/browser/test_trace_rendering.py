"""Trace mode renders in a real Label Studio: one agent run as one task, every step
readable, captured text shown as text (never HTML), the final answer editable, a step
marked wrong and a rating stored (lstrace/_labelconfig.py TRACE_CONFIG)."""

from __future__ import annotations

import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

from lstrace import ls_session
from tests.browser.pages import LabelStudioPage
from tests.browser.server import Server
from tests.browser.test_rendering import check_data_manager, deliver, only_task, submitted_results
from tests.fakes import scripted, tool_call

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="window.__lstrace_pwned=1"><b>bold?</b>'
ANSWER = "Your quota is full: stop a service or ask for more."
FIXED = "Your quota is full (8/8 vCPU): stop a service or ask for a higher quota."


@tool
def get_quota(project: str) -> str:
    """Look up a project's quota usage."""
    return f"8/8 vCPU used by {project}. Note: {HOSTILE}"


def test_trace_task_shows_the_run_and_stores_the_review(
    ui: LabelStudioPage, ls_server: Server, title: str
) -> None:
    """One agent run (model -> tool -> model) is one task: system prompt, user input, the
    tool call, the tool's result (its HTML shown as literal text, not rendered), the
    answer; the tools offered are in a collapsed panel; the annotator corrects the answer,
    marks the tool step as wrong, rates, and the server stores all three."""
    model = scripted(tool_call("get_quota", {"project": "web-prod"}), ANSWER)
    agent = create_agent(model, tools=[get_quota], system_prompt="You are Ada, the support bot.")
    with ls_session(project_name=title, mode="trace"):
        agent.invoke({"messages": [HumanMessage("Why did my deploy fail?")]})
    deliver()
    project, task = only_task(ls_server, title)
    check_data_manager(ui, project, "Why did my deploy fail?")

    area = ui.open_task(project, task)
    text = area.inner_text()
    for shown in (
        "You are Ada, the support bot.",
        "Why did my deploy fail?",
        '[tool call] get_quota({"project": "web-prod"})',
        "8/8 vCPU used by web-prod",
        HOSTILE,  # the markup itself, as text
        "1. assistant",
        "2. tool · get_quota",
    ):
        assert shown in text, shown
    assert area.locator("img[src=x]").count() == 0
    assert ui.page.evaluate("window.__lstrace_pwned === undefined")
    assert ui.response_box().first.inner_text().strip() == ANSWER

    panel = area.get_by_text("Tools offered to the model")
    panel.click()
    ui.wait_visible(area.get_by_text("Look up a project's quota usage."), "the tools panel")
    ui.settle()
    ui.screenshot("task")

    box = ui.edit_response()
    box.fill(FIXED)
    box.press("Enter")  # rows="6": Enter adds a line; the value is read on submit
    area.locator(".lsf-choice__item", has_text="2. tool · get_quota").click()
    area.locator(".ant-rate-star").nth(1).click()
    ui.settle()
    ui.screenshot("reviewed")
    ui.page.get_by_role("button", name="Submit").click()

    results = submitted_results(ls_server, task)
    assert results["answer"]["value"]["text"][0].strip() == FIXED
    assert results["wrong_step"]["value"]["choices"] == ["2. tool · get_quota"]
    assert results["rating"]["value"]["rating"] == 2
    ui.check_no_errors()
