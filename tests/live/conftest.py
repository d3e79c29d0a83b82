"""Fixtures of the live tier: the session's real Label Studio servers, fault proxies, helpers.

The servers (one per backend, shared with the browser tier) are described in
``tests/servers.py``. A test asks for the one it needs, and that points lstrace at it:

- ``live_server``: parametrized over the backends of ``LSTRACE_LIVE_BACKENDS`` (SQLite
  development server and PostgreSQL behind gunicorn workers), for behaviour the server's
  database or process model may change: delivery, exactly-once, project resolution, export;
- ``sqlite_server`` / ``postgres_server``: one backend only.

Tests that need faults put a :class:`~tests.live.fault_proxy.FaultProxy` in front of the
test's server. Every test sends its tasks to a project of its own (a unique title), so tests
never see each other's tasks.
"""

from __future__ import annotations

import itertools
import logging
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

import lstrace
from tests.live.fault_proxy import FaultProxy
from tests.servers import LIVE_PORT, Server, selected_backends
from tests.spooled import live_calls

LiveServer = Server  # the name the tier's tests use
REPO = Path(__file__).resolve().parents[2]
LS_PORT = LIVE_PORT
PROXY_PORTS = range(LS_PORT + 1, LS_PORT + 19)
DEAD_PORT = LS_PORT + 19  # nothing listens here: "Label Studio is down"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
CHILD = Path(__file__).with_name("child_capture.py")


def _point_at(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    monkeypatch.setenv("LABEL_STUDIO_URL", server.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", server.token)
    return server


@pytest.fixture(params=selected_backends())
def live_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Server:
    """The session's server of each selected backend in turn; lstrace points at it."""
    return _point_at(request.getfixturevalue(f"{request.param}_session"), monkeypatch)


@pytest.fixture
def sqlite_server(sqlite_session: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """The session's SQLite server, for behaviour no backend changes; lstrace points at it."""
    return _point_at(sqlite_session, monkeypatch)


@pytest.fixture
def postgres_server(postgres_session: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """The session's PostgreSQL-backed server; lstrace points at it."""
    return _point_at(postgres_session, monkeypatch)


@pytest.fixture(autouse=True)
def live_settings(caplog: pytest.LogCaptureFixture) -> None:
    """Small batches and short waits; lstrace's log captured."""
    lstrace.configure(batch_size=100, flush_interval=0.2, max_backoff=2.0, request_timeout=30)
    caplog.set_level(logging.INFO, logger="lstrace")


@pytest.fixture
def proxy(request: pytest.FixtureRequest) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the test's server (``live_server`` if it uses
    that, else the SQLite one), on a port of this tier's range."""
    name = "live_server" if "live_server" in request.fixturenames else "sqlite_server"
    server: Server = request.getfixturevalue(name)
    with FaultProxy(server.url, port=free_port()) as fault_proxy:
        yield fault_proxy


def free_port() -> int:
    """A port of this tier's range that nothing listens on."""
    for port in PROXY_PORTS:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError(f"no free port in {PROXY_PORTS}")


@pytest.fixture
def title() -> str:
    """A project title no other test uses."""
    return f"live-{uuid.uuid4().hex[:12]}"


def fake_chat(reply: str = "a fake reply") -> GenericFakeChatModel:
    """A LangChain fake chat model answering ``reply`` for ever (safe to share across threads)."""
    return GenericFakeChatModel(messages=itertools.repeat(AIMessage(content=reply)))


def call(model: GenericFakeChatModel, prompt: Any = "hello") -> str:
    """Invoke ``model`` with a fresh run id; return that id as Label Studio will show it."""
    run_id = uuid.uuid4()
    model.invoke(prompt, config={"run_id": run_id})
    return str(run_id)


async def acall(model: GenericFakeChatModel, prompt: Any = "hello") -> str:
    """Like :func:`call`, through ``ainvoke``."""
    run_id = uuid.uuid4()
    await model.ainvoke(prompt, config={"run_id": run_id})
    return str(run_id)


def spool_rows(path: Path) -> int:
    """Live (not dead) rows in the spool file at ``path``, read with plain sqlite3."""
    with sqlite3.connect(path) as db:
        return live_calls(db)


def child(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``child_capture.py`` with ``args`` in a new Python process, stdout/stderr piped."""
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
