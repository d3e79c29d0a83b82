"""Trace mode: one Label Studio task per agent or chain run (lstrace/_capture/trace.py,
lstrace/_delivery/traces.py, lstrace/_delivery/trace_task.py).

LangGraph agents with a fake tool-calling chat model and with ``langchain-openai``
against the local OpenAI-compatible stub: one and several tools, parallel tool calls,
a tool that raises, a subgraph, streaming, ``@ls_track(mode="trace")`` functions,
nested scopes and sampling. Task counts are exact; tasks are read back from Label Studio.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import ToolException, tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from pydantic import SecretStr

import lstrace
from lstrace import ls_session, ls_track
from tests import readback
from tests.fakes import scripted, tool_call
from tests.providers.stubs import OpenAIStub, Reply, ToolCall


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"Sunny in {city}"


@tool
def get_time(city: str) -> str:
    """Get the local time in a city."""
    return f"It is 9:30 in {city}"


@tool
def broken_lookup(city: str) -> str:
    """Look a city up (always fails)."""
    raise ToolException(f"no data for {city}")


def two_calls(*calls: tuple[str, dict[str, Any], str]) -> AIMessage:
    """One assistant reply asking for several tool calls at once (run in parallel)."""
    return AIMessage(content="", tool_calls=[{"name": n, "args": a, "id": i} for n, a, i in calls])


def weather_agent(*replies: AIMessage | str, tools: list[Any] | None = None) -> Any:
    model = scripted(*replies)
    return create_agent(model, tools=tools or [get_weather], system_prompt="You are a weather bot.")


def only_task(project: str) -> readback.Task:
    [task] = readback.tasks(project)
    return task


def who(task: readback.Task) -> list[str]:
    """The speaker labels of the trajectory, timings left out."""
    return [
        turn["who"].split(" · ")[0] if turn["who"][0].isdigit() else turn["who"]
        for turn in task["data"]["trajectory"]
    ]


def test_an_agent_run_is_one_task_with_every_step_in_order() -> None:
    """One agent invoke (model -> tool -> model) becomes exactly one task: the system prompt,
    the user's input, the tool call, the tool's result and the answer, in order; the final
    answer is the editable prediction; the tools offered are listed; messages and tools are
    kept in OpenAI's tool-calling layout."""
    agent = weather_agent(tool_call("get_weather", {"city": "Paris"}), "It is sunny in Paris.")
    with ls_session(project_name="trace: one tool", mode="trace"):
        result = agent.invoke({"messages": [HumanMessage("Weather in Paris?")]})
    assert result["messages"][-1].content == "It is sunny in Paris."
    readback.flushed(1)
    task = only_task("trace: one tool")
    data = task["data"]
    assert who(task) == ["system", "user", "1. assistant", "2. tool", "3. assistant"]
    turns = data["trajectory"]
    assert turns[2]["text"] == '[tool call] get_weather({"city": "Paris"})'
    assert turns[3]["text"] == 'get_weather({"city": "Paris"})\n→ Sunny in Paris'
    assert readback.responses(task) == ["It is sunny in Paris."]
    assert data["prompt"] == data["input"] == "Weather in Paris?"
    assert data["steps"] == 3 and data["tools_used"] == "get_weather"
    assert [c["value"] for c in data["step_choices"]] == [
        "1. assistant · ToolCallingFakeChatModel",
        "2. tool · get_weather",
        "3. assistant · ToolCallingFakeChatModel",
    ]
    assert [t["function"]["name"] for t in data["tools"]] == ["get_weather"]
    assert "Get the weather for a city." in data["tools_text"]
    assert data["messages"] == [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        },
        {
            "role": "tool",
            "content": "Sunny in Paris",
            "name": "get_weather",
            "tool_call_id": "call_1",
        },
    ]
    assert task["predictions"][0]["model_version"] == "ToolCallingFakeChatModel"


def test_several_tools_and_parallel_calls_stay_in_one_task_in_call_order() -> None:
    """Two tools called at once (LangGraph runs them in parallel threads) and a second
    round: one task, the tool results in the order the model asked for them."""
    agent = weather_agent(
        two_calls(("get_weather", {"city": "Oslo"}, "c1"), ("get_time", {"city": "Oslo"}, "c2")),
        tool_call("get_weather", {"city": "Rome"}, "c3"),
        "Oslo: sunny, 9:30. Rome: sunny.",
        tools=[get_weather, get_time],
    )
    with ls_session(project_name="trace: parallel", mode="trace"):
        agent.invoke({"messages": [HumanMessage("Oslo and Rome?")]})
    readback.flushed(1)
    task = only_task("trace: parallel")
    assert who(task)[2:] == [
        "1. assistant",
        "2. tool",
        "3. tool",
        "4. assistant",
        "5. tool",
        "6. assistant",
    ]
    tool_turns = [m for m in task["data"]["messages"] if m["role"] == "tool"]
    assert [(m["name"], m["tool_call_id"]) for m in tool_turns] == [
        ("get_weather", "c1"),
        ("get_time", "c2"),
        ("get_weather", "c3"),
    ]
    assert task["data"]["tools_used"] == "get_weather, get_time"
    assert {t["function"]["name"] for t in task["data"]["tools"]} == {"get_weather", "get_time"}


def test_a_tool_that_raises_is_shown_as_a_failed_step() -> None:
    """A tool error the agent handles (ToolException) is a failed step with its message;
    the run goes on and its answer is the prediction."""
    broken_lookup.handle_tool_error = True
    agent = weather_agent(
        tool_call("broken_lookup", {"city": "Atlantis"}),
        "I could not find Atlantis.",
        tools=[broken_lookup],
    )
    with ls_session(project_name="trace: tool error", mode="trace"):
        agent.invoke({"messages": [HumanMessage("Weather in Atlantis?")]})
    readback.flushed(1)
    task = only_task("trace: tool error")
    assert who(task)[3] == "2. tool"
    assert "broken_lookup · FAILED" in task["data"]["trajectory"][3]["who"]
    assert task["data"]["trajectory"][3]["text"].endswith("→ no data for Atlantis")
    assert readback.responses(task) == ["I could not find Atlantis."]


def test_a_run_that_raises_is_a_task_only_with_capture_errors() -> None:
    """An agent whose tool error escapes fails the run: with capture_errors it is one task
    marked as failed (error column, the failed step shown); without, it is dropped and
    counted. The exception reaches the caller unchanged either way."""

    @tool
    def explode(city: str) -> str:
        """Always raises."""
        raise ValueError("boom")

    for capture, project in ((True, "trace: run error"), (False, "trace: run error dropped")):
        agent = weather_agent(tool_call("explode", {"city": "X"}), "unused", tools=[explode])
        with (
            ls_session(project_name=project, mode="trace", capture_errors=capture),
            pytest.raises(ValueError, match="boom"),
        ):
            agent.invoke({"messages": [HumanMessage("Go")]})
    readback.flushed(1)
    task = only_task("trace: run error")
    assert "ValueError: boom" in task["data"]["error"]
    assert "2. tool · explode · FAILED" in task["data"]["trajectory"][3]["who"]
    assert lstrace.stats().dropped_by_reason == {"error": 1}


class Outer(TypedDict):
    messages: Annotated[list[Any], operator.add]


def test_a_subgraph_belongs_to_its_parents_task_and_shows_its_path() -> None:
    """A graph whose node is a compiled agent (a subgraph): one task; the subgraph's steps
    are labelled with the node they ran in."""
    agent = weather_agent(tool_call("get_weather", {"city": "Lima"}), "Sunny in Lima.")
    outer = StateGraph(Outer)
    outer.add_node("researcher", agent)
    outer.add_edge(START, "researcher")
    outer.add_edge("researcher", END)
    graph = outer.compile()
    with ls_session(project_name="trace: subgraph", mode="trace"):
        graph.invoke({"messages": [HumanMessage("Weather in Lima?")]})
    readback.flushed(1)
    task = only_task("trace: subgraph")
    assert who(task) == [
        "researcher > system",
        "researcher > user",
        "1. researcher > assistant",
        "2. researcher > tool",
        "3. researcher > assistant",
    ]
    assert readback.responses(task) == ["Sunny in Lima."]


def test_streaming_an_agent_makes_one_task() -> None:
    """agent.stream() consumed to the end is one trace, like invoke()."""
    agent = weather_agent(tool_call("get_weather", {"city": "Kyiv"}), "Sunny in Kyiv.")
    with ls_session(project_name="trace: stream", mode="trace"):
        chunks = list(agent.stream({"messages": [HumanMessage("Kyiv?")]}, stream_mode="updates"))
    assert len(chunks) == 3
    readback.flushed(1)
    assert readback.responses(only_task("trace: stream")) == ["Sunny in Kyiv."]


def test_each_agent_invoke_is_its_own_trace() -> None:
    """Two invokes in one session are two tasks, never merged."""
    agent = weather_agent("Hi.", "Hello again.")
    with ls_session(project_name="trace: two runs", mode="trace"):
        agent.invoke({"messages": [HumanMessage("one")]})
        agent.invoke({"messages": [HumanMessage("two")]})
    readback.flushed(2)
    assert sorted(t["data"]["input"] for t in readback.tasks("trace: two runs")) == ["one", "two"]


def test_a_traced_function_is_one_task_over_all_its_runs() -> None:
    """@ls_track(mode="trace"): one call is one task covering both agents it runs; its
    return value is the final answer; its result is unchanged."""
    first = weather_agent(tool_call("get_weather", {"city": "Bern"}), "Sunny in Bern.")
    second = weather_agent("Bern is in Switzerland.")

    @ls_track(project_name="trace: function", mode="trace")
    def answer(question: str) -> str:
        a = first.invoke({"messages": [HumanMessage(question)]})["messages"][-1].content
        b = second.invoke({"messages": [HumanMessage("Where is Bern?")]})["messages"][-1].content
        return f"{a} {b}"

    assert answer("Weather in Bern?") == "Sunny in Bern. Bern is in Switzerland."
    readback.flushed(1)
    task = only_task("trace: function")
    assert task["data"]["input"] == "Weather in Bern?"
    assert task["data"]["steps"] == 4
    assert readback.responses(task) == ["Sunny in Bern. Bern is in Switzerland."]


def test_a_traced_function_that_raises_keeps_its_exception() -> None:
    """The function's exception reaches the caller unchanged; the trace is sent with the
    error when capture_errors is on."""

    @ls_track(project_name="trace: function error", mode="trace", capture_errors=True)
    def fails(question: str) -> str:
        scripted("thinking").invoke(question)
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        fails("Why?")
    readback.flushed(1)
    task = only_task("trace: function error")
    assert "KeyError" in task["data"]["error"]
    assert task["data"]["steps"] == 1


class Glossary(BaseRetriever):
    """A retriever over two fixed documents."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [Document(page_content=f"{query}: a unit of speed"), Document(page_content="end")]


def test_a_retriever_and_a_nested_traced_function_are_steps_of_the_trace() -> None:
    """A retriever run and a traced function called inside a traced function each show
    as a step with their output; the trace is still one task."""
    model = scripted("A knot is one nautical mile per hour.")

    @ls_track(mode="trace")
    def lookup(term: str) -> str:
        return "\n".join(d.page_content for d in Glossary().invoke(term))

    @ls_track(project_name="trace: retriever", mode="trace")
    def explain(term: str) -> str:
        return str(model.invoke(f"Explain {term} using: {lookup(term)}").content)

    assert explain("knot") == "A knot is one nautical mile per hour."
    readback.flushed(1)
    task = only_task("trace: retriever")
    [first, second, *_] = task["data"]["trajectory"]
    assert first["who"].startswith("1. retriever · Glossary · ")
    assert first["text"] == "input: knot\n\noutput: knot: a unit of speed\n\nend"
    assert second["who"].startswith("2. function · ")
    assert second["who"].split(" · ")[1].endswith(".lookup")  # the function's qualified name
    assert second["text"] == "input: knot\n\noutput: knot: a unit of speed\nend"
    assert task["data"]["steps"] == 3
    assert readback.responses(task) == ["A knot is one nautical mile per hour."]


def test_an_inner_scope_never_splits_a_trace() -> None:
    """A tool that opens its own session (another project, chat mode) and calls a model:
    that call stays a step of the agent's trace; no task lands in the inner project."""
    summarizer = scripted("short")

    @tool
    def summarize(text: str) -> str:
        """Summarize a text."""
        with ls_session(project_name="trace: inner (unused)", mode="chat"):
            return str(summarizer.invoke(f"Summarize: {text}").content)

    agent = weather_agent(
        tool_call("summarize", {"text": "a long story"}), "Summary: short.", tools=[summarize]
    )
    with ls_session(project_name="trace: nested", mode="trace"):
        agent.invoke({"messages": [HumanMessage("Summarize it")]})
    readback.flushed(1)
    task = only_task("trace: nested")
    assert who(task)[2:] == ["1. assistant", "user", "2. assistant", "3. tool", "4. assistant"]
    assert task["data"]["trajectory"][3]["text"] == "Summarize: a long story"
    assert readback.project_ids("trace: inner (unused)") == []


def test_sampling_keeps_or_drops_whole_traces() -> None:
    """sample_rate=0 drops the trace with every step in it, counted once per trace."""
    agent = weather_agent(tool_call("get_weather", {"city": "Paris"}), "Sunny.")
    with ls_session(project_name="trace: sampled out", mode="trace", sample_rate=0.0):
        agent.invoke({"messages": [HumanMessage("Paris?")]})
    assert lstrace.flush(5).delivered == 0
    assert lstrace.stats().dropped_by_reason == {"sampled": 1}


def test_langchain_openai_agent_against_the_stub() -> None:
    """A real provider SDK (langchain-openai) against the local OpenAI-compatible stub: one
    task; the model column is the served model, tokens are counted per step, the tools the
    SDK sent are the tools offered."""
    with OpenAIStub() as stub:
        stub.script(
            Reply(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_a")]),
            "It is sunny in Paris.",
        )
        model = ChatOpenAI(
            model="gpt-4o-mini", base_url=stub.base_url, api_key=SecretStr("sk-test")
        )
        agent = create_agent(model, tools=[get_weather], system_prompt="Be brief.")
        with ls_session(project_name="trace: openai", mode="trace"):
            agent.invoke({"messages": [HumanMessage("Weather in Paris?")]})
        sent_tools = stub.exchanges[0].body["tools"]
    readback.flushed(1)
    task = only_task("trace: openai")
    data = task["data"]
    assert data["model"] == task["predictions"][0]["model_version"] == "gpt-4o-mini-2024-07-18"
    assert data["tools"] == sent_tools
    assert data["total_tokens"] == sum(e.usage["total_tokens"] for e in stub.exchanges)
    assert "tokens" in data["trajectory"][2]["who"]
    assert data["messages"][2]["tool_calls"][0]["id"] == "call_a"
    assert readback.responses(task) == ["It is sunny in Paris."]


def test_enable_in_trace_mode_makes_one_task_per_agent_run() -> None:
    """lstrace.enable(mode="trace"): each top-level run of the process is one task."""
    agent = weather_agent(tool_call("get_weather", {"city": "Nice"}), "Sunny in Nice.")
    lstrace.enable(project_name="trace: enable", mode="trace")
    try:
        agent.invoke({"messages": [HumanMessage("Weather in Nice?")]})
    finally:
        lstrace.disable()
    readback.flushed(1)
    task = only_task("trace: enable")
    assert task["data"]["steps"] == 3
    assert readback.responses(task) == ["Sunny in Nice."]


def test_each_item_of_a_batch_is_its_own_trace() -> None:
    """agent.batch() over two inputs: two tasks, each with its own run."""
    agent = weather_agent("Hello, one.", "Hello, two.")
    inputs = [{"messages": [HumanMessage(text)]} for text in ("one", "two")]
    with ls_session(project_name="trace: batch", mode="trace"):
        agent.batch(inputs, config={"max_concurrency": 1})  # in order: the fake model's script
    readback.flushed(2)
    answers = {t["data"]["input"]: readback.responses(t) for t in readback.tasks("trace: batch")}
    assert answers == {"one": ["Hello, one."], "two": ["Hello, two."]}


def test_a_sub_agent_called_by_a_tool_belongs_to_the_parents_task() -> None:
    """An agent that a tool of another agent runs (a sub-agent): its model and tool steps
    are steps of the outer run's one task, in the order they happened."""
    researcher = weather_agent(tool_call("get_weather", {"city": "Bergen"}), "Rain in Bergen.")

    @tool
    def research(city: str) -> str:
        """Ask the research agent about a city."""
        state = researcher.invoke({"messages": [HumanMessage(f"Weather in {city}?")]})
        return str(state["messages"][-1].content)

    boss = weather_agent(
        tool_call("research", {"city": "Bergen"}), "Bring an umbrella.", tools=[research]
    )
    with ls_session(project_name="trace: sub-agent", mode="trace"):
        boss.invoke({"messages": [HumanMessage("Bergen tomorrow?")]})
    readback.flushed(1)
    task = only_task("trace: sub-agent")
    labels = [c["value"].split(" · ")[:2] for c in task["data"]["step_choices"]]
    assert [label[1] for label in labels] == [
        "ToolCallingFakeChatModel",
        "ToolCallingFakeChatModel",
        "get_weather",
        "ToolCallingFakeChatModel",
        "research",
        "ToolCallingFakeChatModel",
    ]
    assert task["data"]["tools_used"] == "get_weather, research"
    assert readback.responses(task) == ["Bring an umbrella."]


async def test_the_innermost_scope_when_the_root_starts_decides_the_project() -> None:
    """Nested trace sessions: a run started inside the inner one goes (whole) to the inner
    project, one started after it to the outer project; async runs alike."""
    inner_agent = weather_agent(tool_call("get_weather", {"city": "Faro"}), "Sunny in Faro.")
    outer_agent = weather_agent("Outer answer.")
    async with ls_session(project_name="trace: outer", mode="trace"):
        async with ls_session(project_name="trace: inner", mode="trace"):
            await inner_agent.ainvoke({"messages": [HumanMessage("Faro?")]})
        await outer_agent.ainvoke({"messages": [HumanMessage("And here?")]})
    readback.flushed(2)
    inner, outer = only_task("trace: inner"), only_task("trace: outer")
    assert (inner["data"]["steps"], readback.responses(inner)) == (3, ["Sunny in Faro."])
    assert (outer["data"]["steps"], readback.responses(outer)) == (1, ["Outer answer."])
