"""Exports of trace projects (mode="trace"): sft in OpenAI's / TRL's tool-calling layout
(``{"messages": [...], "tools": [...]}``), preference with the trajectory as the prompt,
ratings with step count, tools used and the step marked wrong. Golden files; every export
loads with ``datasets`` and passes a check of TRL's documented tool-calling format."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage

import lstrace
from tests import readback
from tests.fakes import tool_call
from tests.test_export import (
    annotate,
    choices,
    export,
    golden,
    lines,
    rating,
    textarea,
    without_task_ids,
)
from tests.test_export_tools import loads_with_datasets
from tests.test_trace import get_time, get_weather, two_calls, weather_agent

ROLES = {"system", "user", "assistant", "tool"}


def check_tool_calling_format(messages: Sequence[Mapping[str, Any]], tools: Any = None) -> None:
    """TRL's documented conversational tool-calling layout (and OpenAI's): roles, structured
    tool calls with a JSON-object ``arguments``, tool turns answering an earlier call by id
    and name, tools as ``{"type": "function", "function": {name, description, parameters}}``."""
    asked: dict[str, str] = {}
    for message in messages:
        assert message["role"] in ROLES, message
        assert isinstance(message.get("content"), str), message
        for call in message.get("tool_calls") or []:
            assert message["role"] == "assistant"
            assert call["type"] == "function" and isinstance(call["id"], str)
            assert isinstance(call["function"]["name"], str)
            assert isinstance(call["function"]["arguments"], dict)
            asked[call["id"]] = call["function"]["name"]
        if message["role"] == "tool":
            assert asked.get(message["tool_call_id"]) == message["name"], message
    for spec in tools or []:
        assert spec["type"] == "function"
        assert {"name", "description", "parameters"} <= set(spec["function"])
        assert spec["function"]["parameters"]["type"] == "object"


def seed_trace_project(title: str) -> dict[str, int]:
    """Two agent runs in trace mode, reviewed: the first's answer corrected, rated 2, its
    second step marked wrong; the second's answer accepted, rated 5."""
    first = weather_agent(
        two_calls(("get_weather", {"city": "Oslo"}, "c1"), ("get_time", {"city": "Oslo"}, "c2")),
        "Oslo: rainy.",
        tools=[get_weather, get_time],
    )
    second = weather_agent(tool_call("get_weather", {"city": "Rome"}, "c3"), "Rome: sunny.")
    with lstrace.ls_session(project_name=title, mode="trace"):
        first.invoke({"messages": [HumanMessage("Weather and time in Oslo?")]})
        second.invoke({"messages": [HumanMessage("Weather in Rome?")]})
    readback.flushed(2)
    ids = {t["data"]["input"]: t["id"] for t in readback.tasks(title)}
    oslo, rome = ids["Weather and time in Oslo?"], ids["Weather in Rome?"]
    to = "trajectory"
    annotate(
        oslo,
        [
            textarea("Oslo: sunny, and it is 9:30.", name="answer", to=to),
            rating(2, to=to),
            choices(["2. tool · get_weather"], "wrong_step", to),
        ],
    )
    annotate(rome, [rating(5, to=to)])
    return {"oslo": oslo, "rome": rome}


def test_sft_rows_of_a_trace_project_are_trls_tool_calling_layout(tmp_path: Path) -> None:
    """One row per reviewed trace: the whole trajectory (system, user, the parallel tool
    calls structured, each tool's result by id and name), the corrected final answer last,
    and the tools offered."""
    seed_trace_project("Export trace sft")
    out, result = export(tmp_path, "Export trace sft", "sft")
    rows = lines(out)
    assert result.rows == 2 and [sorted(r) for r in rows] == [["messages", "tools"]] * 2
    oslo = next(r for r in rows if r["messages"][1]["content"] == "Weather and time in Oslo?")
    assert [m["role"] for m in oslo["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    assert [c["function"]["name"] for c in oslo["messages"][2]["tool_calls"]] == [
        "get_weather",
        "get_time",
    ]
    assert oslo["messages"][-1] == {"role": "assistant", "content": "Oslo: sunny, and it is 9:30."}
    assert [t["function"]["name"] for t in oslo["tools"]] == ["get_weather", "get_time"]
    for row in rows:
        check_tool_calling_format(row["messages"], row["tools"])
        assert row["messages"][-1]["role"] == "assistant"
    assert "[tool call]" not in out.read_text(encoding="utf-8")
    assert len(loads_with_datasets(out)) == 2
    golden("sft_trace.jsonl", out.read_text(encoding="utf-8"))


def test_preference_rows_of_a_trace_project(tmp_path: Path) -> None:
    """The corrected final answer is chosen over the model's, with the trajectory as the
    prompt (and the tools offered)."""
    seed_trace_project("Export trace pref")
    out, _ = export(tmp_path, "Export trace pref", "preference")
    [row] = lines(out)
    assert row["chosen"] == [{"role": "assistant", "content": "Oslo: sunny, and it is 9:30."}]
    assert row["rejected"] == [{"role": "assistant", "content": "Oslo: rainy."}]
    check_tool_calling_format(row["prompt"], row["tools"])
    assert len(loads_with_datasets(out)) == 1
    golden("preference_trace.jsonl", out.read_text(encoding="utf-8"))


def test_rating_pairs_of_a_trace_project_carry_the_tools(tmp_path: Path) -> None:
    """Two runs of the same trajectory rated differently, neither answer edited: the better
    answer is chosen over the worse, with the trajectory as the prompt and the tools
    offered (as sft rows have them)."""
    title = "Export trace rating pairs"
    with lstrace.ls_session(project_name=title, mode="trace"):
        for answer in ("Paris: sunny.", "No idea."):
            weather_agent(tool_call("get_weather", {"city": "Paris"}), answer).invoke(
                {"messages": [HumanMessage("Weather in Paris?")]}
            )
    readback.flushed(2)
    for task in readback.tasks(title):
        stars = 5 if readback.responses(task) == ["Paris: sunny."] else 1
        annotate(task["id"], [rating(stars, to="trajectory")])
    out, result = export(tmp_path, title, "preference")
    [row] = lines(out)
    assert result.rows == 1
    assert row["chosen"] == [{"role": "assistant", "content": "Paris: sunny."}]
    assert row["rejected"] == [{"role": "assistant", "content": "No idea."}]
    assert [t["function"]["name"] for t in row["tools"]] == ["get_weather"]
    check_tool_calling_format(row["prompt"], row["tools"])
    assert len(loads_with_datasets(out)) == 1


def test_ratings_rows_of_a_trace_project(tmp_path: Path) -> None:
    """One row per annotated trace with its step count, the tools it used, the step marked
    wrong and the rating."""
    seed_trace_project("Export trace ratings")
    out, _ = export(tmp_path, "Export trace ratings", "ratings")
    rows = {r["rating"]: r for r in lines(out)}
    assert rows[2]["steps"] == 4 and rows[2]["tools_used"] == ["get_weather", "get_time"]
    assert rows[2]["wrong_step"] == "2. tool · get_weather"
    assert rows[2]["corrected_response"] == "Oslo: sunny, and it is 9:30."
    assert rows[5]["steps"] == 3 and rows[5]["wrong_step"] is None
    assert len(loads_with_datasets(out)) == 2
    stable = re.sub(r'"run_id": "[^"]+"', '"run_id": "<root run id>"', out.read_text("utf-8"))
    golden("ratings_trace.jsonl", without_task_ids(stable))
