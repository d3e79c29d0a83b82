"""lstrace.enable(): capture every LangChain LLM call of the process, wherever it is made.

Call it once at startup; scopes opened later (ls_session, @ls_track) still win inside.

Run it with LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set (see examples/README.md):

    python examples/global_enable.py
"""

from _shared import chat_model, where_to_look

import lstrace

PROJECT = "lstrace example: enable"

model = chat_model(
    "Paris is the capital of France.",
    "Water boils at 100 degrees Celsius at sea level.",
)


def capital_of_france() -> str:
    return str(model.invoke("What is the capital of France?").content)


def boiling_point() -> str:
    return str(model.invoke("At what temperature does water boil?").content)


if __name__ == "__main__":
    lstrace.enable(project_name=PROJECT, tags=["trivia"])
    print(capital_of_france())
    print(boiling_point())
    where_to_look(PROJECT, lstrace.flush(timeout=120))
