#!/usr/bin/env python3
"""Manage a local, headless Label Studio server for the demo, cassette recording and live tests.

Standard library only. Usage::

    python3 scripts/labelstudio.py install [--venv DIR]
    python3 scripts/labelstudio.py start [--port P] [--data-dir D] [--token T]
                                         [--username U --password W] [--venv DIR]
    python3 scripts/labelstudio.py stop [--data-dir D]
    python3 scripts/labelstudio.py status [--port P]
    python3 scripts/labelstudio.py pat [--port P] [--username U --password W] [--data-dir D]

The server binds to 127.0.0.1 only. Its log goes to ``D/server.log`` and its pid to
``D/server.pid``. The same functions are importable (load this file by path with importlib):
:func:`install`, :func:`start`, :func:`stop`, :func:`wait_healthy`, :func:`is_healthy`,
:func:`create_pat`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import json
import os
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
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENV = REPO_ROOT / ".venv-labelstudio"
DEFAULT_DATA_DIR = REPO_ROOT / ".labelstudio-data"
DEFAULT_PORT = 8080
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


def _installed(venv: Path) -> bool:
    """Return True if ``venv`` has the pinned label-studio (checked without running Python)."""
    if not (venv / "bin" / "label-studio").exists():
        return False
    pattern = f"lib/python*/site-packages/label_studio-{LABEL_STUDIO_VERSION}.dist-info"
    return any(venv.glob(pattern))


def install(venv: Path | None = None, quiet: bool = False) -> Path:
    """Create ``venv`` and pip-install the pinned label-studio into it, unless already there.

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
        [*pip, "--disable-pip-version-check", f"label-studio=={LABEL_STUDIO_VERSION}"],
    ]
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
) -> str:
    """Start Label Studio in the background and block until it is healthy; return its URL.

    The server runs in its own process group with its output in ``data_dir/server.log`` and
    its pid in ``data_dir/server.pid``. If a server started from ``data_dir`` is already
    healthy on ``port``, it is reused. The user, token and legacy-token setting only take
    effect on the first start of a data dir. Installs label-studio into ``venv`` if missing.
    """
    data_dir = Path(data_dir).resolve()
    url = base_url(port)
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
    exe = install(Path(venv) if venv else None, quiet=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
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
    env = {**os.environ, **SERVER_ENV}
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


def stop(data_dir: Path | str = DEFAULT_DATA_DIR, timeout: float = 30.0) -> bool:
    """Stop the server started from ``data_dir``: SIGTERM its process group, then SIGKILL.

    Returns True if a server was running. Removes the pid file.
    """
    data_dir = Path(data_dir).resolve()
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


def _cli_start(args: argparse.Namespace) -> int:
    """Run the ``start`` subcommand."""
    url = base_url(args.port)
    data_dir = args.data_dir.resolve()
    if _read_pid(data_dir) is not None and is_healthy(url):
        print(f"Label Studio already running at {url} (data dir {data_dir})")
        return 0
    venv = args.venv or default_venv()
    if not _installed(venv):
        install(venv)
    t0 = time.monotonic()
    print(f"starting Label Studio at {url} (data dir {data_dir}) ", end="", flush=True)
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
        )
    finally:
        print()
    print(
        f"Label Studio is up at {url} after {time.monotonic() - t0:.0f} s "
        f"(user {args.username}, legacy token {args.token})"
    )
    return 0


def _cli_stop(args: argparse.Namespace) -> int:
    """Run the ``stop`` subcommand."""
    if stop(args.data_dir):
        print(f"stopped Label Studio ({args.data_dir})")
    else:
        print(f"no Label Studio running from {args.data_dir}")
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
    print(create_pat(url, args.username, args.password, args.data_dir / PAT_FILE))
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
            p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
        if "user" in opts:
            p.add_argument("--username", default=DEFAULT_USERNAME)
            p.add_argument("--password", default=DEFAULT_PASSWORD)
        return p

    add("install", "create the venv and install label-studio", "venv")
    p_start = add(
        "start", "start the server and wait until healthy", "venv", "port", "data", "user"
    )
    p_start.add_argument("--token", default=DEFAULT_TOKEN, help="legacy API token (<= 40 chars)")
    p_start.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT)
    add("stop", "stop the server started from a data dir", "data")
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
