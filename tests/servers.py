"""The real Label Studio servers of a test session: one per backend, shared by every tier.

``scripts/labelstudio.py`` starts them on 127.0.0.1, each at most once per pytest session
and only when a test asks for it (the session fixtures are in ``tests/conftest.py``):

- ``sqlite``: Django's development server on SQLite (``label-studio start``), what a
  developer runs; the live, examples, auth, export and browser tests share it;
- ``postgres``: the production layout, PostgreSQL behind several gunicorn workers; the
  backend-dependent live tests (delivery, exactly-once, project resolution, export) run on
  both (``live_server`` is parametrized over :func:`selected_backends`).

Environment:

- ``LSTRACE_LIVE_BACKENDS``: which backends ``live_server`` runs on (default
  ``sqlite,postgres``);
- ``LSTRACE_LIVE_PORT`` (default 18100): the SQLite server; fault proxies use the next 18
  ports and the one after them is the dead port;
- ``LSTRACE_LIVE_PG_PORT`` (default live port + 20) and ``LSTRACE_PG_PORT`` (default live
  port + 332): the PostgreSQL-backed server and its database; ``LSTRACE_LIVE_WORKERS``
  (default 4) its gunicorn workers;
- ``LSTRACE_LIVE_START_TIMEOUT`` (default 1200 s): how long a server may take to start;
- ``LSTRACE_LIVE_DATA_DIR`` / ``LSTRACE_LIVE_PG_DATA_DIR``: reuse that data dir, and a
  server already running from it, and leave it running (quicker runs while developing);
- ``LSTRACE_LABEL_STUDIO_VENV``: a venv with label-studio already installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.labelstudio_script import TOKEN, load_script

BACKENDS = ("sqlite", "postgres")
LIVE_PORT = int(os.environ.get("LSTRACE_LIVE_PORT", "18100"))
PG_APP_PORT = int(os.environ.get("LSTRACE_LIVE_PG_PORT", str(LIVE_PORT + 20)))
PG_PORT = int(os.environ.get("LSTRACE_PG_PORT", str(LIVE_PORT + 332)))
PG_WORKERS = int(os.environ.get("LSTRACE_LIVE_WORKERS", "4"))
# A first start migrates a new database: about a minute on 2 quiet cores, several under load.
START_TIMEOUT = float(os.environ.get("LSTRACE_LIVE_START_TIMEOUT", "1200"))


def selected_backends() -> list[str]:
    """The backends ``LSTRACE_LIVE_BACKENDS`` names (default both), checked."""
    names = [
        b.strip() for b in os.environ.get("LSTRACE_LIVE_BACKENDS", ",".join(BACKENDS)).split(",")
    ]
    unknown = [b for b in names if b not in BACKENDS]
    if unknown or not names:
        raise pytest.UsageError(
            f"LSTRACE_LIVE_BACKENDS: unknown backend(s) {unknown}; use {BACKENDS}"
        )
    return names


class Server:
    """A Label Studio of this session: its URL and login, stop/start, and what arrived."""

    def __init__(self, backend: str, data_dir: Path, port: int, token: str = TOKEN) -> None:
        self.script = load_script()
        self.backend = backend
        self.data_dir = data_dir
        self.port = port
        self.token = token
        self.url: str = self.script.base_url(port)
        self.username: str = self.script.DEFAULT_USERNAME
        self.password: str = self.script.DEFAULT_PASSWORD
        self._sdk: Any = None

    def __repr__(self) -> str:
        return f"<Label Studio on {self.backend} at {self.url}>"

    def start(self) -> None:
        """Start it (or find it running); for postgres, its database too."""
        if self.backend == "sqlite":
            self.script.start(self.port, self.data_dir, self.token, timeout=START_TIMEOUT)
        else:
            self.script.start(
                self.port, self.data_dir, self.token, timeout=START_TIMEOUT,
                backend="postgres", workers=PG_WORKERS, pg_port=PG_PORT,
            )  # fmt: skip

    def stop(self, database: bool = True) -> None:
        """Stop Label Studio; ``database=False`` leaves PostgreSQL running (an app outage)."""
        self.script.stop(self.data_dir, database=database)

    @property
    def sdk(self) -> Any:
        """label-studio-sdk's client, to read back what arrived (tests only)."""
        if self._sdk is None:
            from label_studio_sdk import LabelStudio  # noqa: PLC0415 - slow; read-back only

            self._sdk = LabelStudio(base_url=self.url, api_key=self.token, timeout=300)  # type: ignore[no-untyped-call]
        return self._sdk

    def find_project(self, title: str) -> int | None:
        """The id of the one project titled exactly ``title`` (None if there is none)."""
        ids = [int(p.id) for p in self.sdk.projects.list(title=title) if p.title == title]
        assert len(ids) <= 1, f"{len(ids)} projects titled {title!r}"
        return ids[0] if ids else None

    def project_id(self, title: str) -> int:
        """The id of the one project titled exactly ``title``."""
        found = self.find_project(title)
        assert found is not None, f"no project titled {title!r}"
        return found

    def tasks(self, title: str, include: str = "id,data") -> list[Any]:
        """Every task of the project titled ``title`` ([] if the project does not exist)."""
        project = self.find_project(title)
        if project is None:
            return []
        return list(self.sdk.tasks.list(project=project, page_size=1000, include=include))

    def task_count(self, title: str) -> int:
        """How many tasks the project titled ``title`` has (0 if it does not exist)."""
        project = self.find_project(title)
        return 0 if project is None else int(self.sdk.projects.get(id=project).task_number or 0)

    def run_ids(self, title: str) -> Counter[str]:
        """How many tasks of the project carry each ``data.run_id``."""
        return Counter(str(t.data.get("run_id")) for t in self.tasks(title))

    def task_ids(self, project_id: int) -> list[int]:
        """The ids of the project's tasks, oldest first."""
        return sorted(int(t.id) for t in self.sdk.tasks.list(project=project_id, include="id"))

    def annotations(self, task_id: int) -> list[Any]:
        """The submitted annotations of a task."""
        return list(self.sdk.annotations.list(id=task_id))


def session_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Start the session's server of ``backend``; stop it (and remove its data) at the end."""
    reuse = os.environ.get(
        "LSTRACE_LIVE_DATA_DIR" if backend == "sqlite" else "LSTRACE_LIVE_PG_DATA_DIR"
    )
    if reuse:
        data_dir = Path(reuse)
    elif backend == "sqlite":
        data_dir = tmp_path_factory.mktemp("labelstudio")
    else:
        # pytest's temp root is private to this user; as root, PostgreSQL runs as the postgres
        # user, which must reach its cluster: a directory of its own, searchable by others
        data_dir = Path(tempfile.mkdtemp(prefix="lstrace-live-pg-"))
        data_dir.chmod(0o711)
    server = Server(backend, data_dir, LIVE_PORT if backend == "sqlite" else PG_APP_PORT)
    try:
        server.start()
        yield server
    finally:
        if not reuse:
            server.stop()
            if backend == "postgres":
                shutil.rmtree(data_dir, ignore_errors=True)
