"""Keeping secrets out of what lstrace stores, logs and shows.

API keys never leave memory. A server URL may carry credentials too
(``http://user:password@host``, ``https://token@host``): lstrace stores, logs and
prints it through :func:`redact_url`, and only the client building a request is
given the URL as the user wrote it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

REDACTED = "***"

# scheme://<userinfo>@ : the userinfo runs to the last "@" before the path (a raw "@" in a
# password is common), and never crosses "/", "?", "#" or whitespace.
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")


def redact_url(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``.

    ``http://user:pw@host:8080/x`` becomes ``http://***@host:8080/x``; text without
    credentials comes back unchanged.
    """
    if "@" not in text:
        return text  # the common case, and cheap
    return _USERINFO.sub(rf"\g<1>{REDACTED}@", text)


def has_redacted_credentials(url: str) -> bool:
    """True when ``url`` is a redacted form whose credentials were removed."""
    return f"://{REDACTED}@" in url


@dataclass(frozen=True)
class Access:
    """How to reach one server: the URL as the user gave it (credentials and all) and the
    API key. Held in memory only: never spooled, logged or shown (``repr`` hides both)."""

    url: str = field(repr=False)
    api_key: str | None = field(repr=False)
