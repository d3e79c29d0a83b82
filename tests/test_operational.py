"""What the environment decides at call time never breaks the app.

No API key, or a server that does not answer: no entry point raises (``enable()``,
``ls_session``, ``@ls_track``, the drop-in ``LabelStudioCallbackHandler``). The calls
are captured, kept in the spool and counted; one ERROR says how to fix it; a later
scope with a key, or ``lstrace.sync``, sends them. With ``LSTRACE_ENABLED=false``
nothing needs a key or a server. Bad arguments still raise ``ConfigError`` (tested
with each entry point's own tests).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import FakeListLLM

import lstrace
from lstrace import ls_session, ls_track
from lstrace._delivery import worker as _worker
from tests import readback
from tests.conftest import RECORD_TOKEN

CONFIG = '<View><Text name="q" value="$prompt"/><TextArea name="a" toName="q"/></View>'


def every_entry_point(llm: FakeListLLM, **options: Any) -> None:
    """One call through each entry point: enable, ls_session, @ls_track, the handler."""
    lstrace.enable(project_name="operational: enable", **options)
    llm.invoke("through enable")
    with ls_session(project_name="operational: session", **options):
        llm.invoke("through ls_session")

    @ls_track(project_name="operational: track", **options)
    def tracked() -> str:
        return llm.invoke("through ls_track")

    tracked()
    handler = lstrace.LabelStudioCallbackHandler(project_name="operational: handler", **options)
    llm.invoke("through the handler", config={"callbacks": [handler]})
    lstrace.disable()


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "lstrace" and r.levelno >= 40]


def test_without_a_key_no_entry_point_raises_and_the_calls_wait_in_the_spool(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, cassette: Any
) -> None:
    """No key anywhere: the four entry points run their calls; the calls are captured and
    spooled; one ERROR names the variable to set and how the calls get sent; nothing is sent."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    every_entry_point(FakeListLLM(responses=["ok"] * 4))
    result = lstrace.flush(timeout=10)
    assert (result.delivered, result.pending) == (0, 4)
    stats = lstrace.stats()
    assert (stats.captured, stats.spooled, stats.pending) == (4, 4, 4)
    [error] = errors(caplog)
    assert "no Label Studio API key for" in error
    assert "LABEL_STUDIO_API_KEY" in error and "api_key=" in error and "lstrace sync" in error
    assert cassette.play_count == 0 and len(cassette) == 0  # nothing went out


def test_a_later_scope_with_a_key_sends_what_waited(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Calls captured without a key are sent as soon as a scope brings one."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    llm = FakeListLLM(responses=["one", "two", "three"])
    with ls_session(project_name="operational: key later"):
        llm.invoke("without a key 1")
        llm.invoke("without a key 2")
    assert lstrace.flush(timeout=10).pending == 2
    with ls_session(project_name="operational: key later", api_key=RECORD_TOKEN):
        llm.invoke("with a key")
    assert lstrace.flush(timeout=30).pending == 0
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", RECORD_TOKEN)  # for the read-back
    assert set(readback.by_prompt("operational: key later")) == {
        "without a key 1",
        "without a key 2",
        "with a key",
    }
    assert len(errors(caplog)) == 1


def test_sync_with_a_key_sends_what_waited(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls captured without a key are sent by ``lstrace.sync(api_key=...)``."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    with ls_session(project_name="operational: sync later"):
        FakeListLLM(responses=["ok"]).invoke("waits for sync")
    assert lstrace.flush(timeout=10).pending == 1
    result = lstrace.sync(api_key=RECORD_TOKEN, timeout=30)
    assert (result.delivered, result.pending) == (1, 0)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", RECORD_TOKEN)
    assert list(readback.by_prompt("operational: sync later")) == ["waits for sync"]


def test_capture_turned_off_needs_no_key_and_no_server(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, cassette: Any
) -> None:
    """LSTRACE_ENABLED=false, no key, a project check that would ask the server: every entry
    point runs its calls; no worker starts, nothing is logged, nothing is requested."""
    monkeypatch.setenv("LSTRACE_ENABLED", "false")
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    caplog.set_level(logging.DEBUG, logger="lstrace")
    every_entry_point(FakeListLLM(responses=["ok"] * 4))
    every_entry_point(FakeListLLM(responses=["ok"] * 4), project_id=7, project_config=CONFIG)
    assert _worker.running() is None
    assert [r for r in caplog.records if r.name == "lstrace"] == []
    assert cassette.play_count == 0 and len(cassette) == 0


def _dead_port() -> int:
    """A port nothing listens on: bound once by the OS, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_server_never_raises_into_the_app(tmp_path: Path) -> None:
    """In a fresh process whose Label Studio does not answer, every entry point (including a
    project check at entry) runs its calls; they are captured and left in the spool, and the
    process exits 0 saying how many wait."""
    script = textwrap.dedent(
        """
        import lstrace
        from langchain_core.language_models import FakeListLLM
        from tests.test_operational import CONFIG, every_entry_point

        lstrace.configure(shutdown_timeout=1.0, flush_interval=0.1)
        every_entry_point(FakeListLLM(responses=["ok"] * 4))
        every_entry_point(FakeListLLM(responses=["ok"] * 4), project_id=7, project_config=CONFIG)
        print("captured", lstrace.flush(timeout=1.0).pending)
        """
    )
    env = {
        **os.environ,
        "LABEL_STUDIO_URL": f"http://127.0.0.1:{_dead_port()}",
        "LABEL_STUDIO_API_KEY": "some-key",
        "LSTRACE_SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "captured 8" in done.stdout
    assert "Traceback" not in done.stderr
    assert "8 tasks were not yet delivered" in done.stderr
