#!/usr/bin/env python3
"""Manage a local, headless Label Studio server for the demo, cassette recording and live tests.

Standard library only. Usage::

    python3 scripts/labelstudio.py install [--venv DIR]
    python3 scripts/labelstudio.py start [--port P] [--data-dir D] [--token T]
                                         [--username U --password W] [--venv DIR]
                                         [--backend sqlite|postgres] [--workers N] [--pg-port Q]
    python3 scripts/labelstudio.py stop [--data-dir D] [--backend sqlite|postgres]
    python3 scripts/labelstudio.py status [--port P]
    python3 scripts/labelstudio.py pat [--port P] [--username U --password W] [--data-dir D]

Two backends:

- ``sqlite`` (default): ``label-studio start``, Django's development server (one process) on
  ``D/label_studio.sqlite3``;
- ``postgres``: the production layout. A private PostgreSQL cluster of Debian's ``postgresql``
  package in ``D/postgres`` (127.0.0.1:Q only, no Unix socket; ``initdb``/``pg_ctl`` run as
  the ``postgres`` user when this script runs as root), migrated once, and the app served by
  gunicorn with N sync workers over ``core.wsgi:application`` (``install`` puts gunicorn in
  Label Studio's venv). ``stop`` stops both; the backend is remembered in ``D/backend.json``.

Every server binds to 127.0.0.1 only. Its log goes to ``D/server.log`` and its pid to
``D/server.pid`` (PostgreSQL's log: ``D/postgres/postgres.log``). The same functions are
importable (load this file by path with importlib): :func:`install`, :func:`start`,
:func:`stop`, :func:`wait_healthy`, :func:`is_healthy`, :func:`create_pat`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

LABEL_STUDIO_VERSION = "1.23.2"
GUNICORN_VERSION = "23.0.0"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENV = REPO_ROOT / ".venv-labelstudio"
DEFAULT_DATA_DIR = REPO_ROOT / ".labelstudio-data"
DEFAULT_PG_DATA_DIR = REPO_ROOT / ".labelstudio-pg"
DEFAULT_PORT = 8080
DEFAULT_PG_PORT = 18432
DEFAULT_WORKERS = 4
BACKENDS = ("sqlite", "postgres")
#: Where Debian's postgresql package puts its server binaries (``$LSTRACE_PG_BIN`` overrides).
PG_BIN_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)
PG_OS_USER = "postgres"  # initdb refuses root: the cluster runs as this user when we are root
PG_DATABASE = "labelstudio"
BACKEND_FILE = "backend.json"
#: Legacy API token of the demo user (40 hex characters, the maximum Label Studio accepts).
DEFAULT_TOKEN = "0123456789abcdef0123456789abcdef01234567"
DEFAULT_USERNAME = "demo@lstrace.local"
DEFAULT_PASSWORD = "lstrace-demo"
DEFAULT_START_TIMEOUT = 240.0
#: Environment variable that overrides the default venv (e.g. a shared, pre-installed one).
VENV_ENV_VAR = "LSTRACE_LABEL_STUDIO_VENV"
PID_FILE = "server.pid"
LOG_FILE = "server.log"
PAT_FILE = "pat.txt"

# Label Studio phones home by default (error reports, analytics, a PyPI version check at start).
SERVER_ENV = {
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "COLLECT_ANALYTICS": "false",
    "LATEST_VERSION_CHECK": "false",
}


class LabelStudioError(RuntimeError):
    """Raised when the server cannot be installed, started, stopped or queried."""


def base_url(port: int) -> str:
    """Return the loopback base URL of a server on ``port``."""
    return f"http://127.0.0.1:{port}"


def default_venv() -> Path:
    """Return the venv to use: ``$LSTRACE_LABEL_STUDIO_VENV`` or ``.venv-labelstudio``."""
    env = os.environ.get(VENV_ENV_VAR)
    return Path(env) if env else DEFAULT_VENV


def _has_dist(venv: Path, name: str, version: str) -> bool:
    """Return True if ``venv`` has ``name==version`` installed (checked without running Python)."""
    return any(venv.glob(f"lib/python*/site-packages/{name}-{version}.dist-info"))


def _installed(venv: Path) -> bool:
    """Return True if ``venv`` has the pinned label-studio and gunicorn."""
    return (
        (venv / "bin" / "label-studio").exists()
        and _has_dist(venv, "label_studio", LABEL_STUDIO_VERSION)
        and _has_dist(venv, "gunicorn", GUNICORN_VERSION)
    )


def install(venv: Path | None = None, quiet: bool = False) -> Path:
    """Create ``venv`` and pip-install the pinned label-studio and gunicorn, unless there.

    Returns the path of the ``label-studio`` executable. Prints one line unless ``quiet``.
    """
    venv = Path(venv) if venv else default_venv()
    exe = venv / "bin" / "label-studio"
    if _installed(venv):
        if not quiet:
            print(f"label-studio {LABEL_STUDIO_VERSION} already installed in {venv}")
        return exe
    t0 = time.monotonic()
    venv.mkdir(parents=True, exist_ok=True)
    log = venv / "install.log"  # kept on failure, inside the (gitignored) venv
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [
            *pip,
            "--disable-pip-version-check",
            f"label-studio=={LABEL_STUDIO_VERSION}",
            f"gunicorn=={GUNICORN_VERSION}",  # the postgres backend's WSGI server
        ],
    ]
    if (venv / "bin" / "python").exists():
        steps = steps[1:]  # an existing venv (e.g. label-studio there, gunicorn missing)
    with log.open("w") as out:
        for cmd in steps:
            done = subprocess.run(cmd, check=False, stdout=out, stderr=subprocess.STDOUT)
            if done.returncode != 0:
                raise LabelStudioError(f"'{' '.join(cmd)}' failed:\n{_tail(log)}")
    log.unlink(missing_ok=True)
    if not quiet:
        took = time.monotonic() - t0
        print(f"installed label-studio {LABEL_STUDIO_VERSION} in {venv} ({took:.0f} s)")
    return exe


def _tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a text file, or a note if it is missing."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """Return True if ``GET {url}/health`` answers ``{"status": "UP"}``."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as resp:
            return bool(json.loads(resp.read()).get("status") == "UP")
    except (OSError, ValueError, AttributeError):
        return False


def wait_healthy(
    url: str,
    timeout: float = DEFAULT_START_TIMEOUT,
    proc: subprocess.Popen[bytes] | None = None,
    progress: bool = False,
) -> float:
    """Block until the server at ``url`` is healthy; return the seconds waited.

    Raises :class:`TimeoutError` after ``timeout`` seconds, or :class:`LabelStudioError` at
    once if ``proc`` (the server process, when known) exits first.
    """
    t0 = time.monotonic()
    while True:
        if is_healthy(url):
            return time.monotonic() - t0
        if proc is not None and proc.poll() is not None:
            raise LabelStudioError(f"server exited with code {proc.returncode} before healthy")
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{url} not healthy after {timeout:.0f} s")
        if progress:
            print(".", end="", flush=True)
        time.sleep(1.0)


def _read_pid(data_dir: Path) -> int | None:
    """Return the pid from ``data_dir/server.pid`` if that process is alive, else None."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _port_in_use(port: int) -> bool:
    """Return True if something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(
    port: int = DEFAULT_PORT,
    data_dir: Path | str = DEFAULT_DATA_DIR,
    token: str = DEFAULT_TOKEN,
    *,
    username: str = DEFAULT_USERNAME,
    password: str = DEFAULT_PASSWORD,
    venv: Path | str | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
    progress: bool = False,
    backend: str = "sqlite",
    workers: int = DEFAULT_WORKERS,
    pg_port: int = DEFAULT_PG_PORT,
) -> str:
    """Start Label Studio in the background and block until it is healthy; return its URL.

    The server runs in its own process group with its output in ``data_dir/server.log`` and
    its pid in ``data_dir/server.pid``. If a server started from ``data_dir`` is already
    healthy on ``port``, it is reused. The user, token and legacy-token setting only take
    effect on the first start of a data dir. Installs label-studio into ``venv`` if missing.

    ``backend="postgres"`` also creates (first time) and starts the data dir's PostgreSQL
    cluster on 127.0.0.1:``pg_port``, migrates it once, and serves the app with ``workers``
    gunicorn workers. A data dir keeps the backend it was first started with: asking for
    the other one raises :class:`LabelStudioError`, as do a busy port and missing binaries.
    """
    if backend not in BACKENDS:
        raise LabelStudioError(f"unknown backend {backend!r}: choose one of {BACKENDS}")
    data_dir = Path(data_dir).resolve()
    url = base_url(port)
    _check_backend(data_dir, backend)
    pid = _read_pid(data_dir)
    if pid is not None:
        if is_healthy(url):
            return url
        raise LabelStudioError(
            f"a server from {data_dir} (pid {pid}) runs but {url} is not healthy: stop it first"
        )
    if _port_in_use(port):
        raise LabelStudioError(f"port {port} is already in use by another process")
    if len(token) > 40:
        raise LabelStudioError("Label Studio accepts legacy tokens of at most 40 characters")
    if workers < 1:
        raise LabelStudioError(f"workers must be at least 1, not {workers}")
    exe = install(Path(venv) if venv else None, quiet=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    user = (username, password, token)
    if backend == "sqlite":
        _write_backend(data_dir, {"backend": "sqlite"})
        cmd, env = _dev_server(exe, port, data_dir, user), {**os.environ, **SERVER_ENV}
    else:
        env = _postgres_env(data_dir, pg_port)
        _start_postgres(data_dir, pg_port)
        try:
            _init_postgres_app(exe, data_dir, env, user, pg_port)
            cmd = _gunicorn(exe, port, workers)
        except BaseException:  # an interrupted or failed first start leaves nothing running
            _stop_postgres(data_dir / "postgres")
            raise
    log_path = data_dir / LOG_FILE
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    (data_dir / PID_FILE).write_text(f"{proc.pid}\n")
    try:
        wait_healthy(url, timeout, proc=proc, progress=progress)
    except (TimeoutError, LabelStudioError) as exc:
        stop(data_dir)
        raise LabelStudioError(f"{exc}; last lines of {log_path}:\n{_tail(log_path)}") from exc
    return url


def _dev_server(exe: Path, port: int, data_dir: Path, user: tuple[str, str, str]) -> list[str]:
    """The ``label-studio start`` command line: Django's development server on SQLite."""
    username, password, token = user
    return [
        str(exe),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "-p",
        str(port),
        "--data-dir",
        str(data_dir),
        "--username",
        username,
        "--password",
        password,
        "--user-token",
        token,
        "--enable-legacy-api-token",
    ]


def stop(
    data_dir: Path | str = DEFAULT_DATA_DIR, timeout: float = 30.0, *, database: bool = True
) -> bool:
    """Stop the server started from ``data_dir``: SIGTERM its process group, then SIGKILL.

    For the postgres backend, also stops the data dir's PostgreSQL cluster unless
    ``database`` is False (Label Studio down, its database still up). Returns True if
    something was running. Removes the pid file.
    """
    data_dir = Path(data_dir).resolve()
    stopped = _stop_app(data_dir, timeout)
    if database and _backend_of(data_dir) == "postgres":
        stopped = _stop_postgres(data_dir / "postgres") or stopped
    return stopped


def _stop_app(data_dir: Path, timeout: float) -> bool:
    """SIGTERM the app's process group, then SIGKILL; True if it was running."""
    pid = _read_pid(data_dir)
    (data_dir / PID_FILE).unlink(missing_ok=True)
    if pid is None:
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return True
            _reap(pid)
            time.sleep(0.2)
    raise LabelStudioError(f"process group {pid} did not exit")


# -- the postgres backend: a private cluster, migrated once, gunicorn workers ----------------


def _backend_of(data_dir: Path) -> str | None:
    """The backend ``data_dir`` was first started with (None for a new data dir)."""
    try:
        return str(json.loads((data_dir / BACKEND_FILE).read_text())["backend"])
    except (OSError, ValueError, KeyError):
        # data dirs from before backend.json: a SQLite file says what they are
        return "sqlite" if (data_dir / "label_studio.sqlite3").exists() else None


def _check_backend(data_dir: Path, backend: str) -> None:
    """Refuse to start ``data_dir`` with another backend than the one it holds."""
    held = _backend_of(data_dir)
    if held is not None and held != backend:
        raise LabelStudioError(
            f"{data_dir} holds a {held} Label Studio: start it with --backend {held}, "
            f"or choose another --data-dir for {backend}"
        )


def _write_backend(data_dir: Path, state: dict[str, Any]) -> None:
    (data_dir / BACKEND_FILE).write_text(json.dumps(state) + "\n")


def _pg_bin(name: str) -> str:
    """The path of PostgreSQL's ``name`` binary (``$LSTRACE_PG_BIN``, else Debian's dirs)."""
    override = os.environ.get("LSTRACE_PG_BIN")
    for directory in [override] if override else PG_BIN_DIRS:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    where = override or ", ".join(PG_BIN_DIRS)
    raise LabelStudioError(
        f"PostgreSQL's {name} is not in {where}: apt-get install postgresql "
        "(or set LSTRACE_PG_BIN to the directory holding initdb and pg_ctl)"
    )


def _as_pg_user(cmd: list[str]) -> list[str]:
    """``cmd`` run as the cluster's owner: the postgres user when we are root (initdb refuses
    root), else ourselves."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser") is None:
        raise LabelStudioError("running as root needs runuser (util-linux) to run PostgreSQL")
    return ["runuser", "-u", PG_OS_USER, "--", *cmd]


def _run(cmd: list[str], what: str, cwd: Path | None = None, timeout: float = 300.0) -> str:
    """Run ``cmd``; return its stdout, or raise :class:`LabelStudioError` with its output."""
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabelStudioError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-2000:]
        raise LabelStudioError(f"{what} failed (exit {done.returncode}):\n{output}")
    return done.stdout


def _ensure_cluster(pgdata: Path) -> None:
    """``initdb`` a cluster in ``pgdata`` unless one is there (trust auth, loopback only)."""
    if (pgdata / "PG_VERSION").exists():
        return
    initdb = _pg_bin("initdb")
    pgdata.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        import pwd

        try:
            owner = pwd.getpwnam(PG_OS_USER)
        except KeyError:
            raise LabelStudioError(
                f"no {PG_OS_USER!r} user to run PostgreSQL as: apt-get install postgresql"
            ) from None
        os.chown(pgdata, owner.pw_uid, owner.pw_gid)
        probe = subprocess.run(_as_pg_user(["test", "-w", str(pgdata)]), check=False)
        if probe.returncode != 0:
            shutil.rmtree(pgdata, ignore_errors=True)
            raise LabelStudioError(
                f"the {PG_OS_USER} user cannot reach {pgdata}: a parent directory is not "
                "searchable by others; choose a --data-dir it can reach (e.g. under /tmp "
                "or this repository)"
            )
    _run(
        _as_pg_user(
            [initdb, "-D", str(pgdata), "--auth=trust", "--username=postgres",
             "--encoding=UTF8", "--locale=C"]
        ),
        f"initdb {pgdata}",
        cwd=pgdata,
    )  # fmt: skip


def _pg_running(pgdata: Path) -> bool:
    """True if the cluster in ``pgdata`` has a live postmaster (``pg_ctl status``)."""
    if not (pgdata / "postmaster.pid").exists():
        return False
    cmd = _as_pg_user([_pg_bin("pg_ctl"), "status", "-D", str(pgdata)])
    return subprocess.run(cmd, capture_output=True, cwd=pgdata, check=False).returncode == 0


def _pg_port_of(pgdata: Path) -> int | None:
    """The port a running cluster listens on (line 4 of ``postmaster.pid``)."""
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, ValueError, IndexError):
        return None


def _start_postgres(data_dir: Path, pg_port: int) -> None:
    """Create (first time) and start the data dir's cluster on 127.0.0.1:``pg_port``, with the
    database Label Studio uses; a cluster already running on that port is reused."""
    pgdata = data_dir / "postgres"
    _ensure_cluster(pgdata)
    if _pg_running(pgdata):
        running_on = _pg_port_of(pgdata)
        if running_on != pg_port:
            raise LabelStudioError(
                f"the PostgreSQL cluster of {data_dir} runs on port {running_on}, not "
                f"{pg_port}: stop it first (scripts/labelstudio.py stop --data-dir {data_dir})"
            )
    else:
        if _port_in_use(pg_port):
            raise LabelStudioError(f"port {pg_port} (for PostgreSQL) is already in use")
        # TCP on 127.0.0.1 only; no Unix socket (its path would be too long or not writable)
        options = f"-p {pg_port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        log = pgdata / "postgres.log"
        cmd = [_pg_bin("pg_ctl"), "start", "-D", str(pgdata), "-l", str(log), "-w", "-t", "120"]
        try:
            _run(_as_pg_user([*cmd, "-o", options]), "starting PostgreSQL", cwd=pgdata)
        except LabelStudioError as exc:
            raise LabelStudioError(f"{exc}\nlast lines of {log}:\n{_tail(log)}") from None
    _ensure_database(pg_port)


def _psql(pg_port: int, sql: str) -> str:
    cmd = [_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres"]
    return _run([*cmd, "-d", "postgres", "-tAc", sql], f"psql {sql!r}").strip()


def _ensure_database(pg_port: int) -> None:
    """Create Label Studio's database in the cluster unless it exists."""
    if _psql(pg_port, f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'") != "1":
        _psql(pg_port, f"CREATE DATABASE {PG_DATABASE}")


def _stop_postgres(pgdata: Path) -> bool:
    """Stop the cluster in ``pgdata`` (fast shutdown); True if it was running."""
    if not _pg_running(pgdata):
        return False
    cmd = [_pg_bin("pg_ctl"), "stop", "-D", str(pgdata), "-m", "fast", "-w", "-t", "60"]
    _run(_as_pg_user(cmd), "stopping PostgreSQL", cwd=pgdata)
    return True


def _postgres_env(data_dir: Path, pg_port: int) -> dict[str, str]:
    """The environment of a Label Studio process on the data dir's cluster."""
    return {
        **os.environ,
        **SERVER_ENV,
        "DJANGO_SETTINGS_MODULE": "core.settings.label_studio",
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "DJANGO_DB": "default",
        "POSTGRE_HOST": "127.0.0.1",
        "POSTGRE_PORT": str(pg_port),
        "POSTGRE_NAME": PG_DATABASE,
        "POSTGRE_USER": "postgres",
        "POSTGRE_PASSWORD": "",  # trust authentication on loopback
    }


def _init_postgres_app(
    exe: Path, data_dir: Path, env: dict[str, str], user: tuple[str, str, str], pg_port: int
) -> None:
    """Migrate the database and create the user, token and organisation, once per data dir
    and Label Studio version (``label-studio init``; the organisation accepts legacy tokens)."""
    state = {"backend": "postgres", "pg_port": pg_port, "initialized": None}
    with contextlib.suppress(OSError, ValueError):
        state |= json.loads((data_dir / BACKEND_FILE).read_text())
    if state.get("initialized") == LABEL_STUDIO_VERSION:
        _write_backend(data_dir, {**state, "pg_port": pg_port})
        return
    username, password, token = user
    cmd = [str(exe), "init", "--quiet", "--data-dir", str(data_dir), "--username", username,
           "--password", password, "--user-token", token, "--enable-legacy-api-token"]  # fmt: skip
    log_path = data_dir / LOG_FILE
    with log_path.open("ab") as log:
        done = subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            check=False, timeout=1800,
        )  # fmt: skip
    if done.returncode != 0:
        raise LabelStudioError(
            f"label-studio init (migrations) failed; last lines of {log_path}:\n{_tail(log_path)}"
        )
    _write_backend(data_dir, {**state, "pg_port": pg_port, "initialized": LABEL_STUDIO_VERSION})


def _gunicorn(exe: Path, port: int, workers: int) -> list[str]:
    """gunicorn serving Label Studio's WSGI app with ``workers`` sync workers on loopback."""
    package = next(exe.parent.parent.glob("lib/python*/site-packages/label_studio"), None)
    if package is None:
        raise LabelStudioError(f"no label_studio package beside {exe}")
    return [
        str(exe.with_name("gunicorn")),
        "--chdir",
        str(package),  # Label Studio imports its apps as top-level modules (core, tasks...)
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "300",  # a bulk import of thousands of tasks, a synchronous export
        "--graceful-timeout",
        "10",
        "core.wsgi:application",
    ]


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our child (when start() ran in this process), so it can vanish."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def create_pat(
    url: str,
    username: str = DEFAULT_USERNAME,
    password: str = DEFAULT_PASSWORD,
    cache_file: Path | str | None = None,
    *,
    revoke_existing: bool = True,
) -> str:
    """Return a Personal Access Token (a JWT refresh token) for the user.

    Logs in through the HTML form (``GET`` then ``POST /user/login/`` with the CSRF cookie)
    and calls ``POST /api/token/`` with that session. The server keeps one live PAT per user,
    answers 409 to a second ``POST /api/token/`` and never shows a token again, so:

    - with ``cache_file``, the token is saved there and reused while the server still
      refreshes it (``POST /api/token/refresh/``);
    - otherwise, with ``revoke_existing`` (the default), the user's live PATs are revoked
      (``GET /api/token/`` lists them truncated, ``POST /api/token/blacklist/`` accepts that)
      and a new one is created; without it, a 409 raises :class:`LabelStudioError`.
    """
    url = url.rstrip("/")
    cache = Path(cache_file) if cache_file else None
    if cache is not None and cache.exists():
        cached = cache.read_text().strip()
        if cached and _pat_works(url, cached):
            return cached
    session = _login(url, username, password)
    try:
        token = str(session("POST", "/api/token/", {})["token"])
    except urllib.error.HTTPError as exc:
        if exc.code != 409 or not revoke_existing:
            detail = f"POST /api/token/ failed: {exc.code} {exc.read()[:300]!r}"
            raise LabelStudioError(detail) from exc
        for old in session("GET", "/api/token/", None):
            session("POST", "/api/token/blacklist/", {"refresh": old["token"]})
        token = str(session("POST", "/api/token/", {})["token"])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(token + "\n")
    return token


def _login(url: str, username: str, password: str) -> Callable[[str, str, object], Any]:
    """Log in through the HTML form; return ``call(method, path, json_body) -> json``."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login_url = f"{url}/user/login/"
    with opener.open(login_url, timeout=30):
        pass
    form = {"email": username, "password": password, "csrfmiddlewaretoken": _cookie(jar)}
    req = urllib.request.Request(
        login_url, data=urllib.parse.urlencode(form).encode(), headers={"Referer": login_url}
    )
    with opener.open(req, timeout=30) as resp:  # success redirects away from the login page
        if urllib.parse.urlsplit(resp.geturl()).path.rstrip("/") == "/user/login":
            raise LabelStudioError(f"login to {url} as {username} failed (wrong password?)")

    def call(method: str, path: str, body: object) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Referer": login_url}
        headers["X-CSRFToken"] = _cookie(jar)  # Django rotates it at login
        req = urllib.request.Request(url + path, data=data, headers=headers, method=method)
        with opener.open(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    return call


def _cookie(jar: http.cookiejar.CookieJar, name: str = "csrftoken") -> str:
    """Return the value of cookie ``name`` in ``jar`` ("" if unset)."""
    return next((c.value or "" for c in jar if c.name == name), "")


def _pat_works(url: str, token: str) -> bool:
    """Return True if ``POST /api/token/refresh/`` exchanges ``token`` for an access token."""
    req = urllib.request.Request(
        f"{url}/api/token/refresh/",
        data=json.dumps({"refresh": token}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return "access" in json.loads(resp.read())
    except (OSError, ValueError):
        return False


def _cli_install(args: argparse.Namespace) -> int:
    """Run the ``install`` subcommand."""
    install(args.venv)
    return 0


def _data_dir(args: argparse.Namespace) -> Path:
    """``--data-dir``, else the backend's default (``.labelstudio-data``, ``.labelstudio-pg``)."""
    if args.data_dir is not None:
        return Path(args.data_dir).resolve()
    return DEFAULT_PG_DATA_DIR if getattr(args, "backend", None) == "postgres" else DEFAULT_DATA_DIR


def _cli_start(args: argparse.Namespace) -> int:
    """Run the ``start`` subcommand."""
    url = base_url(args.port)
    data_dir = _data_dir(args)
    if _read_pid(data_dir) is not None and is_healthy(url):
        print(f"Label Studio already running at {url} (data dir {data_dir})")
        return 0
    venv = args.venv or default_venv()
    if not _installed(venv):
        install(venv)
    t0 = time.monotonic()
    how = "" if args.backend == "sqlite" else f", PostgreSQL on port {args.pg_port}"
    print(f"starting Label Studio at {url} (data dir {data_dir}{how}) ", end="", flush=True)
    try:
        start(
            args.port,
            data_dir,
            args.token,
            username=args.username,
            password=args.password,
            venv=venv,
            timeout=args.timeout,
            progress=True,
            backend=args.backend,
            workers=args.workers,
            pg_port=args.pg_port,
        )
    finally:
        print()
    served = (
        "Django's development server, SQLite"
        if args.backend == "sqlite"
        else f"{args.workers} gunicorn workers, PostgreSQL"
    )
    print(
        f"Label Studio is up at {url} after {time.monotonic() - t0:.0f} s ({served}; "
        f"user {args.username}, legacy token {args.token})"
    )
    return 0


def _cli_stop(args: argparse.Namespace) -> int:
    """Run the ``stop`` subcommand."""
    data_dir = _data_dir(args)
    if stop(data_dir):
        print(f"stopped Label Studio ({data_dir})")
    else:
        print(f"no Label Studio running from {data_dir}")
    return 0


def _cli_status(args: argparse.Namespace) -> int:
    """Run the ``status`` subcommand: exit 0 if healthy, 1 if not."""
    url = base_url(args.port)
    healthy = is_healthy(url)
    print(f"{url}: {'healthy' if healthy else 'not healthy'}")
    return 0 if healthy else 1


def _cli_pat(args: argparse.Namespace) -> int:
    """Run the ``pat`` subcommand: print only the token."""
    url = base_url(args.port)
    print(create_pat(url, args.username, args.password, _data_dir(args) / PAT_FILE))
    return 0


def _parser() -> argparse.ArgumentParser:
    """Build the command-line parser."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str, *opts: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        if "venv" in opts:
            p.add_argument(
                "--venv",
                type=Path,
                default=None,
                help=f"venv for label-studio (default ${VENV_ENV_VAR} or {DEFAULT_VENV.name})",
            )
        if "port" in opts:
            p.add_argument("--port", type=int, default=DEFAULT_PORT)
        if "data" in opts:
            p.add_argument(
                "--data-dir",
                type=Path,
                default=None,
                help=f"default {DEFAULT_DATA_DIR.name} ({DEFAULT_PG_DATA_DIR.name} for postgres)",
            )
        if "backend" in opts:
            p.add_argument(
                "--backend",
                choices=BACKENDS,
                default="sqlite",
                help="sqlite: the development server; postgres: PostgreSQL + gunicorn workers",
            )
        if "user" in opts:
            p.add_argument("--username", default=DEFAULT_USERNAME)
            p.add_argument("--password", default=DEFAULT_PASSWORD)
        return p

    add("install", "create the venv and install label-studio", "venv")
    p_start = add(
        "start",
        "start the server and wait until healthy",
        "venv", "port", "data", "user", "backend",
    )  # fmt: skip
    p_start.add_argument("--token", default=DEFAULT_TOKEN, help="legacy API token (<= 40 chars)")
    p_start.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT)
    p_start.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="gunicorn workers (postgres)"
    )
    p_start.add_argument(
        "--pg-port", type=int, default=DEFAULT_PG_PORT, help="PostgreSQL's port (postgres)"
    )
    add("stop", "stop the server (and its PostgreSQL) started from a data dir", "data", "backend")
    add("status", "tell whether a server is healthy (exit 1 if not)", "port")
    add("pat", "print a personal access token (JWT) for the user", "port", "user", "data")
    return parser


def _main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = _parser().parse_args(argv)
    commands = {
        "install": _cli_install,
        "start": _cli_start,
        "stop": _cli_stop,
        "status": _cli_status,
        "pat": _cli_pat,
    }
    try:
        return commands[args.command](args)
    except (LabelStudioError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(_main())
