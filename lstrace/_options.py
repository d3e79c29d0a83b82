"""Scope options: what the user passed, validated offline, resolved at scope entry.

Resolution order for each option: the scope's own argument, then the
enclosing scope's value, then the environment, then the default. The project
(``project_id``, ``project_name``, ``project_config``, ``mode``) is one unit: a
scope that names any of them starts from scratch for the others; a scope that
names none uses the enclosing scope's project. ``tags`` and ``metadata`` merge
from outer to inner scopes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lstrace._errors import ConfigError
from lstrace._labelconfig import DEFAULT_CONFIGS, MODES, Target, default_target, target_from_xml

DEFAULT_URL = "http://localhost:8080"
DEFAULT_PROJECT_NAME = "LangChain-%Y-%m-%d"


@dataclass(frozen=True)
class ScopeArgs:
    """The options one entry point was given, checked for type and form."""

    project_name: str | None = None
    project_id: int | None = None
    project_config: str | None = None
    mode: str | None = None
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names_project(self) -> bool:
        return any(
            v is not None
            for v in (self.project_name, self.project_id, self.project_config, self.mode)
        )


def make_args(
    *,
    project_name: str | None = None,
    project_id: int | str | None = None,
    project_config: str | None = None,
    mode: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    tags: Iterable[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ScopeArgs:
    """Check the arguments of an entry point; raise :class:`ConfigError` naming the fix."""
    mode_value = getattr(mode, "value", mode)  # accepts LabelStudioMode members
    if mode_value is not None and mode_value not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(map(repr, MODES))}, not {mode!r}.")
    if project_config is not None:
        target_from_xml(project_config)  # raises ConfigError with the reason
    if project_name is not None and (not isinstance(project_name, str) or not project_name.strip()):
        raise ConfigError(f"project_name must be a non-empty string, not {project_name!r}.")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise ConfigError(f"url must start with http:// or https://, got {url!r}.")
    if isinstance(tags, str):
        raise ConfigError(f"tags must be a list of strings, not the string {tags!r}.")
    tag_tuple = tuple(tags or ())
    if not all(isinstance(t, str) for t in tag_tuple):
        raise ConfigError(f"tags must be strings, got {tag_tuple!r}.")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ConfigError(f"metadata must be a mapping, not {type(metadata).__name__}.")
    return ScopeArgs(
        project_name=project_name,
        project_id=_project_id(project_id, "project_id"),
        project_config=project_config,
        mode=mode_value,
        url=url.rstrip("/") if url else None,
        api_key=api_key,
        tags=tag_tuple,
        metadata=dict(metadata or {}),
    )


@dataclass(frozen=True)
class Destination:
    """Where tasks go: a server and a project. Spooled with each task, without the key."""

    url: str
    project_id: int | None
    project_title: str | None
    label_config: str  # used to create the project when it does not exist
    mode: str

    @property
    def key(self) -> str:
        """Stable identity of this destination, used by the spool and the caches."""
        raw = json.dumps(
            [self.url, self.project_id, self.project_title, self.label_config, self.mode]
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    @property
    def offline_target(self) -> Target | None:
        """The target known without asking the server (None for a bare project_id)."""
        if self.project_id is not None and self.label_config == "":
            return None
        if self.label_config in DEFAULT_CONFIGS.values():
            return default_target(self.mode)
        return target_from_xml(self.label_config)

    def describe(self) -> str:
        project = (
            f"project id {self.project_id}"
            if self.project_id
            else f"project {self.project_title!r}"
        )
        return f"{project} on {self.url}"


@dataclass(frozen=True)
class Options:
    """A scope's resolved options."""

    destination: Destination
    api_key: str = field(repr=False)
    tags: tuple[str, ...]
    metadata: Mapping[str, Any]


def resolve(args: ScopeArgs, outer: Options | None, *, now: _dt.datetime | None = None) -> Options:
    """Resolve a scope's options at entry; raises :class:`ConfigError` naming the fix."""
    url = args.url or (outer.destination.url if outer else None)
    url = url or os.environ.get("LABEL_STUDIO_URL", "").rstrip("/") or DEFAULT_URL
    api_key = (
        args.api_key or (outer.api_key if outer else None) or os.environ.get("LABEL_STUDIO_API_KEY")
    )
    if not api_key:
        raise ConfigError(
            f"No Label Studio API key for {url}. Set LABEL_STUDIO_API_KEY or pass api_key=... "
            "(Label Studio: Account & Settings > Access Token)."
        )
    if args.names_project or outer is None:
        destination = _destination(args, url, now or _dt.datetime.now())
    else:
        old = outer.destination
        destination = Destination(
            url, old.project_id, old.project_title, old.label_config, old.mode
        )
    outer_tags = outer.tags if outer else ()
    tags = tuple(dict.fromkeys((*outer_tags, *args.tags)))
    metadata = {**(outer.metadata if outer else {}), **args.metadata}
    return Options(destination, api_key, tags, metadata)


def _destination(args: ScopeArgs, url: str, now: _dt.datetime) -> Destination:
    mode = args.mode or "prompt"
    project_id = args.project_id
    if project_id is None and args.project_name is None:
        project_id = _project_id(
            os.environ.get("LABEL_STUDIO_PROJECT_ID") or None, "LABEL_STUDIO_PROJECT_ID"
        )
    if project_id is not None:
        return Destination(url, project_id, None, args.project_config or "", mode)
    title = now.strftime(args.project_name or DEFAULT_PROJECT_NAME)
    if len(title) > 50:
        raise ConfigError(
            f"Label Studio project titles are at most 50 characters; {title!r} is longer."
        )
    config = args.project_config or DEFAULT_CONFIGS[mode]
    return Destination(url, None, title, config, mode)


def _project_id(value: int | str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, not {value!r}.") from None
    if number <= 0 or isinstance(value, bool):
        raise ConfigError(f"{name} must be a positive project id, not {value!r}.")
    return number
