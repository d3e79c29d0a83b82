"""Project resolution: a destination becomes a project id and a response target.

``project_id`` wins; otherwise the title is matched exactly (the server's
filter is a substring match) and the project is created with its config when
missing. Results are cached per process; a lock per destination keeps two
threads from creating the same project, and after a create the lowest id with
that title wins, so racing processes converge on one project.

A scope given both ``project_id`` and ``project_config`` checks, once per
process, at entry, that the project has the config's tags
(:func:`check_at_entry`): a mismatch is a configuration mistake, raised there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lstrace._client import Client, LabelStudioClient
from lstrace._errors import ConfigError, DeliveryFailure, FailureKind
from lstrace._labelconfig import AnyTarget, PairTarget, target_from_parsed
from lstrace._options import Destination, Options
from lstrace._secrets import redact_url

ENTRY_CHECK_TIMEOUT_S = 5.0

logger = logging.getLogger("lstrace")


@dataclass(frozen=True)
class Project:
    id: int
    target: AnyTarget


class ProjectCache:
    """Resolved projects by destination key."""

    def __init__(self) -> None:
        self._resolved: dict[str, Project] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def forget(self, dest: Destination) -> None:
        self._resolved.pop(dest.key, None)

    def resolve(self, dest: Destination, client: Client) -> Project:
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


def _resolve(dest: Destination, client: Client) -> Project:
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
            if project_id != created and client.project(created).tasks == 0:
                client.delete_project(created)  # another process won the race
    parsed = client.project(project_id).parsed_config
    problem = config_problem(dest, parsed)
    if problem is not None:
        raise DeliveryFailure(FailureKind.CONFIG, problem)
    # the user's config says where responses go; the project was checked to have it
    target = (dest.offline_target if _wants_own_config(dest) else None) or target_from_parsed(
        parsed
    )
    assert target is not None  # config_problem() returned None
    return Project(project_id, target)


def _wants_own_config(dest: Destination) -> bool:
    return dest.project_id is not None and dest.label_config != ""


def config_problem(dest: Destination, parsed: Mapping[str, Any]) -> str | None:
    """Why the project (its ``parsed_label_config``) cannot take the tasks, or None."""
    if target_from_parsed(parsed) is None:
        return (
            f"Label Studio {dest.describe()} has no TextArea for the model's response. "
            "Add one in the project's Settings > Labeling Interface (for example the "
            "'Generative AI > Supervised Language Model Fine-tuning' template), or use "
            "another project."
        )
    expected = dest.offline_target
    if _wants_own_config(dest) and expected is not None and not _has_target(parsed, expected):
        return (
            f"Label Studio {dest.describe()} does not have the tags of the given project_config "
            f"(it needs {expected.describe()}). Update the project's "
            "labeling config, or drop project_config to use the project as it is."
        )
    return None


def _has_target(parsed: Mapping[str, Any], target: AnyTarget) -> bool:
    """True when the parsed config has this TextArea, on this object, reading this key
    (or, for pairwise, this Pairwise control over these two keys)."""
    if isinstance(target, PairTarget):
        pair = parsed.get(target.name) or {}
        keys = [i.get("value") for i in pair.get("inputs") or []]
        return pair.get("type") == "Pairwise" and keys == [target.left_key, target.right_key]
    tag = parsed.get(target.from_name) or {}
    inputs = tag.get("inputs") or []
    return (
        tag.get("type") == "TextArea"
        and target.to_name in (tag.get("to_name") or [])
        and any(
            i.get("type") == target.object_type and i.get("value") == target.value_key
            for i in inputs
        )
    )


# (url, project id, label config) -> the problem found at entry, or None (fine or unknown)
_entry_checks: dict[tuple[str, int, str], str | None] = {}
_entry_lock = threading.Lock()


def check_at_entry(options: Options) -> None:
    """With both ``project_id`` and ``project_config``: check the project has the config's tags.

    Asks the server once per process and project (at most ``ENTRY_CHECK_TIMEOUT_S``
    seconds). Raises :class:`ConfigError` naming the fix when the tags are missing;
    when the server cannot answer, logs a warning and leaves the check to the sender.
    """
    dest = options.destination
    if not _wants_own_config(dest) or dest.project_id is None:
        return
    if not options.enabled or options.api_key is None:
        return  # capture off needs no server; without a key the sender checks, later
    key = (dest.url, dest.project_id, dest.label_config)
    if key not in _entry_checks:
        with _entry_lock:
            if key not in _entry_checks:
                _entry_checks[key] = _ask_at_entry(dest, options.url, options.api_key)
    problem = _entry_checks[key]
    if problem is not None:
        raise ConfigError(problem)


def _ask_at_entry(dest: Destination, url: str, api_key: str) -> str | None:
    assert dest.project_id is not None
    try:
        client = LabelStudioClient(url, api_key, timeout=ENTRY_CHECK_TIMEOUT_S)
        try:
            parsed = client.project(dest.project_id).parsed_config
        finally:
            client.close()
    except Exception as exc:  # unreachable, key refused, no such project...: the sender reports
        logger.warning(
            "lstrace: could not check that %s has the tags of project_config (%s); "
            "tasks are captured and the check happens when they are sent",
            dest.describe(),
            redact_url(str(exc)),
        )
        return None
    return config_problem(dest, parsed)


def reset() -> None:
    """Forget the entry checks (tests)."""
    _entry_checks.clear()
