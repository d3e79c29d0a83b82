#!/usr/bin/env python3
"""Re-record the offline test suite's cassettes against a fresh, real Label Studio.

Usage (from the repository root, with the dev venv's Python)::

    python scripts/record_cassettes.py                        # every offline test
    python scripts/record_cassettes.py tests/test_scopes.py   # one file
    python scripts/record_cassettes.py -k nested -x           # any pytest selection

What it does, in order:

1. asks pytest which tests the arguments select and deletes their cassettes
   (``tests/cassettes/<module>/<test>.yaml``); with no arguments it also deletes
   cassettes whose test no longer exists;
2. starts a fresh Label Studio (``scripts/labelstudio.py``) from a new temporary
   data dir on the first free port of 18088-18099, so project and task ids are the
   same on every recording. The first run ever keeps a copy of the freshly migrated,
   still empty data dir (in the temp dir) and later runs start from a copy of it,
   which takes seconds instead of a minute; ``--pristine`` skips that copy;
3. runs pytest with ``LSTRACE_RECORD=all`` against that server;
4. stops the server and deletes its data dir (``--keep-data`` keeps it);
5. scans the cassettes for credentials (the token, the password, ``Token ``,
   ``Bearer ey``, ``sessionid``, ``csrftoken``) and fails loudly if one is found.

Label Studio comes from ``$LSTRACE_LABEL_STUDIO_VENV`` (or is installed into
``.venv-labelstudio``). The exit code is pytest's, or 3 if a credential leaked.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
CASSETTES = REPO / "tests" / "cassettes"
PORTS = range(18088, 18100)
# The conftest's defaults: the token is also what replays send, so it must not change.
TOKEN = "0123456789abcdef0123456789abcdef01234567"
USERNAME = "record@lstrace.local"
PASSWORD = "lstrace-record-pass"
LEAK_MARKERS = ("Token ", "Bearer ey", "sessionid", "csrftoken")


def labelstudio() -> ModuleType:
    """``scripts/labelstudio.py``, loaded by path (``scripts/`` is not a package)."""
    path = REPO / "scripts" / "labelstudio.py"
    spec = importlib.util.spec_from_file_location("labelstudio", path)
    if spec is None or spec.loader is None:
        raise SystemExit("scripts/labelstudio.py is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port(ports: range = PORTS) -> int:
    """The first port of ``ports`` nothing listens on."""
    for port in ports:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise SystemExit(f"no free port in {ports.start}-{ports.stop - 1}")


def selected_cassettes(pytest_args: list[str]) -> list[Path]:
    """The cassette paths of the tests ``pytest_args`` select (as the conftest names them)."""
    # one node id a line needs exactly one -q: drop the caller's verbosity flags
    args = [a for a in pytest_args if not re.fullmatch(r"-[qv]+|--quiet|--verbose", a)]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    paths = []
    for line in out.stdout.splitlines():
        if "::" not in line:
            continue
        file_part, _, _ = line.partition("::")
        name = line.rsplit("::", 1)[1]
        module = Path(file_part).stem
        paths.append(CASSETTES / module / (re.sub(r"[^\w.-]+", "_", name) + ".yaml"))
    if not paths and out.returncode not in (0, 5):
        raise SystemExit(f"pytest could not collect the tests:\n{out.stdout}\n{out.stderr}")
    return paths


def delete_cassettes(selected: list[Path], *, prune: bool) -> None:
    """Delete the selected tests' cassettes; with ``prune``, also those of vanished tests."""
    doomed = {p for p in selected if p.exists()}
    if prune and CASSETTES.is_dir():
        stale = set(CASSETTES.rglob("*.yaml")) - set(selected)
        for path in sorted(stale):
            print(f"removing the cassette of a vanished test: {path.relative_to(REPO)}")
        doomed |= stale
    for path in doomed:
        path.unlink()
    print(f"deleted {len(doomed)} old cassettes; recording {len(selected)} tests")


def template_dir(ls: ModuleType) -> Path:
    """Where the freshly migrated, empty data dir is kept between runs."""
    return Path(tempfile.gettempdir()) / f"lstrace-ls-template-{ls.LABEL_STUDIO_VERSION}"


def start_fresh(ls: ModuleType, port: int, *, pristine: bool) -> tuple[str, Path]:
    """Start Label Studio from a new data dir; returns its URL and the data dir."""
    data = Path(tempfile.mkdtemp(prefix="lstrace-record-"))
    template = template_dir(ls)
    from_template = not pristine and (template / "label_studio.sqlite3").exists()
    if from_template:
        shutil.copytree(template, data, dirs_exist_ok=True)
    how = "a copy of the empty template" if from_template else "scratch (about a minute)"
    print(f"starting Label Studio on port {port} from {how}, data dir {data}", flush=True)
    url: str = ls.start(port, data, TOKEN, username=USERNAME, password=PASSWORD)
    if not from_template and not pristine:
        ls.stop(data)  # snapshot while stopped: the SQLite file is consistent
        shutil.rmtree(template, ignore_errors=True)
        shutil.copytree(data, template, ignore=shutil.ignore_patterns("server.*"))
        url = ls.start(port, data, TOKEN, username=USERNAME, password=PASSWORD)
    return url, data


def scan_for_credentials(paths: list[Path]) -> list[str]:
    """Lines of ``paths`` holding a credential, as ``file:line: marker``."""
    markers = (TOKEN, PASSWORD, *LEAK_MARKERS)
    leaks = []
    for path in paths:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            leaks += [f"{path.relative_to(REPO)}:{number}: {m!r}" for m in markers if m in line]
    return leaks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Other arguments are passed to pytest.",
        allow_abbrev=False,
    )
    parser.add_argument("--port", type=int, help="default: the first free of 18088-18099")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's data dir")
    parser.add_argument("--pristine", action="store_true", help="migrate a data dir from scratch")
    ours, pytest_args = parser.parse_known_args(argv)

    selected = selected_cassettes(pytest_args)
    delete_cassettes(selected, prune=not pytest_args)
    ls = labelstudio()
    port = ours.port or free_port()
    url, data = start_fresh(ls, port, pristine=ours.pristine)
    env = {
        **os.environ,
        "LSTRACE_RECORD": "all",
        "LSTRACE_RECORD_URL": url,
        "LSTRACE_RECORD_TOKEN": TOKEN,
    }
    try:
        code = subprocess.run(
            [sys.executable, "-m", "pytest", *pytest_args], cwd=REPO, env=env, check=False
        ).returncode
    finally:
        ls.stop(data)
        if not ours.keep_data:
            shutil.rmtree(data, ignore_errors=True)

    written = sorted(CASSETTES.rglob("*.yaml")) if CASSETTES.is_dir() else []
    leaks = scan_for_credentials(written)
    if leaks:
        print("\nCREDENTIALS FOUND IN CASSETTES -- do not commit them:", file=sys.stderr)
        print("\n".join(leaks), file=sys.stderr)
        return 3
    recorded = sum(p.exists() for p in selected)
    print(f"\n{recorded} cassettes written for {len(selected)} tests; no credentials found")
    return code


if __name__ == "__main__":
    sys.exit(main())
