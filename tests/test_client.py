"""How a refused key is handled by the client and sender (lstrace/_client.py). No HTTP.

Personal access tokens are JWTs; lstrace's client checks their expiry when it
is built, before any request. lstrace must treat that like a
401: hold the tasks, say so once, never loop on tracebacks or leak the token.
"""

from __future__ import annotations

import logging
import time

import jwt
import pytest
from langchain_core.language_models import FakeListLLM

import lstrace
from lstrace import ls_session


def test_an_expired_personal_access_token_holds_the_tasks_with_one_clear_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An expired PAT: the call returns, flush returns early with the task kept, one error
    names the fix, the failure counts as a retry, and the token appears nowhere in the log."""
    caplog.set_level(logging.INFO, logger="lstrace")
    expired = jwt.encode(
        {"exp": int(time.time()) - 60, "token_type": "refresh"},
        "a signing key the server would not know anyway",
        algorithm="HS256",
    )
    with ls_session(project_name="client: expired pat", api_key=expired):
        assert FakeListLLM(responses=["ok"]).invoke("with an expired token") == "ok"
    result = lstrace.flush(timeout=5)
    assert (result.delivered, result.pending) == (0, 1)
    stats = lstrace.stats()
    assert (stats.retried, stats.failed) == (1, 0)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "refused the API key (401)" in errors[0]
    assert "Set LABEL_STUDIO_API_KEY or pass api_key" in errors[0]
    assert "unexpected error" not in caplog.text
    assert expired not in caplog.text
