"""ls_session: the LLM calls of one block go to a project, with tags and metadata.

Chat mode shows the whole conversation, system prompt included, above the reply.

Run it with LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set (see examples/README.md):

    python examples/context_manager.py
"""

from _shared import chat_model, where_to_look
from langchain_core.messages import HumanMessage, SystemMessage

import lstrace
from lstrace import ls_session

PROJECT = "lstrace example: context manager"

model = chat_model(
    "Arr, the sea be calm and the sky be clear today, matey!",
    "Tomorrow brings a stiff breeze from the west. Reef the sails!",
)
system = SystemMessage("You are a pirate. Answer in one sentence.")

if __name__ == "__main__":
    with ls_session(
        project_name=PROJECT, mode="chat", tags=["pirate", "v1"], metadata={"user": "demo"}
    ):
        for question in ("How is the weather today?", "And tomorrow?"):
            print(model.invoke([system, HumanMessage(question)]).content)
    where_to_look(PROJECT, lstrace.flush(timeout=120))
