"""Async: an async @ls_track function, run concurrently; each call becomes its own task.

Run it with LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set (see examples/README.md):

    python examples/async_chain.py
"""

import asyncio

from _shared import chat_model, where_to_look
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

import lstrace
from lstrace import ls_track

PROJECT = "lstrace example: async"

prompt = ChatPromptTemplate.from_messages(
    [("system", "Translate the user's text to French."), ("human", "{text}")]
)
model = chat_model("Bonjour le monde", "Merci beaucoup", "Bonne nuit")
chain = prompt | model | StrOutputParser()


@ls_track(project_name=PROJECT, mode="chat", tags=["translate"])
async def translate(text: str) -> str:
    return await chain.ainvoke({"text": text})


async def main() -> None:
    texts = ["Hello world", "Thank you very much", "Good night"]
    for text, french in zip(texts, await asyncio.gather(*map(translate, texts)), strict=True):
        print(f"{text} -> {french}")


if __name__ == "__main__":
    asyncio.run(main())
    where_to_look(PROJECT, lstrace.flush(timeout=120))
