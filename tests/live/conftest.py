"""Fixtures of the live tier: one real Label Studio per session, fault proxies, helpers.

The server is started by the repo's own ``scripts/labelstudio.py`` on 127.0.0.1 with a fresh
data dir and stopped at the end of the session. Tests that need faults put a
:class:`~tests.live.fault_proxy.FaultProxy` in front of it. Ports come from 18100-18119.
Every test sends its tasks to a project of its own (a unique title), so tests never see
each other's tasks.

Environment: ``LSTRACE_LIVE_DATA_DIR`` (see :func:`live_server`), ``LSTRACE_LIVE_PORT`` (the
server's port, default 18100; proxies take free ports of the next 18, and the one after
those is the dead port); ``LSTRACE_LABEL_STUDIO_VENV``
names a venv with label-studio already installed (else the script installs it).
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

import lstrace
from tests.labelstudio_script import load_script
from tests.live.fault_proxy import FaultProxy

REPO = Path(__file__).resolve().parents[2]
LS_PORT = int(os.environ.get("LSTRACE_LIVE_PORT", "18100"))
PROXY_PORTS = range(LS_PORT + 1, LS_PORT + 19)
DEAD_PORT = LS_PORT + 19  # nothing listens here: "Label Studio is down"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
CHILD = Path(__file__).with_name("child_capture.py")


class LiveServer:
    """A Label Studio server of this session: stop/start it, read what arrived."""

    def __init__(self, data_dir: Path, port: int = LS_PORT, token: str = TOKEN) -> None:
        self.script = load_script()
        self.data_dir = data_dir
        self.port = port
        self.token = token
        self.url = self.script.base_url(port)
        self._sdk: Any = None

    def start(self) -> None:
        self.script.start(self.port, self.data_dir, self.token)

    def stop(self) -> None:
        self.script.stop(self.data_dir)

    @property
    def sdk(self) -> Any:
        if self._sdk is None:
            from label_studio_sdk import LabelStudio

            self._sdk = LabelStudio(base_url=self.url, api_key=self.token, timeout=120)
        return self._sdk

    def project_id(self, title: str) -> int | None:
        """The id of the one project titled exactly ``title`` (None if there is none)."""
        ids = [p.id for p in self.sdk.projects.list(title=title) if p.title == title]
        assert len(ids) <= 1, f"{len(ids)} projects titled {title!r}"
        return ids[0] if ids else None

    def tasks(self, title: str, include: str = "id,data") -> list[Any]:
        """Every task of the project titled ``title`` ([] if the project does not exist)."""
        project = self.project_id(title)
        if project is None:
            return []
        return list(self.sdk.tasks.list(project=project, page_size=1000, include=include))

    def task_count(self, title: str) -> int:
        """How many tasks the project titled ``title`` has (0 if it does not exist)."""
        project = self.project_id(title)
        return 0 if project is None else int(self.sdk.projects.get(id=project).task_number or 0)

    def run_ids(self, title: str) -> Counter[str]:
        """How many tasks of the project carry each ``data.run_id``."""
        return Counter(str(t.data.get("run_id")) for t in self.tasks(title))


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real Label Studio on 127.0.0.1:18100 with a fresh data dir, for the whole session.

    With ``LSTRACE_LIVE_DATA_DIR`` set, that data dir is used instead and a server already
    running from it is reused and left running (quicker runs while developing).
    """
    reuse = os.environ.get("LSTRACE_LIVE_DATA_DIR")
    server = LiveServer(Path(reuse) if reuse else tmp_path_factory.mktemp("labelstudio"))
    server.start()
    try:
        yield server
    finally:
        if not reuse:
            server.stop()


@pytest.fixture(autouse=True)
def live_settings(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Point lstrace at the live server, with small batches and short waits."""
    monkeypatch.setenv("LABEL_STUDIO_URL", live_server.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", live_server.token)
    lstrace.configure(batch_size=100, flush_interval=0.2, max_backoff=2.0, request_timeout=30)
    caplog.set_level(logging.INFO, logger="lstrace")


@pytest.fixture
def proxy(live_server: LiveServer) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the live server, on a port of this tier's range."""
    with FaultProxy(live_server.url, port=free_port()) as fault_proxy:
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
        return int(db.execute("SELECT COUNT(*) FROM tasks WHERE dead IS NULL").fetchone()[0])


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
