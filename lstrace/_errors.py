"""The exceptions lstrace raises, and the delivery failures it classifies.

LstraceError                   base of everything lstrace raises at you
├── ConfigError (ValueError)   a bad option, raised at scope entry, naming the fix
└── ExportError                an ``lstrace`` command or ``export_project`` could not do its
    │                          job; ``exit_code`` is what the command returns
    ├── NothingToExport        1: the project has no annotation left after the filters
    ├── TasksWaiting           1: ``lstrace sync`` ended with tasks still in the spool
    ├── BadRequest             2: unknown project, unusable label config, bad option value
    ├── ServerUnreachable      3: no connection, timeout, or a server error (5xx)
    └── AuthFailed             4: no API key, or Label Studio refused it

DeliveryFailure (Exception)    internal: one failed request to Label Studio, classified
                               by the client for the sender's retry policy (never raised
                               into user code; the export turns it into an ExportError)
SnapshotRefused (Exception)    internal: the server would not make or serve an export
                               snapshot; the export reads page by page instead
SpoolFull (Exception)          internal: a row neither the spool file nor its memory bound
                               could take; counted as failed (``spool_full``)

Every message is one line that says what to fix; none contains the API key. The exit
codes of the ``lstrace`` command are :data:`EXIT_CODES`, derived from this tree.
"""

from __future__ import annotations

import enum

from lstrace._secrets import redact_url


class LstraceError(Exception):
    """Base class of the exceptions lstrace raises into your code. Credentials inside a URL
    in the message are redacted (see :mod:`lstrace._secrets`)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_url(a) if isinstance(a, str) else a for a in args))


class ConfigError(LstraceError, ValueError):
    """An option is wrong. Raised at scope entry; the message says what to fix."""


class ExportError(LstraceError):
    """An ``lstrace`` command failed; the message is one line naming the fix."""

    exit_code = 1
    meaning = "failed"  # what the exit code means, for ``lstrace --help``


class NothingToExport(ExportError):
    """The project has no annotation that passes the filters."""

    exit_code = 1
    meaning = "nothing to export"


class TasksWaiting(ExportError):
    """``lstrace sync`` could not deliver every task in the time it had."""

    exit_code = 1
    meaning = "tasks still waiting"


class BadRequest(ExportError):
    """The command names a project or option Label Studio cannot serve."""

    exit_code = 2
    meaning = "usage or unknown project"


class ServerUnreachable(ExportError):
    """Label Studio cannot be reached, timed out, or answered with a server error."""

    exit_code = 3
    meaning = "Label Studio unreachable"


class AuthFailed(ExportError):
    """No API key was given, or Label Studio refused it."""

    exit_code = 4
    meaning = "API key missing or refused"


EXIT_OK = 0
EXIT_INTERNAL = 70  # a bug: the command says so and how to get the traceback
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader left


def _exit_codes() -> dict[int, str]:
    meanings: dict[int, list[str]] = {EXIT_OK: ["done"]}
    for cls in ExportError.__subclasses__():
        meanings.setdefault(cls.exit_code, []).append(cls.meaning)
    meanings[EXIT_INTERNAL] = ["internal error"]
    meanings[EXIT_INTERRUPTED] = ["interrupted"]
    meanings[EXIT_PIPE] = ["output closed early"]
    return {code: " / ".join(words) for code, words in meanings.items()}


EXIT_CODES: dict[int, str] = _exit_codes()  # what the ``lstrace`` command's exit codes mean


class FailureKind(enum.Enum):
    """How the sender treats a failed request."""

    RETRY = "retry"  # 429, 5xx, timeouts, connection errors: back off and retry
    AUTH = "auth"  # no key, 401/403: hold tasks until the key is fixed
    NOT_FOUND = "not_found"  # 404: project gone or wrong id
    REJECTED = "rejected"  # 400/413/422: the payload itself is refused
    CONFIG = "config"  # the project cannot take our tasks (no TextArea...)


class DeliveryFailure(Exception):
    """A request to Label Studio failed; carries what the retry policy needs.

    ``maybe_sent`` is true when the request may have reached the server
    (timeouts, dropped connections, 5xx), so a retry must first check which
    tasks already arrived. ``status`` is the HTTP status (None: no answer);
    ``what``, ``url`` and ``detail`` (what the server said) let the export word
    its own message.
    """

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_sent: bool = False,
        what: str = "",
        url: str = "",
        detail: str = "",
    ) -> None:
        super().__init__(redact_url(message))  # an SDK's text may quote the URL with its password
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent
        self.what = what
        self.url = url
        self.detail = detail

    @property
    def reason(self) -> str:
        """Short label used for the ``failed_by_reason`` counters."""
        if self.status is not None:
            return f"{self.kind.value}:{self.status}"
        return self.kind.value


class SnapshotRefused(Exception):
    """The server answered, but would not make or serve a snapshot (an old or restricted
    server, a key that may read tasks but not export): the read goes page by page."""


class SpoolFull(Exception):
    """A row neither the spool file nor the memory bound could take."""
