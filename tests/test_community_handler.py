"""The drop-in for langchain-community's handler (lstrace/_capture/community_handler.py).

The three examples of the original's documentation run here as written, with
LangChain's fake models instead of OpenAI and only the import changed to
``from lstrace import LabelStudioCallbackHandler``.
"""

from __future__ import annotations

import pytest
from langchain_core.language_models import FakeListLLM, GenericFakeChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.prompts import PromptTemplate

import lstrace
from lstrace import LabelStudioCallbackHandler, LabelStudioMode, ls_session
from lstrace._labelconfig import CHAT_CONFIG, PROMPT_CONFIG
from tests import readback
from tests.fakes import freeze_today


def test_documented_prompt_example() -> None:
    """``OpenAI(callbacks=[LabelStudioCallbackHandler(project_name="My Project")])``:
    the prompt, the response and the model name arrive in "My Project"."""
    llm = FakeListLLM(
        responses=["Why did the scarecrow win an award? He was outstanding in his field."],
        callbacks=[LabelStudioCallbackHandler(project_name="My Project")],
    )
    print(llm.invoke("Tell me a joke"))
    readback.flushed(1)
    project = readback.project_id("My Project")
    assert readback.label_config(project) == PROMPT_CONFIG
    [task] = readback.tasks(project)
    assert task["data"]["prompt"] == "Tell me a joke"
    assert readback.responses(task) == [
        "Why did the scarecrow win an award? He was outstanding in his field."
    ]
    assert task["predictions"][0]["model_version"] == "FakeListLLM"


def test_documented_chat_example() -> None:
    """``ChatOpenAI(callbacks=[LabelStudioCallbackHandler(mode="chat", project_name=...)])``:
    the conversation arrives as a dialogue with its system and user turns."""
    chat_llm = GenericFakeChatModel(
        messages=iter(["😂 Why did the 🐔 cross the road? 🛣️"]),
        callbacks=[
            LabelStudioCallbackHandler(
                mode="chat",
                project_name="New Project with Chat",
            )
        ],
    )
    llm_results = chat_llm.invoke(
        [
            SystemMessage(content="Always use a lot of emojis"),
            HumanMessage(content="Tell me a joke"),
        ]
    )
    assert llm_results.content == "😂 Why did the 🐔 cross the road? 🛣️"
    readback.flushed(1)
    project = readback.project_id("New Project with Chat")
    assert readback.label_config(project) == CHAT_CONFIG
    [task] = readback.tasks(project)
    assert task["data"]["prompt"] == [
        {"role": "system", "content": "Always use a lot of emojis"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    assert readback.responses(task) == ["😂 Why did the 🐔 cross the road? 🛣️"]


def test_documented_custom_config_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """``LabelStudioCallbackHandler(project_config=...)`` creates the default-named project
    ("LangChain-YYYY-MM-DD") with that config and fills its first TextArea."""
    title = freeze_today(monkeypatch)
    ls = LabelStudioCallbackHandler(
        project_config="""
<View>
<Text name="prompt" value="$prompt"/>
<TextArea name="response" toName="prompt"/>
<TextArea name="user_feedback" toName="prompt"/>
<Rating name="rating" toName="prompt"/>
<Choices name="sentiment" toName="prompt">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
</Choices>
</View>
"""
    )
    FakeListLLM(responses=["Sure."], callbacks=[ls]).invoke("Summarize this")
    readback.flushed(1)
    assert title == "LangChain-2026-01-15"
    project = readback.project_id(title)
    assert 'name="user_feedback"' in readback.label_config(project)
    [task] = readback.tasks(project)
    [result] = task["predictions"][0]["result"]
    assert (result["from_name"], result["to_name"]) == ("response", "prompt")


def test_handler_passed_per_call_captures_a_chains_llm_once() -> None:
    """``chain.invoke(..., config={"callbacks": [handler]})`` captures the LLM inside once."""
    handler = LabelStudioCallbackHandler(project_name="handler: per call")
    chain = PromptTemplate.from_template("Define {word}") | FakeListLLM(responses=["a word"])
    chain.invoke({"word": "lexicon"}, config={"callbacks": [handler]})
    readback.flushed(1)
    assert set(readback.by_prompt("handler: per call")) == {"Define lexicon"}


def test_an_explicit_handler_outranks_every_scope() -> None:
    """Inside a session, a model with its own handler still makes exactly one task, in the
    handler's project; the session keeps the calls of other models."""
    handled = FakeListLLM(
        responses=["handled"],
        callbacks=[LabelStudioCallbackHandler(project_name="handler: explicit")],
    )
    with ls_session(project_name="handler: surrounding session"):
        handled.invoke("to the handler")
        FakeListLLM(responses=["plain"]).invoke("to the session")
    readback.flushed(2)
    assert lstrace.stats().captured == 2
    assert set(readback.by_prompt("handler: explicit")) == {"to the handler"}
    assert set(readback.by_prompt("handler: surrounding session")) == {"to the session"}


def test_handler_exposes_the_originals_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """project_id, project_name, project_config and mode read as on the original handler,
    with LABEL_STUDIO_PROJECT_ID filling the id when no name is given."""
    chat = LabelStudioCallbackHandler(mode="chat", project_name="Attrs")
    assert (chat.project_id, chat.project_name, chat.mode) == (None, "Attrs", LabelStudioMode.CHAT)
    assert chat.project_config == CHAT_CONFIG
    monkeypatch.setenv("LABEL_STUDIO_PROJECT_ID", "12")
    by_env = LabelStudioCallbackHandler()
    assert (by_env.project_id, by_env.mode) == (12, LabelStudioMode.PROMPT)
    assert LabelStudioCallbackHandler(project_id=3, project_name="Named").project_id == 3


def test_construction_needs_no_server() -> None:
    """Unlike the original, building the handler makes no request: an unreachable server
    does not fail the app at startup."""
    handler = LabelStudioCallbackHandler(url="http://127.0.0.1:18099", project_name="Later")
    assert handler.project_name == "Later"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "pairwise"}, "Mode pairwise is not supported"),
        ({"project_id": "abc"}, "project_id must be a whole number"),
        ({"project_config": "<View><Text name='p' value='$prompt'/></View>"}, "no <TextArea>"),
    ],
)
def test_bad_arguments_raise_value_error_like_the_original(
    kwargs: dict[str, object], message: str
) -> None:
    """Bad options raise ValueError (lstrace's ConfigError) at construction, naming the fix."""
    with pytest.raises(ValueError, match=message):
        LabelStudioCallbackHandler(**kwargs)  # type: ignore[arg-type]


def test_missing_api_key_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unlike the original, a handler made without a key does not raise: a missing key is
    the environment's doing, not the code's; its calls wait in the spool for a key
    (tests/test_operational.py)."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    handler = LabelStudioCallbackHandler(project_name="No key")
    assert handler.scope.options.api_key is None


def test_project_id_with_a_config_the_project_lacks_fails_at_construction() -> None:
    """Like the original, which looked the project up in its constructor: project_id plus a
    project_config whose tags the project lacks raises ValueError naming what is missing."""
    project = readback.create_project("handler: lacks the tags", PROMPT_CONFIG)
    config = '<View><Text name="q" value="$prompt"/><TextArea name="answer" toName="q"/></View>'
    with pytest.raises(ValueError, match="needs TextArea 'answer' on Text 'q'"):
        LabelStudioCallbackHandler(project_id=project, project_config=config)
