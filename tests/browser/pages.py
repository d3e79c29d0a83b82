"""Driving Label Studio's web UI: log in, open a project's Data Manager or a task.

Every wait fails fast, with a screenshot, as soon as the page reports a JavaScript
error (``pageerror``): a crashed Label Studio view shows nothing, so waiting for
content to appear would only time out without saying why.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

WAIT_S = 45.0


class PageCrashed(AssertionError):
    """Label Studio's page raised a JavaScript error."""


class LabelStudioPage:
    """One browser page on a Label Studio server, recording its JavaScript errors."""

    def __init__(self, page: Any, url: str, artifacts: Path, name: str = "page") -> None:
        self.page = page
        self.url = url.rstrip("/")
        self.artifacts = artifacts
        self.name = name
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def login(self, username: str, password: str) -> None:
        """Log in through the login form; fails if the page stays on the form."""
        self.page.goto(f"{self.url}/user/login/")
        self.page.fill("input[name=email]", username)
        self.page.fill("input[name=password]", password)
        with self.page.expect_navigation():
            self.page.click("button[type=submit]")
        assert "/user/login" not in self.page.url, f"login as {username} failed"

    def open_data_manager(self, project_id: int) -> Any:
        """Open the project's task list; return the locator of its rows once shown."""
        self.page.goto(f"{self.url}/projects/{project_id}/data")
        rows = self.page.locator(".lsf-table-row")
        self.wait_visible(rows, "the Data Manager's task rows")
        return rows

    def open_task(self, project_id: int, task_id: int) -> Any:
        """Open one task in the labeling view; return the locator of the labeling area."""
        self.page.goto(f"{self.url}/projects/{project_id}/data?task={task_id}")
        area = self.page.locator(".lsf-main-view__annotation")
        self.wait_visible(area, "the labeling area")
        self.wait_visible(area.locator(".lsf-textarea__region, textarea"), "the response box")
        return area

    def response_box(self) -> Any:
        """The locator of the response shown in the labeling area (a TextArea result)."""
        return self.page.locator(".lsf-main-view__annotation [data-testid=htx-textbox-view]")

    def edit_response(self) -> Any:
        """Click the response's edit button; return the text box that opens.

        That box is a ``<textarea>`` when the config's TextArea has ``rows`` set, and a
        one-line ``<input>`` otherwise.
        """
        self.page.locator("[data-testid=htx-textbox-edit-button]").first.click()
        box = self.page.locator(
            ".lsf-main-view__annotation .lsf-textarea__region :is(textarea, input)"
        )
        self.wait_visible(box, "the response's edit box")
        return box.first

    def wait_visible(self, locator: Any, what: str, timeout: float = WAIT_S) -> None:
        """Wait until ``locator`` shows; raise :class:`PageCrashed` on a page error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_no_errors()
            if locator.count() and locator.first.is_visible():
                return
            self.page.wait_for_timeout(200)
        self.check_no_errors()
        self.screenshot("timeout")
        raise AssertionError(f"{what} did not show within {timeout:.0f} s ({self.page.url})")

    def settle(self) -> None:
        """Let pending requests and renders finish, then check again for page errors."""
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_timeout(500)
        self.check_no_errors()

    def check_no_errors(self) -> None:
        """Raise :class:`PageCrashed`, after a screenshot, if the page reported an error."""
        if self.errors:
            shot = self.screenshot("pageerror")
            raise PageCrashed(f"JavaScript error on {self.page.url}: {self.errors} (see {shot})")

    def screenshot(self, view: str) -> Path:
        """Save a screenshot as ``<artifacts>/<test name>-<view>.png``; return its path."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.name)
        path = self.artifacts / f"{safe}-{view}.png"
        self.page.screenshot(path=str(path))
        return path
