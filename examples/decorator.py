"""@ls_track: every LLM call made inside a function becomes a Label Studio task.

Run it with LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set (see examples/README.md):

    python examples/decorator.py
"""

from _shared import chat_model, where_to_look
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

import lstrace
from lstrace import ls_track

PROJECT = "lstrace example: decorator"

prompt = ChatPromptTemplate.from_template("Tell me a one-line joke about {topic}.")
model = chat_model(
    "Why do programmers prefer dark mode? Because light attracts bugs.",
    "My cat walked across the keyboard and fixed three failing tests.",
)
chain = prompt | model | StrOutputParser()


@ls_track(project_name=PROJECT, tags=["jokes"])
def tell_joke(topic: str) -> str:
    return chain.invoke({"topic": topic})


if __name__ == "__main__":
    for topic in ("programmers", "cats"):
        print(tell_joke(topic))
    where_to_look(PROJECT, lstrace.flush(timeout=120))
