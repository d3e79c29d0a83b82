"""A drop-in for langchain-community's ``LabelStudioCallbackHandler``.

Same constructor arguments and behaviour as
``langchain_community.callbacks.labelstudio_callback.LabelStudioCallbackHandler``
(a package LangChain no longer maintains), but delivery is lstrace's:
batched in the background, spooled, retried. Pass it in ``callbacks=[...]``
as before; an explicit handler takes precedence over any lstrace scope, so a
call still becomes exactly one task.
"""

from __future__ import annotations

import enum

from typing_extensions import Unpack

from lstrace._capture.handler import ScopeHandler
from lstrace._capture.scope import Scope
from lstrace._delivery import worker as _worker
from lstrace._delivery.projects import check_at_entry
from lstrace._errors import ConfigError
from lstrace._labelconfig import DEFAULT_CONFIGS
from lstrace._options import DEFAULT_PROJECT_NAME, CaptureOptions, make_args, resolve

EXPLICIT_DEPTH = 1_000_000  # outranks every scope


class LabelStudioMode(enum.Enum):
    """The two built-in label configs."""

    PROMPT = "prompt"
    CHAT = "chat"


def get_default_label_configs(mode: str | LabelStudioMode) -> tuple[str, LabelStudioMode]:
    """The default label config for ``mode``, and the mode as an enum member."""
    try:
        member = LabelStudioMode(getattr(mode, "value", mode))
    except ValueError:
        raise ConfigError(f"Mode {mode} is not supported: use 'prompt' or 'chat'.") from None
    return DEFAULT_CONFIGS[member.value], member


class LabelStudioCallbackHandler(ScopeHandler):
    """Label Studio callback handler, compatible with langchain-community's.

    Args:
        api_key: Label Studio API key; overrides ``LABEL_STUDIO_API_KEY``.
        url: Label Studio URL; overrides ``LABEL_STUDIO_URL`` (default ``http://localhost:8080``).
        project_id: an existing project's id; overrides ``LABEL_STUDIO_PROJECT_ID``.
        project_name: the project's title if no id is given (strftime pattern,
            default ``"LangChain-%Y-%m-%d"``); created if missing.
        project_config: a custom labeling config, used when the project is created.
        mode: ``"prompt"`` (default) or ``"chat"``, or a :class:`LabelStudioMode`.
        **options: lstrace's capture options (tags, metadata, mask, sample_rate, filter,
            before_send, capture_errors, max_field_chars), as on every entry point.

    Raises:
        ValueError: for a bad option (a :class:`lstrace.ConfigError`), or, with both
            ``project_id`` and ``project_config``, a project lacking the config's tags.
            Unlike the original, a missing API key does not raise: the calls are captured
            and wait in the spool until a key is given (one ERROR says so).
    """

    def __init__(
        self,
        api_key: str | None = None,
        url: str | None = None,
        project_id: int | None = None,
        project_name: str = DEFAULT_PROJECT_NAME,
        project_config: str | None = None,
        mode: str | LabelStudioMode = LabelStudioMode.PROMPT,
        **options: Unpack[CaptureOptions],
    ) -> None:
        _, member = get_default_label_configs(mode)
        args = make_args(
            api_key=api_key,
            url=url,
            project_id=project_id,
            # the original lets LABEL_STUDIO_PROJECT_ID win over the default name
            project_name=None if project_name == DEFAULT_PROJECT_NAME else project_name,
            project_config=project_config,
            mode=member.value,
            **options,
        )
        resolved = resolve(args, None)
        check_at_entry(resolved)  # like the original, which checked the project here
        scope = Scope(resolved, EXPLICIT_DEPTH)
        scope.handler = self
        super().__init__(scope)
        _worker.prepare(scope.options)
        destination = scope.options.destination
        self.mode = member
        self.project_id = destination.project_id
        self.project_name = destination.project_title or project_name
        self.project_config = destination.label_config
