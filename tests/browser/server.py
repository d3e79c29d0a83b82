"""The Label Studio server of a test session: start it with the repo's script, read it back."""

from __future__ import annotations

from typing import Any

from tests.labelstudio_script import TOKEN


class Server:
    """The tier's Label Studio: its URL, login, and an SDK client to find what arrived."""

    def __init__(self, url: str, username: str, password: str) -> None:
        from label_studio_sdk import LabelStudio

        self.url = url
        self.username = username
        self.password = password
        self.sdk = LabelStudio(base_url=url, api_key=TOKEN, timeout=60)

    def project_id(self, title: str) -> int:
        """The id of the one project titled exactly ``title``."""
        ids = [p.id for p in self.sdk.projects.list(title=title) if p.title == title]
        assert len(ids) == 1, f"expected one project titled {title!r}, found {len(ids)}"
        return int(ids[0])

    def task_ids(self, project_id: int) -> list[int]:
        """The ids of the project's tasks, oldest first."""
        return sorted(int(t.id) for t in self.sdk.tasks.list(project=project_id, include="id"))

    def annotations(self, task_id: int) -> list[Any]:
        """The submitted annotations of a task."""
        return list(self.sdk.annotations.list(id=task_id))
