"""Scope options: what the user passed, validated offline, resolved at scope entry.

Each option is declared once, in :data:`OPTIONS`: how it is checked, how it is
inherited, which environment variable defaults it. The typed signatures
(:class:`TraceOptions`, :class:`CaptureOptions`) and the resolved
:class:`Options` are pinned to that table by a test.

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
from types import MappingProxyType
from typing import Any, Literal, TypedDict, cast

from lstrace import _client
from lstrace._errors import ConfigError
from lstrace._labelconfig import (
    DEFAULT_CONFIGS,
    MODES,
    AnyTarget,
    Mode,
    default_target,
    target_from_xml,
)
from lstrace._secrets import redact_url

DEFAULT_URL = _client.DEFAULT_URL
DEFAULT_PROJECT_NAME = "LangChain-%Y-%m-%d"
DEFAULT_MAX_FIELD_CHARS = 100_000
SPEC_VERSION = 1  # the layout of Destination.to_spec(); raise it when a field changes


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
        mode: ``"prompt"`` (default), ``"chat"``, ``"pairwise"`` (two responses side
            by side: the generations of one call, or two calls of one scope that share a
            prompt, or the metadata value named by ``pair_by``), or ``"trace"`` (one task
            per agent or chain run, or per call of an ``@ls_track`` function: every model
            call, tool call, subgraph and sub-agent inside it, in order).
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
    mode: Mode
    url: str
    api_key: str
    pair_by: str


@dataclass(frozen=True)
class CallInfo:
    """What a ``filter`` sees of a captured call.

    ``model`` is the model that answered (the provider's snapshot name when the response
    says, e.g. ``gpt-4o-mini-2024-07-18``), ``requested_model`` the name the app asked
    for; ``tags`` and ``metadata`` are the task's, without LangChain's bookkeeping.
    """

    model: str
    run_type: str  # "llm" or "chat_model"
    prompt: str
    dialogue: list[dict[str, str]]
    tags: list[str]
    metadata: dict[str, Any]
    error: str | None
    requested_model: str = ""


# -- checks: each takes the value given and the name to report, returns the value to keep --


def _project_name(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string, not {value!r}.")
    # strftime() cannot format either: a surrogate fails to encode, a NUL cuts the title short
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as bad:
        raise ConfigError(
            f"{name} must be valid text: a lone surrogate ({value[bad.start]!r}) is at "
            f"position {bad.start} of {value!r}."
        ) from None
    if "\x00" in value:
        raise ConfigError(f"{name} must be valid text: a NUL character is in {value!r}.")
    return value


def _project_id(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, not {value!r}.") from None
    if number <= 0 or isinstance(value, bool):
        raise ConfigError(f"{name} must be a positive project id, not {value!r}.")
    return number


def _project_config(value: Any, name: str) -> str:
    target_from_xml(value)  # raises ConfigError with the reason
    return cast(str, value)


def _mode(value: Any, name: str) -> Mode:
    mode = getattr(value, "value", value)  # LabelStudioMode members
    if mode not in MODES:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, MODES))}, not {mode!r}.")
    return cast(Mode, mode)


def _url(value: Any, name: str) -> str:
    if not (isinstance(value, str) and value.startswith(("http://", "https://"))):
        raise ConfigError(f"{name} must start with http:// or https://, got {value!r}.")
    return value.rstrip("/")


def _api_key(value: Any, name: str) -> str:
    if not isinstance(value, str):  # the value itself is never shown: it may be a secret
        raise ConfigError(f"{name} must be a string, not {type(value).__name__}.")
    return value


def _pair_by(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be the name of a metadata key, not {value!r}.")
    return value


def _tags(tags: Any, name: str) -> tuple[str, ...]:
    if isinstance(tags, str):
        raise ConfigError(f"{name} must be a list of strings, not the string {tags!r}.")
    try:
        result = tuple(tags)
    except TypeError:
        raise ConfigError(f"{name} must be a list of strings, not {type(tags).__name__}.") from None
    if not all(isinstance(t, str) for t in result):
        raise ConfigError(f"{name} must be strings, got {result!r}.")
    return result


def _metadata(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping, not {type(value).__name__}.")
    return dict(value)


def _callable(value: Any, name: str) -> Any:
    if not callable(value):
        raise ConfigError(f"{name} must be callable, not {type(value).__name__}.")
    return value


def _rate(value: Any, name: str) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number from 0.0 to 1.0, not {value!r}.") from None
    if not 0.0 <= rate <= 1.0 or isinstance(value, bool):
        raise ConfigError(f"{name} must be from 0.0 to 1.0, not {value!r}.")
    return rate


def _seed(value: Any, name: str) -> Any:
    return value  # any value seeds: it is only ever formatted into the hash


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}.")


def _positive(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a positive whole number, not {value!r}.") from None
    if number < 1 or isinstance(value, bool):
        raise ConfigError(f"{name} must be a positive whole number, not {value!r}.")
    return number


# -- the table ----------------------------------------------------------------------------

Inherit = Literal["project", "merge", "inherit"]


@dataclass(frozen=True)
class OptionSpec:
    """How one option is checked, inherited and defaulted.

    ``inherit``: ``"project"`` options form the project unit (a scope naming any of them
    starts afresh for the others); ``"merge"`` options merge from outer to inner scopes;
    ``"inherit"`` options not given take the enclosing scope's value, else ``env``'s.
    ``capture``: one of :class:`CaptureOptions` (what the drop-in handler takes as
    ``**options``).
    """

    check: Callable[[Any, str], Any]  # (value, name to report) -> value kept; ConfigError
    inherit: Inherit
    env: str | None = None
    capture: bool = False


OPTIONS: Mapping[str, OptionSpec] = MappingProxyType(
    {
        "project_name": OptionSpec(_project_name, "project"),
        "project_id": OptionSpec(_project_id, "project", env="LABEL_STUDIO_PROJECT_ID"),
        "project_config": OptionSpec(_project_config, "project"),
        "mode": OptionSpec(_mode, "project"),
        "url": OptionSpec(_url, "inherit", env="LABEL_STUDIO_URL"),
        "api_key": OptionSpec(_api_key, "inherit", env="LABEL_STUDIO_API_KEY"),
        "pair_by": OptionSpec(_pair_by, "inherit"),
        "tags": OptionSpec(_tags, "merge", capture=True),
        "metadata": OptionSpec(_metadata, "merge", capture=True),
        "mask": OptionSpec(_callable, "inherit", capture=True),
        "sample_rate": OptionSpec(_rate, "inherit", env="LSTRACE_SAMPLE_RATE", capture=True),
        "sample_seed": OptionSpec(_seed, "inherit", env="LSTRACE_SAMPLE_SEED", capture=True),
        "filter": OptionSpec(_callable, "inherit", capture=True),
        "before_send": OptionSpec(_callable, "inherit", capture=True),
        "capture_errors": OptionSpec(_flag, "inherit", env="LSTRACE_CAPTURE_ERRORS", capture=True),
        "max_field_chars": OptionSpec(
            _positive, "inherit", env="LSTRACE_MAX_FIELD_CHARS", capture=True
        ),
    }
)


def env_default(name: str) -> Any:
    """The option's default from its environment variable (None when unset or empty),
    checked under the variable's name: raises :class:`ConfigError` naming it."""
    variable = OPTIONS[name].env
    raw = os.environ.get(variable) if variable else None
    if raw is None or raw == "":
        return None
    assert variable is not None
    return OPTIONS[name].check(raw, variable)


@dataclass(frozen=True)
class ScopeArgs:
    """The options one entry point was given (those not None), each checked by the table."""

    given: Mapping[str, Any] = field(default_factory=dict, repr=False)  # may hold the key

    def __repr__(self) -> str:
        return f"ScopeArgs({', '.join(self.given)})"

    def get(self, name: str) -> Any:
        return self.given.get(name)

    @property
    def names_project(self) -> bool:
        return any(OPTIONS[name].inherit == "project" for name in self.given)


def make_args(**options: Any) -> ScopeArgs:
    """Check the options of an entry point; raise :class:`ConfigError` naming the fix."""
    given: dict[str, Any] = {}
    for name, value in options.items():
        spec = OPTIONS.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, OPTIONS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"options are {sorted(OPTIONS)}"
            raise ConfigError(f"unknown option {name!r}; {hint}")
        if value is not None:
            given[name] = spec.check(value, name)
    return ScopeArgs(MappingProxyType(given))


@dataclass(frozen=True)
class Destination:
    """Where tasks go: a server and a project. Spooled with each task, so it holds no secret:
    not the key, and ``url`` with its credentials redacted (see :mod:`lstrace._secrets`)."""

    url: str
    project_id: int | None
    project_title: str | None
    label_config: str  # used to create the project when it does not exist
    mode: Mode

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
        return f"{self.project} on {redact_url(self.url)}"  # spools from before held it whole

    def to_spec(self) -> dict[str, Any]:
        """The JSON-ready form the spool stores, with its layout's version (``v``)."""
        return {
            "v": SPEC_VERSION,
            "url": self.url,
            "project_id": self.project_id,
            "project_title": self.project_title,
            "label_config": self.label_config,
            "mode": self.mode,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Destination:
        """A destination from a stored spec of any layout this version knows; keys added by
        later versions are ignored. Raises ``ValueError`` for a spec it cannot read."""
        version = spec.get("v", 0)  # spools from before the version existed: layout 1 unmarked
        if not isinstance(version, int) or version > SPEC_VERSION:
            raise ValueError(
                f"a spooled destination has layout {version!r}, written by a newer lstrace "
                f"(this one reads layouts up to {SPEC_VERSION})"
            )
        # A renamed field is read here under its old name, for the versions that used it.
        try:
            return cls(
                spec["url"],
                spec["project_id"],
                spec["project_title"],
                spec["label_config"],
                spec["mode"],
            )
        except KeyError as missing:
            raise ValueError(f"a spooled destination lacks {missing}") from None


@dataclass(frozen=True)
class Options:
    """A scope's resolved options: every option of the table but the project's, which
    make up ``destination``."""

    destination: Destination  # its url has the credentials redacted: it is stored
    url: str = field(repr=False)  # as given, credentials and all: memory only, like the key
    api_key: str | None = field(repr=False)  # None: calls wait in the spool for one
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


def resolve(args: ScopeArgs, outer: Options | None, *, now: _dt.datetime | None = None) -> Options:
    """Resolve a scope's options at entry; raises :class:`ConfigError` naming the fix."""
    inherited: dict[str, Any] = {}
    for name, spec in OPTIONS.items():
        if spec.inherit != "inherit":
            continue
        value = args.get(name)
        if value is None and outer is not None:
            value = getattr(outer, name)
        if value is None:
            value = env_default(name)
        if value is not None:
            inherited[name] = value
    url = inherited.pop("url", DEFAULT_URL)
    # No key is not a mistake in the code: the calls are captured and wait for one (the
    # sender says so, once). An empty key counts as none.
    api_key = inherited.pop("api_key", None) or None
    shown = redact_url(url)
    if args.names_project or outer is None:
        destination = _destination(args, shown, now or _dt.datetime.now())
    else:
        old = outer.destination
        destination = Destination(
            shown, old.project_id, old.project_title, old.label_config, old.mode
        )
    return Options(
        destination,
        url,
        api_key,
        tags=tuple(dict.fromkeys((*(outer.tags if outer else ()), *(args.get("tags") or ())))),
        metadata={**(outer.metadata if outer else {}), **(args.get("metadata") or {})},
        enabled=_flag(os.environ.get("LSTRACE_ENABLED", "true"), "LSTRACE_ENABLED"),
        **inherited,
    )


def _destination(args: ScopeArgs, url: str, now: _dt.datetime) -> Destination:
    mode: Mode = args.get("mode") or "prompt"
    project_id: int | None = args.get("project_id")
    config: str | None = args.get("project_config")
    if project_id is None and args.get("project_name") is None:
        project_id = env_default("project_id")
    if project_id is not None:
        return Destination(url, project_id, None, config or "", mode)
    title = now.strftime(args.get("project_name") or DEFAULT_PROJECT_NAME)
    if len(title) > 50:
        raise ConfigError(
            f"Label Studio project titles are at most 50 characters; {title!r} is longer."
        )
    return Destination(url, None, title, config or DEFAULT_CONFIGS[mode], mode)
