"""Why an export, or another ``lstrace`` command, could not do its job.

ExportError (LstraceError)     base; ``exit_code`` is what the ``lstrace`` command returns
├── NothingToExport            1: the project has no annotation left after the filters
├── BadRequest                 2: unknown project, unusable label config, bad option value
├── ServerUnreachable          3: no connection, timeout, or a server error (5xx)
└── AuthFailed                 4: no API key, or Label Studio refused it

Every message is one line that says what to fix; none contains the API key.
"""

from __future__ import annotations

from lstrace._errors import LstraceError


class ExportError(LstraceError):
    """An ``lstrace`` command failed; the message is one line naming the fix."""

    exit_code = 1


class NothingToExport(ExportError):
    """The project has no annotation that passes the filters."""

    exit_code = 1


class BadRequest(ExportError):
    """The command names a project or option Label Studio cannot serve."""

    exit_code = 2


class ServerUnreachable(ExportError):
    """Label Studio cannot be reached, timed out, or answered with a server error."""

    exit_code = 3


class AuthFailed(ExportError):
    """No API key was given, or Label Studio refused it."""

    exit_code = 4
