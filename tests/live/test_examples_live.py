"""Every script in examples/ runs and its tasks arrive in a real Label Studio (live tier).

Each example runs as a subprocess, as a reader would run it, with only the
environment pointing it at the session's SQLite server, twice: with LangChain's fake
chat model (``LSTRACE_EXAMPLE_MODELS=fake``), and as a reader with an OpenAI key runs it,
``OPENAI_API_KEY`` set and ``langchain-openai`` installed, with ``OPENAI_BASE_URL``
pointing at the OpenAI stub of ``tests/providers`` (so ``ChatOpenAI`` makes real HTTP
calls on loopback). Then the SDK reads back what arrived. The examples write to fixed
project titles: a project left by an earlier run on a reused server is deleted first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.labelstudio_script import REPO, TOKEN
from tests.providers.stubs import (
    OpenAIStub,
    ToolCall,
    Turn,
    last_user_text,
    quote_last_user_message,
)
from tests.servers import Server

pytestmark = pytest.mark.live

EXAMPLES = REPO / "examples"
# example -> (project title, tasks it sends)
EXPECTED = {
    "decorator": ("lstrace example: decorator", 2),
    "context_manager": ("lstrace example: context manager", 2),
    "global_enable": ("lstrace example: enable", 2),
    "async_chain": ("lstrace example: async", 3),
    "agent_with_tool": ("lstrace example: agent", 2),
    "agent_trace": ("lstrace example: agent trace", 2),
    "streaming": ("lstrace example: streaming", 1),
    "custom_config": ("lstrace example: support chat grading", 3),
    "callback_handler": ("lstrace example: callback handler", 1),
    "export_loop": ("lstrace example: export loop", 3),
}
# Model calls an example makes where they are not one per task: trace mode puts a whole
# agent run (a tool call, then the answer) in one task.
MODEL_CALLS = {"agent_trace": 4}
# An example's own bound is flush(timeout=120); imports and project creation come on top.
RUN_TIMEOUT = 600
PROVIDER_KEYS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "ANTHROPIC_API_KEY",
    "LABEL_STUDIO_PROJECT_ID",
)
# What the OpenAI stub answers where an example needs a particular reply: export_loop's
# stand-in reviewer corrects "Sydney", and without a correction there is no preference pair.
CANNED = {"What is the capital of Australia?": "The capital of Australia is Sydney."}


def example_responder(body: Mapping[str, Any]) -> Turn:
    """The OpenAI stub's answers for the examples: the first tool when the model is given
    tools and has no tool result yet (agent_with_tool), a canned reply, else a quote."""
    tools = body.get("tools") or []
    if tools and not any(m.get("role") == "tool" for m in body.get("messages", [])):
        function = tools[0]["function"]
        properties = function.get("parameters", {}).get("properties", {})
        return ToolCall(function["name"], {name: "Paris" for name in properties})
    return CANNED.get(last_user_text(body)) or quote_last_user_message(body)


@pytest.fixture(scope="module")
def openai_stub() -> Iterator[OpenAIStub]:
    """The OpenAI stub the examples' ChatOpenAI calls, for this module."""
    with OpenAIStub(responder=example_responder) as stub:
        yield stub


@pytest.fixture
def server(sqlite_server: Server) -> Server:
    """The session's SQLite server, without projects left by an earlier run of the examples."""
    for title, _ in EXPECTED.values():
        project = sqlite_server.find_project(title)
        if project is not None:
            sqlite_server.sdk.projects.delete(id=project)
    return sqlite_server


def run_example(
    name: str, server: Server, spool: Path, openai: OpenAIStub | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>.py`` from the repo root as a reader would, against ``server``:
    with the fake model, or with ``openai`` (a stub) as the reader's OpenAI."""
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_KEYS}
    env |= {
        "LABEL_STUDIO_URL": server.url,
        "LABEL_STUDIO_API_KEY": TOKEN,
        "LSTRACE_SPOOL_PATH": str(spool),
    }
    if openai is None:
        env["LSTRACE_EXAMPLE_MODELS"] = "fake"
    else:
        env |= {"OPENAI_API_KEY": "sk-test-examples", "OPENAI_BASE_URL": openai.base_url}
        env.pop("LSTRACE_EXAMPLE_MODELS", None)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def test_every_example_is_covered() -> None:
    """Each script in examples/ (but the shared helper) is run by this module."""
    scripts = {p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_")}
    assert scripts == set(EXPECTED)


@pytest.mark.parametrize("models", ["fake", "openai"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_delivers_its_tasks(
    name: str, models: str, server: Server, openai_stub: OpenAIStub, tmp_path: Path
) -> None:
    """The example exits 0, says it delivered its tasks and where to look, and exactly those
    tasks are in its project: the model's replies it printed, as editable predictions.
    With an OpenAI key set, the same holds with ChatOpenAI making the calls."""
    title, count = EXPECTED[name]
    openai = openai_stub if models == "openai" else None
    asked = len(openai_stub.answered("/v1/chat/completions"))
    done = run_example(name, server, tmp_path / "spool.sqlite3", openai)
    assert done.returncode == 0, done.stderr
    assert f"{count} task(s) delivered, 0 still waiting." in done.stdout
    project = server.project_id(title)
    assert f"{server.url}/projects/{project}/data (project {title!r})" in done.stdout

    tasks = list(server.sdk.tasks.list(project=project, fields="all"))
    assert len(tasks) == count
    replies = [response_text(task) for task in tasks]
    tool_calls = [r for r in replies if r.startswith("[tool call] ")]
    for reply in replies:
        assert reply in done.stdout or reply in tool_calls
    assert len(tool_calls) == (1 if name == "agent_with_tool" else 0)
    if openai is None:
        assert all(task.data["model"] == "ScriptedChatModel" for task in tasks)
    else:  # the requested gpt-4o-mini, or the snapshot that answered (issue 9.4)
        assert all(task.data["model"].startswith("gpt-4o-mini") for task in tasks)
        calls = len(openai_stub.answered("/v1/chat/completions")) - asked
        assert calls == MODEL_CALLS.get(name, count)
    if name == "agent_trace" and openai is None:  # one task per run: every step and tool
        assert [task.data["steps"] for task in tasks] == [4, 4]
        assert all(len(task.data["tools"]) == 2 for task in tasks)
        assert all(task.data["tools_used"] == "get_weather, get_events" for task in tasks)


def response_text(task: Any) -> str:
    """The model reply lstrace put in the task's prediction."""
    [prediction] = task.predictions
    [result] = prediction["result"] if isinstance(prediction, dict) else prediction.result
    [text] = result["value"]["text"]
    return str(text)
