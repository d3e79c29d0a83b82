"""Exports of tool-calling conversations (chat mode): OpenAI/TRL tool-calling layout.

An agent's model calls are captured in chat mode, reviewed through Label Studio's API
(accepted, edited, a tool call's argument corrected), and exported: assistant turns carry
structured ``tool_calls``, tool turns ``tool_call_id`` and ``name``, never the
``[tool call] ...`` text annotators see. Every export loads with ``datasets``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

import lstrace
from tests import readback
from tests.fakes import scripted, tool_call
from tests.test_export import annotate, export, golden, lines, rating, textarea


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"Sunny in {city}"


def seed_agent_chat_project(title: str) -> dict[str, int]:
    """Two agent runs in chat mode (four model calls); returns task ids by role."""
    model = scripted(
        tool_call("get_weather", {"city": "Paris"}),
        "It is sunny in Paris.",
        tool_call("get_weather", {"city": "Pariss"}, "call_2"),
        "Sunny.",
    )
    agent = create_agent(model, tools=[get_weather], system_prompt="You are a weather bot.")
    with lstrace.ls_session(project_name=title, mode="chat"):
        agent.invoke({"messages": [HumanMessage("Weather in Paris?")]})
        agent.invoke({"messages": [HumanMessage("And tomorrow?")]})
    readback.flushed(4)
    tasks = readback.tasks(title)

    def find(user: str, turns: int) -> int:
        return next(
            t["id"]
            for t in tasks
            if t["data"]["prompt"][1]["content"] == user and len(t["data"]["prompt"]) == turns
        )

    return {
        "call": find("Weather in Paris?", 2),
        "answer": find("Weather in Paris?", 4),
        "typo_call": find("And tomorrow?", 2),
        "short_answer": find("And tomorrow?", 4),
    }


def review(tasks: dict[str, int]) -> None:
    """Accept the first tool call; correct the second's argument; edit both answers."""
    to = "dialogue"
    annotate(tasks["call"], [rating(5, to=to)])
    annotate(
        tasks["typo_call"],
        [textarea('[tool call] get_weather({"city": "Paris"})', to=to), rating(2, to=to)],
    )
    annotate(tasks["answer"], [textarea("It is sunny in Paris today.", to=to), rating(4, to=to)])
    annotate(tasks["short_answer"], [textarea("Sunny again tomorrow.", to=to), rating(3, to=to)])


def loads_with_datasets(path: Path) -> Any:
    """The file as a Hugging Face dataset (fails the test if it does not load)."""
    return datasets.load_dataset("json", data_files=str(path), split="train")


def test_sft_chat_rows_carry_structured_tool_calls(tmp_path: Path) -> None:
    """sft in chat mode: an accepted tool call exports the model's own call, a corrected
    one the annotator's arguments (id kept), tool turns their tool_call_id and name; no
    row contains the display text."""
    review(seed_agent_chat_project("Export tools sft"))
    out, result = export(tmp_path, "Export tools sft", "sft")
    rows = {r["messages"][1]["content"] + str(len(r["messages"])): r for r in lines(out)}
    assert result.rows == 4
    call = rows["Weather in Paris?3"]["messages"][-1]
    assert call == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
            }
        ],
    }
    fixed = rows["And tomorrow?3"]["messages"][-1]
    assert fixed["tool_calls"][0]["id"] == "call_2"
    assert fixed["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    answer = rows["Weather in Paris?5"]["messages"]
    assert answer[2]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert answer[3] == {
        "role": "tool",
        "content": "Sunny in Paris",
        "tool_call_id": "call_1",
        "name": "get_weather",
    }
    assert answer[4] == {"role": "assistant", "content": "It is sunny in Paris today."}
    assert "[tool call]" not in out.read_text(encoding="utf-8")
    assert len(loads_with_datasets(out)) == 4
    golden("sft_chat_tools.jsonl", out.read_text(encoding="utf-8"))


def test_preference_chat_rows_carry_structured_tool_calls(tmp_path: Path) -> None:
    """preference in chat mode: the corrected tool call is chosen over the model's, both as
    structured calls."""
    review(seed_agent_chat_project("Export tools pref"))
    out, _ = export(tmp_path, "Export tools pref", "preference")
    rows = lines(out)
    [fix] = [r for r in rows if r["chosen"][0].get("tool_calls")]
    assert fix["chosen"][0]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert fix["rejected"][0]["tool_calls"][0]["function"]["arguments"] == {"city": "Pariss"}
    assert "[tool call]" not in out.read_text(encoding="utf-8")
    assert len(loads_with_datasets(out)) == len(rows)
    golden("preference_chat_tools.jsonl", out.read_text(encoding="utf-8"))
