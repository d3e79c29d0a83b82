"""A custom labeling interface: the "chat-grading" template from lstrace.templates.

Annotators see the conversation (system prompt shaded), the reply ready to edit,
and grading questions. lstrace.templates.names() lists the other templates.

Run it with LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set (see examples/README.md):

    python examples/custom_config.py
"""

from _shared import chat_model, where_to_look
from langchain_core.messages import HumanMessage, SystemMessage

import lstrace
from lstrace import ls_session, templates

PROJECT = "lstrace example: support chat grading"

SYSTEM = SystemMessage(
    "You are Ada, the support assistant of Acme Cloud.\nBe concise and friendly."
)
QUESTIONS = [
    "My deploy failed with 'quota exceeded'. What can I do?",
    "How do I rotate my API key?",
    "Can I move a project to another region?",
]
model = chat_model(
    "Your project uses all of its vCPUs, so the new release cannot start.\n"
    "You can:\n1. stop a service you no longer need, or\n"
    "2. ask for a higher quota in Settings > Quotas.",
    "Go to Settings > API keys, click Rotate, then update the key wherever you use it. "
    "The old key keeps working for 24 hours.",
    "Not directly: export the project, create a new one in the other region, and import it.",
)

if __name__ == "__main__":
    with ls_session(
        project_name=PROJECT,
        project_config=templates.get("chat-grading"),
        tags=["support", "v3"],
        metadata={"channel": "web"},
    ):
        for question in QUESTIONS:
            reply = model.invoke([SYSTEM, HumanMessage(question)])
            print(f"Q: {question}\nA: {reply.content}\n")
    where_to_look(PROJECT, lstrace.flush(timeout=120))
