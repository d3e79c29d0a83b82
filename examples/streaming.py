"""Streaming: the reply is printed as it arrives; the task holds the whole reply.

Run it with LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set (see examples/README.md):

    python examples/streaming.py
"""

from _shared import chat_model, where_to_look

import lstrace
from lstrace import ls_session

PROJECT = "lstrace example: streaming"

model = chat_model(
    "Once upon a time, a small robot learned to paint. Its first picture was a sunset, "
    "and every robot in town came to see it."
)

if __name__ == "__main__":
    with ls_session(project_name=PROJECT, tags=["story"]):
        for chunk in model.stream("Tell me a two-sentence story about a robot."):
            print(chunk.content, end="", flush=True)
    print()
    where_to_look(PROJECT, lstrace.flush(timeout=120))
