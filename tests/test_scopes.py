"""Entry points and scopes (lstrace/_capture/scope.py, track.py, lstrace/_process.py).

``enable()``, ``with ls_session``, ``async with ls_session`` and ``@ls_track``
take the same options; the innermost scope wins; a run keeps the scope it
started in; one configure hook serves every scope. Tasks are read back from
Label Studio (recorded in the cassettes).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.language_models import FakeListLLM, GenericFakeChatModel
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tracers.context import _configure_hooks

import lstrace
from lstrace import ls_session, ls_track
from lstrace._capture import scope as _scope
from tests import readback


def test_session_sends_each_call_as_one_task_with_its_tags_and_metadata() -> None:
    """Two calls in a session become two tasks of its project, with the session's tags/metadata."""
    llm = FakeListLLM(responses=["Answer one", "Answer two"])
    with ls_session(project_name="scopes: session", tags=["eval"], metadata={"user": "ana"}):
        assert llm.invoke("Question one") == "Answer one"
        assert llm.invoke("Question two") == "Answer two"
    readback.flushed(2)
    tasks = readback.by_prompt("scopes: session")
    assert set(tasks) == {"Question one", "Question two"}
    assert readback.responses(tasks["Question one"]) == ["Answer one"]
    assert readback.responses(tasks["Question two"]) == ["Answer two"]
    for task in tasks.values():
        assert task["data"]["tags"] == "eval"
        assert task["data"]["metadata"] == '{"user": "ana"}'
        assert task["data"]["model"] == task["predictions"][0]["model_version"] == "FakeListLLM"
    assert lstrace.stats().captured == 2


async def test_async_session_captures_awaited_calls() -> None:
    """``async with ls_session`` captures ainvoke calls made inside it."""
    chat = GenericFakeChatModel(messages=iter(["async answer"]))
    async with ls_session(project_name="scopes: async session"):
        reply = await chat.ainvoke("async question")
    assert reply.content == "async answer"
    readback.flushed(1)
    [task] = readback.tasks("scopes: async session")
    assert task["data"]["prompt"] == "async question"
    assert readback.responses(task) == ["async answer"]


def test_enable_captures_calls_outside_any_scope_until_disable() -> None:
    """enable() captures every call of the process; after disable() nothing more is captured."""
    llm = FakeListLLM(responses=["yes"])
    lstrace.enable(project_name="scopes: enabled", tags=["global"])
    llm.invoke("while enabled")
    lstrace.disable()
    llm.invoke("after disable")
    readback.flushed(1)
    assert lstrace.stats().captured == 1
    [task] = readback.tasks("scopes: enabled")
    assert (task["data"]["prompt"], task["data"]["tags"]) == ("while enabled", "global")


def test_a_second_enable_replaces_the_first() -> None:
    """Calling enable() again sends later calls to the new project only."""
    llm = FakeListLLM(responses=["ok"])
    lstrace.enable(project_name="scopes: first enable")
    llm.invoke("to the first")
    lstrace.enable(project_name="scopes: second enable")
    llm.invoke("to the second")
    readback.flushed(2)
    assert [t["data"]["prompt"] for t in readback.tasks("scopes: first enable")] == ["to the first"]
    assert [t["data"]["prompt"] for t in readback.tasks("scopes: second enable")] == [
        "to the second"
    ]


def test_innermost_scope_wins_and_the_outer_one_resumes() -> None:
    """A call goes only to the innermost scope; after the inner block ends, to the outer one."""
    llm = FakeListLLM(responses=["ok"])
    with ls_session(project_name="scopes: outer"):
        llm.invoke("before inner")
        with ls_session(project_name="scopes: inner"):
            llm.invoke("in inner")
        llm.invoke("after inner")
    readback.flushed(3)
    assert set(readback.by_prompt("scopes: outer")) == {"before inner", "after inner"}
    assert set(readback.by_prompt("scopes: inner")) == {"in inner"}


def test_session_inside_enable_wins_and_inherits_enables_tags() -> None:
    """A session inside enable() takes the call; enable()'s tags still reach the task."""
    llm = FakeListLLM(responses=["ok"])
    lstrace.enable(project_name="scopes: enable outer", tags=["app"])
    with ls_session(project_name="scopes: enable inner", tags=["step"]):
        llm.invoke("inner call")
    readback.flushed(1)
    assert readback.project_ids("scopes: enable outer") == []
    [task] = readback.tasks("scopes: enable inner")
    assert task["data"]["tags"] == "app, step"


def test_session_inside_a_chain_step_takes_the_call_from_the_chains_scope() -> None:
    """An outer chain's inherited handler and an inner session's both see the LLM run:
    it becomes exactly one task, in the inner project."""
    llm = FakeListLLM(responses=["ok"])

    def step(text: str) -> str:
        with ls_session(project_name="scopes: step inner"):
            return llm.invoke(text)

    def shout(text: str) -> str:
        return f"{text}!"

    chain: Runnable[str, str] = RunnableLambda(shout) | RunnableLambda(step)
    with ls_session(project_name="scopes: chain outer"):
        chain.invoke("hello")
        llm.invoke("direct")
    readback.flushed(2)
    assert lstrace.stats().captured == 2
    assert set(readback.by_prompt("scopes: step inner")) == {"hello!"}
    assert set(readback.by_prompt("scopes: chain outer")) == {"direct"}


def test_inner_scope_without_a_project_inherits_it_and_merges_tags_and_metadata() -> None:
    """A session with only tags/metadata sends to the enclosing project, options merged."""
    llm = FakeListLLM(responses=["ok"])
    outer = ls_session(project_name="scopes: inherit", tags=["outer"], metadata={"a": 1, "b": 1})
    with outer, ls_session(tags=["inner"], metadata={"b": 2}):
        llm.invoke("nested call")
    readback.flushed(1)
    [task] = readback.tasks("scopes: inherit")
    assert task["data"]["tags"] == "outer, inner"
    assert task["data"]["metadata"] == '{"a": 1, "b": 2}'


def test_a_run_keeps_the_scope_it_started_in() -> None:
    """A stream started in one session and finished in another belongs to the first."""
    chat = GenericFakeChatModel(messages=iter(["one two three"]))
    llm = FakeListLLM(responses=["ok"])
    with ls_session(project_name="scopes: started here"):
        stream = chat.stream("count")
        first = next(stream)
    with ls_session(project_name="scopes: finished here"):
        rest = list(stream)
        llm.invoke("own call")
    assert "".join(str(c.content) for c in [first, *rest]) == "one two three"
    readback.flushed(2)
    [started] = readback.tasks("scopes: started here")
    assert started["data"]["prompt"] == "count"
    assert readback.responses(started) == ["one two three"]
    assert set(readback.by_prompt("scopes: finished here")) == {"own call"}


def test_the_same_session_object_can_be_entered_again_and_nested() -> None:
    """One ls_session object may be reused and even nested in itself."""
    llm = FakeListLLM(responses=["ok"])
    session = ls_session(project_name="scopes: reused")
    with session:
        llm.invoke("first entry")
        with session:
            llm.invoke("nested entry")
    with session:
        llm.invoke("second entry")
    llm.invoke("outside")
    readback.flushed(3)
    assert set(readback.by_prompt("scopes: reused")) == {
        "first entry",
        "nested entry",
        "second entry",
    }


def test_one_configure_hook_serves_every_scope() -> None:
    """lstrace registers one hook at import; entering scopes never adds to LangChain's list."""
    ours = [hook for hook in _configure_hooks if isinstance(hook[0], _scope._HookVar)]
    assert len(ours) == 1
    before = len(_configure_hooks)
    llm = FakeListLLM(responses=["ok"])

    @ls_track(project_name="scopes: hooks", tags=["t"])
    def tracked() -> None:
        with ls_session(mode="chat", project_name="scopes: hooks 2"):
            pass

    for _ in range(50):
        with ls_session(project_name="scopes: hooks"):
            tracked()
        lstrace.enable(project_name="scopes: hooks")
        lstrace.LabelStudioCallbackHandler(project_name="scopes: hooks")
        lstrace.disable()
    assert len(_configure_hooks) == before
    assert llm.invoke("nothing in scope") == "ok"
    assert lstrace.stats().captured == 0


def test_no_network_at_import_or_decoration() -> None:
    """Importing lstrace and decorating functions (even with a project id and config)
    opens no connection; the Label Studio SDK is not even loaded until a config needs checking."""
    code = """
import socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError("network disabled by the test")
socket.socket.connect = refuse
socket.create_connection = refuse
import lstrace
@lstrace.ls_track
async def g(): pass
@lstrace.ls_track(project_name="x", mode="chat", url="http://127.0.0.1:18099", api_key="k")
def h(): pass
lstrace.ls_session(project_name="x", mode="chat")
print("label_studio_sdk" in sys.modules)
CONFIG = '<View><Text name="p" value="$prompt"/><TextArea name="r" toName="p"/></View>'
@lstrace.ls_track(project_id=5, project_config=CONFIG, url="http://127.0.0.1:18099", api_key="k")
def f(): pass
print(len(attempts))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "0"], out.stderr


def _enter_session(**options: Any) -> None:
    with ls_session(**options):
        pass


def _call_tracked(**options: Any) -> None:
    ls_track(**options)(lambda: None)()


def _construct_handler(**options: Any) -> None:
    lstrace.LabelStudioCallbackHandler(**options)


ENTRY_POINTS: dict[str, Callable[..., None]] = {
    "ls_session": _enter_session,
    "ls_track": _call_tracked,
    "enable": lstrace.enable,
    "handler": _construct_handler,
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize(
    ("options", "fix"),
    [
        ({"mode": "dialog"}, "'prompt'.{1,5}'chat'"),
        ({"project_config": "<View><Text name='p' value='$prompt'></View>"}, "not well-formed"),
        ({"project_config": "<View><Text name='p' value='$prompt'/></View>"}, "no <TextArea>"),
        ({"project_id": "twelve"}, "project_id must be a whole number"),
    ],
    ids=["unknown-mode", "malformed-xml", "no-textarea", "non-int-project-id"],
)
def test_bad_arguments_fail_at_scope_entry_on_every_entry_point(
    entry: str, options: dict[str, Any], fix: str
) -> None:
    """Every entry point raises ConfigError (a ValueError) naming the fix, before any call runs.
    (A missing API key is not among them: tests/test_operational.py.)"""
    with pytest.raises(ValueError, match=fix) as info:
        ENTRY_POINTS[entry](**options)
    assert isinstance(info.value, lstrace.ConfigError)
    assert lstrace.stats().captured == 0
