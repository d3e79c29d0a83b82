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
import difflib
import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from lstrace._errors import ConfigError
from lstrace._labelconfig import (
    DEFAULT_CONFIGS,
    MODES,
    AnyTarget,
    default_target,
    target_from_xml,
)

DEFAULT_URL = "http://localhost:8080"
DEFAULT_PROJECT_NAME = "LangChain-%Y-%m-%d"
DEFAULT_MAX_FIELD_CHARS = 100_000


class CaptureOptions(TypedDict, total=False):
    """The options that shape what is captured (see :class:`TraceOptions`)."""

    tags: Iterable[str]
    metadata: Mapping[str, Any]
    mask: Callable[[str], str]
    sample_rate: float
    sample_seed: int | str
    filter: Callable[[CallInfo], bool]
    before_send: Callable[[dict[str, Any]], dict[str, Any] | None]
    capture_errors: bool
    max_field_chars: int


class TraceOptions(CaptureOptions, total=False):
    """The options every entry point takes (``enable``, ``ls_session``, ``@ls_track``, the handler).

    Where to send:
        project_name: project title, a strftime pattern (default ``"LangChain-%Y-%m-%d"``),
            created with the config if missing.
        project_id: an existing project's id; wins over project_name
            (env ``LABEL_STUDIO_PROJECT_ID``).
        project_config: a custom labeling config (XML) with a TextArea for the response.
        mode: ``"prompt"`` (default), ``"chat"``, or ``"pairwise"`` (two responses side
            by side: the generations of one call, or two calls of one scope that share a
            prompt, or the metadata value named by ``pair_by``).
        url: Label Studio URL (env ``LABEL_STUDIO_URL``, default ``http://localhost:8080``).
        api_key: legacy token or personal access token (env ``LABEL_STUDIO_API_KEY``).
        pair_by: in pairwise mode, the metadata key whose value groups calls into pairs
            (default: calls with the same prompt pair up).
    What each task carries:
        tags, metadata: added to every task; merged from outer to inner scopes and with
            LangChain's own run tags and metadata.
    What is captured:
        mask: applied to every text that leaves the process (see :mod:`lstrace.masking`).
        sample_rate: fraction of top-level traces kept, 0.0-1.0 (env ``LSTRACE_SAMPLE_RATE``).
        sample_seed: makes sampling decisions reproducible (env ``LSTRACE_SAMPLE_SEED``).
        filter: ``filter(call: CallInfo) -> bool``; False drops the call.
        before_send: ``before_send(task: dict) -> dict | None``; None drops the call.
        capture_errors: calls that raised become tasks marked as errors (env
            ``LSTRACE_CAPTURE_ERRORS``, default off).
        max_field_chars: longest text kept per field before truncation with a visible marker
            (env ``LSTRACE_MAX_FIELD_CHARS``, default 100,000).
    """

    project_name: str
    project_id: int | str
    project_config: str
    mode: str
    url: str
    api_key: str
    pair_by: str


@dataclass(frozen=True)
class CallInfo:
    """What a ``filter`` sees of a captured call."""

    model: str
    run_type: str  # "llm" or "chat_model"
    prompt: str
    dialogue: list[dict[str, str]]
    tags: list[str]
    metadata: dict[str, Any]
    error: str | None


_OPTION_NAMES = (*TraceOptions.__annotations__, *CaptureOptions.__annotations__)


@dataclass(frozen=True)
class ScopeArgs:
    """The options one entry point was given, checked for type and form (None: not given)."""

    project_name: str | None = None
    project_id: int | None = None
    project_config: str | None = None
    mode: str | None = None
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    mask: Callable[[str], str] | None = None
    sample_rate: float | None = None
    sample_seed: int | str | None = None
    filter: Callable[[CallInfo], bool] | None = None
    before_send: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    capture_errors: bool | None = None
    max_field_chars: int | None = None
    pair_by: str | None = None

    @property
    def names_project(self) -> bool:
        return any(
            v is not None
            for v in (self.project_name, self.project_id, self.project_config, self.mode)
        )


def make_args(**options: Any) -> ScopeArgs:
    """Check the options of an entry point; raise :class:`ConfigError` naming the fix."""
    for key in options:
        if key not in _OPTION_NAMES:
            close = difflib.get_close_matches(key, _OPTION_NAMES, n=1)
            hint = (
                f"did you mean {close[0]!r}?" if close else f"options are {sorted(_OPTION_NAMES)}"
            )
            raise ConfigError(f"unknown option {key!r}; {hint}")
    given = {k: v for k, v in options.items() if v is not None}
    mode = getattr(given.get("mode"), "value", given.get("mode"))  # LabelStudioMode members
    if mode is not None and mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(map(repr, MODES))}, not {mode!r}.")
    if "project_config" in given:
        target_from_xml(given["project_config"])  # raises ConfigError with the reason
    name = given.get("project_name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f"project_name must be a non-empty string, not {name!r}.")
    url = given.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise ConfigError(f"url must start with http:// or https://, got {url!r}.")
    metadata = given.get("metadata", {})
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"metadata must be a mapping, not {type(metadata).__name__}.")
    for hook in ("mask", "filter", "before_send"):
        if hook in given and not callable(given[hook]):
            raise ConfigError(f"{hook} must be callable, not {type(given[hook]).__name__}.")
    return ScopeArgs(
        project_name=name,
        project_id=_project_id(given.get("project_id"), "project_id"),
        project_config=given.get("project_config"),
        mode=mode,
        url=url.rstrip("/") if url else None,
        api_key=given.get("api_key"),
        tags=_tags(given.get("tags", ())),
        metadata=dict(metadata),
        mask=given.get("mask"),
        sample_rate=_rate(given.get("sample_rate"), "sample_rate"),
        sample_seed=given.get("sample_seed"),
        filter=given.get("filter"),
        before_send=given.get("before_send"),
        capture_errors=_flag(given.get("capture_errors"), "capture_errors"),
        max_field_chars=_positive(given.get("max_field_chars"), "max_field_chars"),
        pair_by=_pair_by(given.get("pair_by")),
    )


def _pair_by(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"pair_by must be the name of a metadata key, not {value!r}.")
    return value


def _tags(tags: Any) -> tuple[str, ...]:
    if isinstance(tags, str):
        raise ConfigError(f"tags must be a list of strings, not the string {tags!r}.")
    try:
        result = tuple(tags)
    except TypeError:
        raise ConfigError(f"tags must be a list of strings, not {type(tags).__name__}.") from None
    if not all(isinstance(t, str) for t in result):
        raise ConfigError(f"tags must be strings, got {result!r}.")
    return result


def _rate(value: Any, name: str) -> float | None:
    if value is None:
        return None
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number from 0.0 to 1.0, not {value!r}.") from None
    if not 0.0 <= rate <= 1.0 or isinstance(value, bool):
        raise ConfigError(f"{name} must be from 0.0 to 1.0, not {value!r}.")
    return rate


def _flag(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}.")


def _positive(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a positive whole number, not {value!r}.") from None
    if number < 1 or isinstance(value, bool):
        raise ConfigError(f"{name} must be a positive whole number, not {value!r}.")
    return number


@dataclass(frozen=True)
class Destination:
    """Where tasks go: a server and a project. Spooled with each task, without the key."""

    url: str
    project_id: int | None
    project_title: str | None
    label_config: str  # used to create the project when it does not exist
    mode: str

    @functools.cached_property
    def key(self) -> str:
        """Stable identity of this destination, used by the spool and the caches."""
        raw = json.dumps(
            [self.url, self.project_id, self.project_title, self.label_config, self.mode]
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    @property
    def offline_target(self) -> AnyTarget | None:
        """The target known without asking the server (None for a bare project_id)."""
        if self.project_id is not None and self.label_config == "":
            return None
        if self.label_config in DEFAULT_CONFIGS.values():
            return default_target(self.mode)
        return target_from_xml(self.label_config)

    @property
    def project(self) -> str:
        """The project, as people name it: ``project id 3`` or ``project 'Jokes'``."""
        return (
            f"project id {self.project_id}"
            if self.project_id
            else f"project {self.project_title!r}"
        )

    def describe(self) -> str:
        return f"{self.project} on {self.url}"


@dataclass(frozen=True)
class Options:
    """A scope's resolved options."""

    destination: Destination
    api_key: str = field(repr=False)
    tags: tuple[str, ...]
    metadata: Mapping[str, Any]
    mask: Callable[[str], str] | None = None
    sample_rate: float = 1.0
    sample_seed: int | str | None = None
    filter: Callable[[CallInfo], bool] | None = None
    before_send: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    capture_errors: bool = False
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    pair_by: str | None = None
    enabled: bool = True


# Option name -> (environment variable, parser) for the options the environment can default.
_ENV_DEFAULTS: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "sample_rate": ("LSTRACE_SAMPLE_RATE", _rate),
    "sample_seed": ("LSTRACE_SAMPLE_SEED", lambda v, _: v),
    "capture_errors": ("LSTRACE_CAPTURE_ERRORS", _flag),
    "max_field_chars": ("LSTRACE_MAX_FIELD_CHARS", _positive),
}
_INHERITED = ("mask", "filter", "before_send", "pair_by", *_ENV_DEFAULTS)


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
    shaping: dict[str, Any] = {}
    for name in _INHERITED:
        value = getattr(args, name)
        if value is None and outer is not None:
            value = getattr(outer, name)
        elif value is None and name in _ENV_DEFAULTS:
            variable, parse = _ENV_DEFAULTS[name]
            raw = os.environ.get(variable)
            value = parse(raw, variable) if raw not in (None, "") else None
        if value is not None:
            shaping[name] = value
    return Options(
        destination,
        api_key,
        tags=tuple(dict.fromkeys((*outer_tags, *args.tags))),
        metadata={**(outer.metadata if outer else {}), **args.metadata},
        enabled=_flag(os.environ.get("LSTRACE_ENABLED", "true"), "LSTRACE_ENABLED") is not False,
        **shaping,
    )


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
