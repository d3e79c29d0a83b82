"""Test fixtures shared by every tier.

Offline tests (the default run) go through vcrpy: each test runs inside its
own cassette, in ``none`` record mode unless ``LSTRACE_RECORD=all``, so a
request that is not in the cassette fails the test. Cassettes are recorded
from a real Label Studio by ``python scripts/record_cassettes.py`` and never
edited by hand; credentials are scrubbed while recording.

The live and browser tiers share one real Label Studio per backend for the whole
session (``sqlite_session``, ``postgres_session``; see ``tests/servers.py``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import vcr

import lstrace
from lstrace import _process
from tests.providers.stubs import is_stub_request
from tests.servers import Server, session_server

CASSETTES = Path(__file__).parent / "cassettes"
RECORD_MODE = os.environ.get("LSTRACE_RECORD", "none")
# The server cassettes are recorded from (scripts/record_cassettes.py starts it).
RECORD_URL = os.environ.get("LSTRACE_RECORD_URL", "http://127.0.0.1:18088")
RECORD_TOKEN = os.environ.get("LSTRACE_RECORD_TOKEN", "0123456789abcdef0123456789abcdef01234567")

# Values that differ on every run; the body matcher compares requests without them.
_VOLATILE_KEYS = {"run_id", "parent_run_id", "latency_ms", "captured_at"}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Timings shown inside trace tasks' texts ("· 12 ms", "· 0.03 s").
_TIMING = re.compile(r"\b\d+ ms\b|\b\d+\.\d\d s\b")


def _normalized(body: Any) -> Any:
    if isinstance(body, dict):
        return {
            k: ("<volatile>" if k in _VOLATILE_KEYS else _normalized(v)) for k, v in body.items()
        }
    if isinstance(body, list):
        return [_normalized(v) for v in body]
    if isinstance(body, str):
        return _TIMING.sub("<time>", _UUID.sub("<uuid>", body))
    return body


def _body_matcher(r1: Any, r2: Any) -> None:
    def load(request: Any) -> Any:
        raw = request.body or b""
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        try:
            body = _normalized(json.loads(raw)) if raw else None
        except ValueError:
            return _normalized(raw)
        if isinstance(body, list):  # a batch of tasks: concurrent callers capture in any order
            body.sort(key=lambda v: json.dumps(v, sort_keys=True))
        return body

    assert load(r1) == load(r2), "request body differs from the recorded one"


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in ("set-cookie", "x-csrftoken"):
            del headers[name]
    return response


def _scrub_request(request: Any) -> Any:
    if is_stub_request(request.host, request.port):
        return None  # a provider stub of this test (tests/providers): passed through, not recorded
    if "/api/token" in request.path:
        request.body = None  # refresh/access tokens travel in these bodies
    return request


def _vcr() -> vcr.VCR:
    my_vcr = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode=RECORD_MODE,
        # not host/port: recordings may run against a server on any free port
        match_on=["method", "path", "query", "lstrace_body"],
        filter_headers=["authorization", "cookie", "x-api-key", "x-csrftoken"],
        before_record_request=_scrub_request,
        before_record_response=_scrub_response,
        decode_compressed_response=True,
    )
    my_vcr.register_matcher("lstrace_body", _body_matcher)
    return my_vcr


@pytest.fixture(autouse=True)
def lstrace_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test starts with no scope, no worker, its own spool and the recording server's env."""
    _process.reset()
    monkeypatch.setenv("LABEL_STUDIO_URL", RECORD_URL)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", RECORD_TOKEN)
    monkeypatch.delenv("LABEL_STUDIO_PROJECT_ID", raising=False)
    spool = tmp_path / "spool.sqlite3"
    # Long batching windows: a test's tasks go out in one import, at flush(), as recorded.
    lstrace.configure(spool_path=spool, flush_interval=3600, batch_size=1000)
    yield spool
    _process.reset()


@pytest.fixture(autouse=True)
def cassette(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Run each offline test inside its cassette: tests/cassettes/<module>/<test>.yaml."""
    if any(request.node.get_closest_marker(tier) for tier in ("live", "browser", "providers")):
        yield None
        return
    module = request.node.module.__name__.rsplit(".", 1)[-1]
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    with _vcr().use_cassette(f"{module}/{name}.yaml") as cass:
        yield cass


@pytest.fixture(scope="session")
def sqlite_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The session's Label Studio on SQLite (the development server), started on first use."""
    yield from session_server("sqlite", tmp_path_factory)


@pytest.fixture(scope="session")
def postgres_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The session's Label Studio on PostgreSQL behind gunicorn workers, started on first use."""
    yield from session_server("postgres", tmp_path_factory)
