"""The Label Studio server of the browser tier: the session's SQLite server (tests/servers.py)."""

from __future__ import annotations

from tests.servers import Server

__all__ = ["Server"]
