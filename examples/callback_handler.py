"""The drop-in for langchain-community's LabelStudioCallbackHandler.

Code written for the original handler keeps working after changing one import:

    # from langchain_community.callbacks.labelstudio_callback import LabelStudioCallbackHandler
    from lstrace import LabelStudioCallbackHandler

Tasks are now sent in the background, in batches, through a durable spool.

Run it with LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set (see examples/README.md):

    python examples/callback_handler.py
"""

from _shared import chat_model, where_to_look
from langchain_core.messages import HumanMessage, SystemMessage

import lstrace
from lstrace import LabelStudioCallbackHandler

PROJECT = "lstrace example: callback handler"

if __name__ == "__main__":
    handler = LabelStudioCallbackHandler(mode="chat", project_name=PROJECT)
    chat_llm = chat_model(
        "Why did the emoji cross the road? 🐔➡️ To get to the other 😂!", callbacks=[handler]
    )
    reply = chat_llm.invoke(
        [SystemMessage("Always use a lot of emojis"), HumanMessage("Tell me a joke")]
    )
    print(reply.content)
    where_to_look(PROJECT, lstrace.flush(timeout=120))
