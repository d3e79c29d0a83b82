"""Read what lstrace stored back from Label Studio, through the SDK.

Tests call these after ``lstrace.flush()``: the requests run in the test's
cassette like lstrace's own, so an offline run replays what the recording
server really stored. The URL and key are the ones the conftest sets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from label_studio_sdk import LabelStudio

import lstrace

if TYPE_CHECKING:
    from label_studio_sdk.types import AllRolesProjectList, RoleBasedTask


def client() -> LabelStudio:
    """An SDK client for the server the test talks to (no retries where the SDK has them)."""
    where = {"base_url": os.environ["LABEL_STUDIO_URL"]}
    where["api_key"] = os.environ["LABEL_STUDIO_API_KEY"]
    try:
        return LabelStudio(**where, max_retries=0)  # type: ignore[no-untyped-call]
    except TypeError:  # label-studio-sdk 2.0.0, the lowest supported, has no max_retries
        return LabelStudio(**where)  # type: ignore[no-untyped-call]


# label-studio-sdk's list() methods return SyncPagerExt[T] with T bound to nothing (its
# _extensions/*/client_ext.py), so mypy cannot see what they yield; cast() names the
# item types of the SDK's own generated list() they wrap.


def projects(title: str, sdk: LabelStudio | None = None) -> list[AllRolesProjectList]:
    """The projects the server lists for ``title`` (it filters by substring), read with
    ``sdk`` (by default :func:`client`)."""
    sdk = sdk or client()
    return cast("list[AllRolesProjectList]", list(sdk.projects.list(title=title)))


def sdk_tasks(project: int, sdk: LabelStudio | None = None) -> list[RoleBasedTask]:
    """The tasks of project ``project``, with every field, read with ``sdk``."""
    sdk = sdk or client()
    return cast("list[RoleBasedTask]", list(sdk.tasks.list(project=project, fields="all")))


def known(value: int | None) -> int:
    """An id the SDK types as optional, which Label Studio always sends."""
    assert value is not None, "Label Studio answered without an id"
    return value


def project_ids(title: str) -> list[int]:
    """Ids of the projects titled exactly ``title`` (the server filters by substring)."""
    return sorted(known(p.id) for p in projects(title) if p.title == title)


def project_id(title: str) -> int:
    """The id of the one project titled ``title``; fails if there is none or several."""
    ids = project_ids(title)
    assert len(ids) == 1, f"expected one project titled {title!r}, found ids {ids}"
    return ids[0]


class Task(TypedDict):
    """A task as Label Studio stored it."""

    id: int
    data: dict[str, Any]
    predictions: list[dict[str, Any]]  # each {"model_version", "result"}


def tasks(project: int | str) -> list[Task]:
    """The tasks of a project (by id, or by exact title) as ``{"id", "data", "predictions"}``."""
    pid = project if isinstance(project, int) else project_id(project)
    found: list[Task] = []
    for task in sdk_tasks(pid):
        predictions = [
            {"model_version": p.model_version, "result": p.result} for p in task.predictions or []
        ]
        found.append({"id": known(task.id), "data": dict(task.data), "predictions": predictions})
    return found


def responses(task: Task) -> list[str]:
    """The texts of a task's first prediction."""
    return [t for r in task["predictions"][0]["result"] for t in r["value"]["text"]]


def by_prompt(project: int | str) -> dict[str, Task]:
    """A project's tasks keyed by their prompt text (``data.prompt``)."""
    return {str(t["data"]["prompt"]): t for t in tasks(project)}


def label_config(project: int) -> str:
    """The project's labeling config, as stored."""
    return str(client().projects.get(id=project).label_config)


def create_project(title: str, label_config: str) -> int:
    """Create a project the way a user would in the UI; returns its id."""
    return known(client().projects.create(title=title, label_config=label_config).id)


def import_tasks(project: int, tasks: list[dict[str, Any]]) -> None:
    """Import ``tasks`` (dicts in Label Studio's import format) as a user's script would."""
    # label-studio-sdk types ``request`` as Sequence[ImportApiRequest], its pydantic model,
    # yet sends plain dicts as given (as its own examples do); the stubs are wrong here.
    sdk = client()
    sdk.projects.import_tasks(id=project, request=tasks, return_task_ids=True)  # type: ignore[arg-type]


# Tasks confirmed per spool (one per test) up to the last flushed() check.
_confirmed: dict[Path | None, int] = {}


def flushed(delivered: int) -> None:
    """Flush lstrace and check that exactly ``delivered`` tasks were confirmed since the
    test's previous check (or its start), none left.

    Counted from ``stats()``, not from the flush's own result: on a loaded machine the
    sender may deliver a batch that is due (``flush_interval``) before flush() starts."""
    # flush() returns as soon as nothing is pending: the long deadline costs nothing when
    # all is well, and keeps a machine under load from failing the test (issue 12.10)
    result = lstrace.flush(timeout=120)
    stats = lstrace.stats()  # cumulative: everything spooled so far was delivered
    before = _confirmed.get(result.spool_path, 0)
    _confirmed[result.spool_path] = stats.delivered
    assert (stats.delivered - before, result.pending) == (delivered, 0), (result, stats)
    assert (stats.pending, stats.failed, stats.delivered) == (0, 0, stats.spooled), stats
