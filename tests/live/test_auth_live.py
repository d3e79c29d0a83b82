"""Personal access tokens against a real Label Studio (live tier: ``pytest -m live``).

A PAT is a JWT refresh token: the SDK exchanges it at ``/api/token/refresh/``
for short-lived access tokens. Cassettes cannot hold that exchange (the access
token expires in minutes), so these tests run against the session's SQLite
server (the backend does not change authentication). The server keeps one PAT
per user: creating one here revokes the user's earlier PATs (no other test uses one).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from label_studio_sdk import LabelStudio
from langchain_core.language_models import FakeListLLM

import lstrace
from lstrace import ls_session
from tests import readback
from tests.labelstudio_script import load_script
from tests.servers import Server

pytestmark = pytest.mark.live

LLM = FakeListLLM(responses=["ok"])


LS = load_script()


@pytest.fixture
def live(
    sqlite_server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> str:
    """Point lstrace at the server, with no key, short waits; log lstrace and httpx requests."""
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    lstrace.configure(flush_interval=0.2, max_backoff=2.0)
    caplog.set_level(logging.INFO, logger="lstrace")
    caplog.set_level(logging.INFO, logger="httpx")
    return sqlite_server.url


def prompts(url: str, api_key: str, title: str) -> list[Any]:
    """The prompts of the project titled ``title``, read with ``api_key``."""
    sdk = LabelStudio(base_url=url, api_key=api_key)  # type: ignore[no-untyped-call]
    [project] = [p for p in readback.projects(title, sdk) if p.title == title]
    return sorted(t.data["prompt"] for t in readback.sdk_tasks(readback.known(project.id), sdk))


def test_a_personal_access_token_is_refreshed_and_tasks_arrive(
    live: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With a PAT as api_key, the SDK exchanges it at /api/token/refresh/ and the tasks are
    imported with the access token; neither token shows in the log."""
    pat = LS.create_pat(live)
    assert pat.startswith("ey") and pat.count(".") == 2  # a JWT, not a legacy token
    title = f"auth: pat {uuid.uuid4().hex[:8]}"
    with ls_session(project_name=title, api_key=pat):
        LLM.invoke("sent with a PAT")
    assert lstrace.flush(timeout=30).delivered == 1
    with ls_session(project_name=title, api_key=pat):
        LLM.invoke("second batch, same client")
    assert lstrace.flush(timeout=30).delivered == 1
    assert "/api/token/refresh/" in caplog.text
    assert prompts(live, pat, title) == ["second batch, same client", "sent with a PAT"]
    assert pat not in caplog.text
    assert "Bearer" not in caplog.text


def test_a_revoked_token_holds_tasks_until_a_valid_one_is_given(
    live: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A revoked PAT is refused: the call returns, tasks wait in the spool with one clear
    error; entering a scope with a valid token delivers them at once."""
    revoked = LS.create_pat(live)
    valid = LS.create_pat(live)  # the server keeps one PAT per user: this revokes the first
    title = f"auth: revoked {uuid.uuid4().hex[:8]}"
    with ls_session(project_name=title, api_key=revoked):
        assert LLM.invoke("held while the key is refused") == "ok"
    held = lstrace.flush(timeout=5)
    assert (held.delivered, held.pending) == (0, 1)
    refused = [r.getMessage() for r in caplog.records if r.name == "lstrace" and r.levelno >= 40]
    assert len(refused) == 1 and "refused the API key (401)" in refused[0]
    with ls_session(project_name=title, api_key=valid):
        LLM.invoke("sent with the new key")
    done = lstrace.flush(timeout=30)
    assert (done.delivered, done.pending) == (2, 0)
    assert prompts(live, valid, title) == [
        "held while the key is refused",
        "sent with the new key",
    ]
    assert revoked not in caplog.text and valid not in caplog.text
