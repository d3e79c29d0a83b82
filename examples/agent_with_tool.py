"""An agent (langchain.agents.create_agent, a LangGraph graph) calling a tool.

Each model call of the agent becomes a task: the one that decides to call the tool,
then the one that answers with the tool's result. Chat mode shows both conversations.

Run it with LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set (see examples/README.md):

    python examples/agent_with_tool.py
"""

from _shared import chat_model, where_to_look
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

import lstrace
from lstrace import ls_session

PROJECT = "lstrace example: agent"


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny and 21 °C in {city}."


model = chat_model(  # the fake model's script: call the tool, then answer
    AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}]),
    "It is sunny in Paris right now, 21 °C: a good day for a walk.",
)
agent = create_agent(model, tools=[get_weather], system_prompt="You are a travel assistant.")

if __name__ == "__main__":
    with ls_session(project_name=PROJECT, mode="chat", tags=["agent"]):
        state = agent.invoke({"messages": [("user", "What's the weather in Paris?")]})
    print(state["messages"][-1].content)
    where_to_look(PROJECT, lstrace.flush(timeout=120))
