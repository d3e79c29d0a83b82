"""Fixtures of the browser tier: a real Label Studio, headless Chromium, a logged-in page.

Run with ``pytest -m browser``. Needs Playwright (``pip install playwright``) driving
Debian's Chromium (``apt-get install chromium``); Playwright's own browser download is
never used. The server is the session's SQLite Label Studio (``tests/servers.py``), shared
with the live tier when both run in one session (``pytest -m "live or browser"``);
``LSTRACE_BROWSER_BACKEND=postgres`` runs the tier on PostgreSQL behind gunicorn instead.
Screenshots go to ``artifacts/browser/`` (or ``LSTRACE_ARTIFACTS_DIR``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.pages import LabelStudioPage
from tests.browser.server import Server
from tests.labelstudio_script import REPO, TOKEN

CHROMIUM = os.environ.get("LSTRACE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("LSTRACE_ARTIFACTS_DIR", REPO / "artifacts")) / "browser"


@pytest.fixture(scope="session")
def ls_server(request: pytest.FixtureRequest) -> Server:
    """The session's Label Studio on SQLite (started on first use, stopped at the end), or
    on PostgreSQL behind gunicorn workers with ``LSTRACE_BROWSER_BACKEND=postgres``."""
    backend = os.environ.get("LSTRACE_BROWSER_BACKEND", "sqlite")
    server: Server = request.getfixturevalue(f"{backend}_session")
    return server


@pytest.fixture(autouse=True)
def point_lstrace(ls_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Send this test's tasks to the tier's server."""
    monkeypatch.setenv("LABEL_STUDIO_URL", ls_server.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", TOKEN)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright, for one test module.

    Not for the session: Playwright's sync API keeps an event loop running on the main
    thread while it is open, and the live tier's ``asyncio.run()`` (same session under
    ``pytest -m "live or browser"``) refuses to start inside a running loop."""
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 - an optional extra
    except ImportError:
        pytest.fail("the browser tier needs Playwright: pip install playwright")
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: apt-get install chromium (or set LSTRACE_CHROMIUM)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def login_state(browser: Any, ls_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cookies of a session logged in as the server's user, saved once per test module."""
    context = browser.new_context()
    try:
        LabelStudioPage(context.new_page(), ls_server.url, ARTIFACTS).login(
            ls_server.username, ls_server.password
        )
        state = tmp_path_factory.mktemp("browser") / "state.json"
        context.storage_state(path=str(state))
    finally:
        context.close()
    return state


@pytest.fixture
def ui(
    browser: Any, login_state: Path, ls_server: Server, request: pytest.FixtureRequest
) -> Iterator[LabelStudioPage]:
    """A logged-in page that records JavaScript page errors; screenshots named for the test."""
    context = browser.new_context(
        storage_state=str(login_state), viewport={"width": 1280, "height": 1000}
    )
    try:
        yield LabelStudioPage(context.new_page(), ls_server.url, ARTIFACTS, request.node.name)
    finally:
        context.close()


@pytest.fixture
def title() -> str:
    """A project title no other test uses."""
    return f"browser-{uuid.uuid4().hex[:10]}"
