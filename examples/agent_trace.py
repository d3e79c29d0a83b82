"""Trace mode: one task per agent run, with every step inside it.

The agent (langchain.agents.create_agent, a LangGraph graph) asks for two tools at once,
reads their results, and answers. In Label Studio that whole run is one task: the system
prompt, the question, each model step and tool result in order, the tools it was offered
(in a collapsed panel), and the final answer to correct; the reviewer rates the run and
can mark the step that went wrong. A function decorated with ``@ls_track(mode="trace")``
is one task per call in the same way. ``lstrace export --format sft`` then gives rows in
the OpenAI / TRL tool-calling layout (``{"messages": [...], "tools": [...]}``).

Run it with LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set (see examples/README.md):

    python examples/agent_trace.py
"""

from _shared import chat_model, where_to_look
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

import lstrace
from lstrace import ls_session, ls_track

PROJECT = "lstrace example: agent trace"


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny and 21 °C in {city}."


@tool
def get_events(city: str) -> str:
    """Events happening today in a city."""
    return f"Open-air jazz concert at 19:00 in {city}."


def ask_both(call_id: str) -> AIMessage:
    """The fake model's script: ask for both tools at once."""
    calls = [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": f"{call_id}-w"},
        {"name": "get_events", "args": {"city": "Paris"}, "id": f"{call_id}-e"},
    ]
    return AIMessage("", tool_calls=calls)


model = chat_model(
    ask_both("c1"),
    "Sunny, 21 °C, and a jazz concert at 19:00: a good evening to be out in Paris.",
    ask_both("c2"),
    "Take the concert at 19:00; it will be sunny.",
)
agent = create_agent(
    model, tools=[get_weather, get_events], system_prompt="You are a travel assistant."
)


@ls_track(project_name=PROJECT, mode="trace")
def plan_evening(city: str) -> str:
    """One call, one task, whatever runs inside."""
    state = agent.invoke({"messages": [("user", f"What should I do tonight in {city}?")]})
    return str(state["messages"][-1].content)


if __name__ == "__main__":
    with ls_session(project_name=PROJECT, mode="trace", tags=["agent"]):
        state = agent.invoke({"messages": [("user", "What's on in Paris this evening?")]})
    print(state["messages"][-1].content)
    print(plan_evening("Paris"))
    where_to_look(PROJECT, lstrace.flush(timeout=120))
