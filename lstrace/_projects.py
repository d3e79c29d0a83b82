"""Project resolution: a destination becomes a project id and a response target.

``project_id`` wins; otherwise the title is matched exactly (the server's
filter is a substring match) and the project is created with its config when
missing. Results are cached per process; a lock per destination keeps two
threads from creating the same project, and after a create the lowest id with
that title wins, so racing processes converge on one project.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from lstrace._client import LabelStudioClient
from lstrace._errors import DeliveryFailure, FailureKind
from lstrace._labelconfig import Target, target_from_parsed
from lstrace._options import Destination

logger = logging.getLogger("lstrace")


@dataclass(frozen=True)
class Project:
    id: int
    target: Target


class ProjectCache:
    """Resolved projects by destination key."""

    def __init__(self) -> None:
        self._resolved: dict[str, Project] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def forget(self, dest: Destination) -> None:
        self._resolved.pop(dest.key, None)

    def resolve(self, dest: Destination, client: LabelStudioClient) -> Project:
        """The destination's project, creating it if needed. Raises ``DeliveryFailure``."""
        cached = self._resolved.get(dest.key)
        if cached is not None:
            return cached
        with self._guard:
            lock = self._locks.setdefault(dest.key, threading.Lock())
        with lock:
            cached = self._resolved.get(dest.key)
            if cached is None:
                cached = self._resolved[dest.key] = _resolve(dest, client)
            return cached


def _resolve(dest: Destination, client: LabelStudioClient) -> Project:
    if dest.project_id is not None:
        project_id = dest.project_id
    else:
        assert dest.project_title is not None
        ids = client.projects_titled(dest.project_title)
        if ids:
            project_id = ids[0]
        else:
            created = client.create_project(dest.project_title, dest.label_config)
            logger.info(
                "lstrace: created Label Studio project %r (id %s)", dest.project_title, created
            )
            project_id = min(client.projects_titled(dest.project_title) or [created])
            if project_id != created and client.task_count(created) == 0:
                client.delete_project(created)  # another process won the race
    target = target_from_parsed(client.project_config(project_id))
    if target is None:
        raise DeliveryFailure(
            FailureKind.CONFIG,
            f"Label Studio {dest.describe()} has no TextArea for the model's response. "
            "Add one in the project's Settings > Labeling Interface (for example the "
            "'Generative AI > Supervised Language Model Fine-tuning' template), or use "
            "another project.",
        )
    expected = dest.offline_target
    if expected is not None and dest.project_id is not None and expected != target:
        raise DeliveryFailure(
            FailureKind.CONFIG,
            f"Label Studio {dest.describe()} does not have the tags of the given project_config "
            f"(it needs TextArea {expected.from_name!r} on {expected.object_type} "
            f"{expected.to_name!r} reading ${expected.value_key}). Update the project's "
            "labeling config, or drop project_config to use the project as it is.",
        )
    return Project(project_id, target)
