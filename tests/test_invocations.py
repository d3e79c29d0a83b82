"""Every way LangChain runs a model is captured, once per call (lstrace/_capture/handler.py).

invoke, ainvoke, stream, astream, batch, abatch; LLMs and chat models; LCEL
chains, tools, a LangGraph graph and a ``create_agent`` agent; LangChain's
thread pools and asyncio tasks. Raw ``threading.Thread`` targets start with an
empty context: they are captured only when wrapped with ``lstrace.with_scope``
(or by ``enable()``). Tasks are read back from Label Studio.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypedDict

from langchain.agents import create_agent
from langchain_core.language_models import (
    FakeListLLM,
    FakeStreamingListLLM,
    GenericFakeChatModel,
    LanguageModelInput,
)
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.runnables import RunnableParallel
from langchain_core.runnables.config import ContextThreadPoolExecutor
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph

import lstrace
from lstrace import ls_session
from tests import readback
from tests.fakes import scripted, tool_call

RUN_ID = uuid.UUID("00000000-0000-4000-8000-00000000a001")
CHAIN_RUN_ID = uuid.UUID("00000000-0000-4000-8000-00000000c001")


def chat_model(reply: str = "ok") -> GenericFakeChatModel:
    """A fake chat model answering ``reply`` every time (safe across threads)."""
    return GenericFakeChatModel(messages=itertools.repeat(AIMessage(reply)))


def test_llm_invoke_task_carries_run_id_model_parent_usage_and_latency() -> None:
    """An LLM call becomes one task with its run id, model, empty parent and a latency."""
    with ls_session(project_name="calls: llm invoke"):
        FakeListLLM(responses=["Paris"]).invoke("Capital of France?", config={"run_id": RUN_ID})
    readback.flushed(1)
    [task] = readback.tasks("calls: llm invoke")
    data = task["data"]
    assert data["prompt"] == "Capital of France?"
    assert data["run_id"] == str(RUN_ID)
    assert data["parent_run_id"] == ""
    assert data["model"] == task["predictions"][0]["model_version"] == "FakeListLLM"
    assert isinstance(data["latency_ms"], float) and data["latency_ms"] >= 0
    assert readback.responses(task) == ["Paris"]


def test_chat_invoke_records_token_usage() -> None:
    """A chat model's usage_metadata becomes prompt/completion/total token columns."""
    reply = AIMessage(
        "Hi!", usage_metadata={"input_tokens": 9, "output_tokens": 2, "total_tokens": 11}
    )
    with ls_session(project_name="calls: chat usage"):
        GenericFakeChatModel(messages=iter([reply])).invoke("Hello")
    readback.flushed(1)
    [task] = readback.tasks("calls: chat usage")
    data = task["data"]
    assert (data["prompt_tokens"], data["completion_tokens"], data["total_tokens"]) == (9, 2, 11)
    assert data["model"] == "GenericFakeChatModel"


async def test_ainvoke_of_llm_and_chat_model() -> None:
    """ainvoke on an LLM and on a chat model each make one task."""
    async with ls_session(project_name="calls: ainvoke"):
        await FakeListLLM(responses=["llm reply"]).ainvoke("async llm")
        await chat_model("chat reply").ainvoke("async chat")
    readback.flushed(2)
    tasks = readback.by_prompt("calls: ainvoke")
    assert readback.responses(tasks["async llm"]) == ["llm reply"]
    assert readback.responses(tasks["async chat"]) == ["chat reply"]


def test_stream_makes_one_task_with_the_whole_response() -> None:
    """Streaming an LLM or a chat model yields chunks; the task has the joined response."""
    with ls_session(project_name="calls: stream"):
        llm_chunks = list(FakeStreamingListLLM(responses=["streamed llm"]).stream("llm stream"))
        chat_chunks = list(chat_model("streamed chat reply").stream("chat stream"))
    assert "".join(llm_chunks) == "streamed llm"
    assert len(chat_chunks) > 1
    readback.flushed(2)
    tasks = readback.by_prompt("calls: stream")
    assert readback.responses(tasks["llm stream"]) == ["streamed llm"]
    assert readback.responses(tasks["chat stream"]) == ["streamed chat reply"]


async def test_astream_makes_one_task_with_the_whole_response() -> None:
    """astream is captured once, with the full text, not once per chunk."""
    async with ls_session(project_name="calls: astream"):
        chunks = [c async for c in chat_model("one two three").astream("async stream")]
    assert len(chunks) == 5  # "one", " ", "two", " ", "three"
    readback.flushed(1)
    [task] = readback.tasks("calls: astream")
    assert readback.responses(task) == ["one two three"]


def test_batch_runs_in_langchains_thread_pool_and_every_call_is_captured() -> None:
    """batch() runs calls on LangChain's thread pool, which carries the scope: one task each."""
    prompts: list[LanguageModelInput] = [f"batch prompt {i}" for i in range(6)]
    with ls_session(project_name="calls: batch"):
        replies = chat_model("batched").batch(prompts, config={"max_concurrency": 3})
    assert [r.content for r in replies] == ["batched"] * 6
    readback.flushed(6)
    assert set(readback.by_prompt("calls: batch")) == set(prompts)


async def test_abatch_captures_every_call() -> None:
    """abatch() makes one task per input."""
    prompts: list[LanguageModelInput] = [f"abatch prompt {i}" for i in range(4)]
    async with ls_session(project_name="calls: abatch"):
        await FakeListLLM(responses=["same"]).abatch(prompts)
    readback.flushed(4)
    assert set(readback.by_prompt("calls: abatch")) == set(prompts)


def test_lcel_chain_call_has_the_chain_as_parent() -> None:
    """prompt | llm | parser: the LLM call is one task, whose parent is the chain's run."""
    chain = PromptTemplate.from_template("Tell me about {topic}") | FakeListLLM(
        responses=["Cats purr."]
    )
    chain = chain | StrOutputParser()
    with ls_session(project_name="calls: lcel"):
        assert chain.invoke({"topic": "cats"}, config={"run_id": CHAIN_RUN_ID}) == "Cats purr."
    readback.flushed(1)
    [task] = readback.tasks("calls: lcel")
    assert task["data"]["prompt"] == "Tell me about cats"
    assert task["data"]["parent_run_id"] == str(CHAIN_RUN_ID)


def test_chat_prompt_chain_in_chat_mode_keeps_the_roles() -> None:
    """A chat prompt's system and human messages arrive as a dialogue with real role names."""
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are {persona}."), ("human", "{question}")]
    )
    with ls_session(project_name="calls: chat chain", mode="chat"):
        (prompt | chat_model("Arr!")).invoke({"persona": "a pirate", "question": "Hello?"})
    readback.flushed(1)
    [task] = readback.tasks("calls: chat chain")
    assert task["data"]["prompt"] == [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Hello?"},
    ]
    assert readback.responses(task) == ["Arr!"]


def test_parallel_branches_each_make_one_task() -> None:
    """RunnableParallel runs branches on threads; each branch's call is captured once."""
    branches = RunnableParallel(
        short=PromptTemplate.from_template("Short: {q}") | FakeListLLM(responses=["s"]),
        long=PromptTemplate.from_template("Long: {q}") | FakeListLLM(responses=["l"]),
    )
    with ls_session(project_name="calls: parallel"):
        assert branches.invoke({"q": "why"}) == {"short": "s", "long": "l"}
    readback.flushed(2)
    assert set(readback.by_prompt("calls: parallel")) == {"Short: why", "Long: why"}


def test_a_tool_that_calls_a_model_is_captured_under_the_tool_run() -> None:
    """An LLM call inside a tool is one task whose parent is the tool's run."""
    summarizer = FakeListLLM(responses=["short"])

    @tool
    def summarize(text: str) -> str:
        """Summarize a text."""
        return summarizer.invoke(f"Summarize: {text}")

    tool_run = uuid.UUID("00000000-0000-4000-8000-00000000d001")
    with ls_session(project_name="calls: tool"):
        assert summarize.invoke({"text": "a long story"}, config={"run_id": tool_run}) == "short"
    readback.flushed(1)
    [task] = readback.tasks("calls: tool")
    assert task["data"]["prompt"] == "Summarize: a long story"
    assert task["data"]["parent_run_id"] == str(tool_run)


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"Sunny in {city}"


def test_create_agent_calls_become_chat_tasks_with_the_tool_turns() -> None:
    """An agent's two model calls (ask for a tool, then answer) are two tasks; the second
    shows the whole conversation: system, user, the assistant's tool call, the tool result.
    Tool-call turns keep their structure beside the readable text."""
    model = scripted(tool_call("get_weather", {"city": "Paris"}), "It is sunny in Paris.")
    agent = create_agent(model, tools=[get_weather], system_prompt="You are a weather bot.")
    with ls_session(project_name="calls: agent", mode="chat", tags=["agent"]):
        result = agent.invoke({"messages": [HumanMessage("Weather in Paris?")]})
    assert result["messages"][-1].content == "It is sunny in Paris."
    readback.flushed(2)
    tasks = sorted(readback.tasks("calls: agent"), key=lambda t: len(t["data"]["prompt"]))
    first, second = tasks
    assert first["data"]["prompt"] == [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert readback.responses(first) == ['[tool call] get_weather({"city": "Paris"})']
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
    }
    assert first["data"]["response_message"] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [call],
    }
    assert second["data"]["prompt"][2:] == [
        {
            "role": "assistant",
            "content": '[tool call] get_weather({"city": "Paris"})',
            "message": {"role": "assistant", "content": "", "tool_calls": [call]},
        },
        {
            "role": "tool",
            "content": "Sunny in Paris",
            "message": {
                "role": "tool",
                "content": "Sunny in Paris",
                "tool_call_id": "call_1",
                "name": "get_weather",
            },
        },
    ]
    assert "response_message" not in second["data"]
    assert readback.responses(second) == ["It is sunny in Paris."]
    assert all(t["data"]["parent_run_id"] for t in tasks)
    assert all("agent" in t["data"]["tags"].split(", ") for t in tasks)


class Story(TypedDict):
    topic: str
    draft: str
    final: str


def test_langgraph_nodes_calls_are_captured() -> None:
    """Each model call of a LangGraph StateGraph's nodes becomes one task."""
    writer = FakeListLLM(responses=["draft text"])
    editor = FakeListLLM(responses=["final text"])
    graph = StateGraph(Story)
    graph.add_node("write", lambda s: {"draft": writer.invoke(f"Write about {s['topic']}")})
    graph.add_node("edit", lambda s: {"final": editor.invoke(f"Edit: {s['draft']}")})
    graph.add_edge(START, "write")
    graph.add_edge("write", "edit")
    graph.add_edge("edit", END)
    with ls_session(project_name="calls: langgraph"):
        state = graph.compile().invoke({"topic": "owls", "draft": "", "final": ""})
    assert state["final"] == "final text"
    readback.flushed(2)
    assert set(readback.by_prompt("calls: langgraph")) == {"Write about owls", "Edit: draft text"}


async def test_gathered_coroutines_and_tasks_created_in_scope_are_captured() -> None:
    """asyncio.gather inside a session, and a task created there but awaited after it ended,
    are all captured in the session's project (tasks copy the context at creation)."""
    model = chat_model("gathered")
    async with ls_session(project_name="calls: gather"):
        await asyncio.gather(*(model.ainvoke(f"gathered {i}") for i in range(5)))
        late = asyncio.create_task(model.ainvoke("created in scope"))
    await late
    await model.ainvoke("outside any scope")
    readback.flushed(6)
    assert lstrace.stats().captured == 6
    assert set(readback.by_prompt("calls: gather")) == {
        *(f"gathered {i}" for i in range(5)),
        "created in scope",
    }


def _in_thread(target: Callable[[], object]) -> None:
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()


def test_raw_thread_has_no_scope_unless_wrapped_with_with_scope() -> None:
    """A raw threading.Thread does not inherit the session (documented); with_scope carries it."""
    llm = FakeListLLM(responses=["ok"])

    def wrapped() -> str:
        return llm.invoke("wrapped thread")

    with ls_session(project_name="calls: raw thread"):
        _in_thread(lambda: llm.invoke("raw thread"))
        _in_thread(lstrace.with_scope(wrapped))
    readback.flushed(1)
    assert lstrace.stats().captured == 1
    assert set(readback.by_prompt("calls: raw thread")) == {"wrapped thread"}


def test_a_thread_pool_made_inside_a_scope_has_no_scope_unless_wrapped() -> None:
    """concurrent.futures workers start with an empty context, like raw threads: calls
    submitted as they are are not captured, nor counted (lstrace never sees them; see the
    README). with_scope around the function, or LangChain's ContextThreadPoolExecutor,
    carries the scope in."""
    llm = FakeListLLM(responses=["ok"])
    with ls_session(project_name="calls: thread pool"):
        with ThreadPoolExecutor(max_workers=2) as pool:
            assert list(pool.map(llm.invoke, ["lost 1", "lost 2"])) == ["ok", "ok"]
            list(pool.map(lstrace.with_scope(llm.invoke), ["with_scope 1", "with_scope 2"]))
            pool.submit(lstrace.with_scope(llm.invoke), "with_scope submit").result()
        with ContextThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(llm.invoke, ["context pool 1", "context pool 2"]))
    readback.flushed(5)
    stats = lstrace.stats()
    assert (stats.captured, stats.dropped_by_reason) == (5, {})
    assert set(readback.by_prompt("calls: thread pool")) == {
        "with_scope 1",
        "with_scope 2",
        "with_scope submit",
        "context pool 1",
        "context pool 2",
    }


def test_raw_thread_is_captured_by_enable() -> None:
    """enable()'s scope is process-wide, so even raw threads are captured."""
    llm = FakeListLLM(responses=["ok"])
    lstrace.enable(project_name="calls: enabled thread")
    _in_thread(lambda: llm.invoke("raw thread under enable"))
    readback.flushed(1)
    assert set(readback.by_prompt("calls: enabled thread")) == {"raw thread under enable"}


def test_with_scope_keeps_the_wrapped_functions_result_and_arguments() -> None:
    """with_scope passes arguments through and returns the function's result."""

    def add(a: int, b: int = 0) -> int:
        return a + b

    wrapped = lstrace.with_scope(add)
    assert wrapped(2, b=3) == 5
    assert wrapped.__wrapped__ is add  # type: ignore[attr-defined]


def test_messages_input_to_a_chat_model_in_prompt_mode_reads_as_text() -> None:
    """In prompt mode a multi-message chat input is shown as role-labelled text."""
    with ls_session(project_name="calls: chat as prompt"):
        chat_model("Done").invoke([SystemMessage("Be brief"), HumanMessage("Summarize X")])
    readback.flushed(1)
    [task] = readback.tasks("calls: chat as prompt")
    assert task["data"]["prompt"] == "system: Be brief\n\nuser: Summarize X"


def test_multimodal_chat_input_is_stored_as_readable_dialogue_text() -> None:
    """In chat mode, an image in a user turn is shown as a marker next to the text,
    never as base64 data."""
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    question = HumanMessage(content=[{"type": "text", "text": "What is this?"}, image])
    with ls_session(project_name="calls: multimodal", mode="chat"):
        chat_model("A cat.").invoke([question])
    readback.flushed(1)
    [task] = readback.tasks("calls: multimodal")
    assert task["data"]["prompt"] == [{"role": "user", "content": "What is this?\n[image_url]"}]
    assert readback.responses(task) == ["A cat."]
