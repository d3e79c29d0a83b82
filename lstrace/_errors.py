"""The exceptions lstrace raises, and the delivery failures it classifies.

LstraceError                 base of everything lstrace raises at you
└── ConfigError (ValueError) a bad option, raised at scope entry, naming the fix

DeliveryFailure              internal: one failed request to Label Studio,
                             classified for the sender's retry policy (never
                             raised into user code)
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


class FailureKind(enum.Enum):
    """How the sender treats a failed request."""

    RETRY = "retry"  # 429, 5xx, timeouts, connection errors: back off and retry
    AUTH = "auth"  # 401/403: hold tasks until the key is fixed
    NOT_FOUND = "not_found"  # 404: project gone or wrong id
    REJECTED = "rejected"  # 400/413/422: the payload itself is refused
    CONFIG = "config"  # the project cannot take our tasks (no TextArea...)


class DeliveryFailure(Exception):
    """A request to Label Studio failed; carries what the retry policy needs.

    ``maybe_sent`` is true when the request may have reached the server
    (timeouts, dropped connections, 5xx), so a retry must first check which
    tasks already arrived.
    """

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(redact_url(message))  # an SDK's text may quote the URL with its password
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent

    @property
    def reason(self) -> str:
        """Short label used for the ``failed_by_reason`` counters."""
        if self.status is not None:
            return f"{self.kind.value}:{self.status}"
        return self.kind.value
