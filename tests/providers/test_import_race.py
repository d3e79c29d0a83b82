"""No import races (issue 9.1): lstrace's threads never import while the app may be importing.

Every case runs in fresh processes, a few at a time, because an import race happens once
per process, at its start: 20 per entry point (``ls_session``, ``@ls_track``, ``enable()``,
the drop-in handler), each of which, right after entering capture and for the next 1.5
seconds, calls a ``ChatOpenAI`` built beforehand (pointed at the OpenAI stub) and watches
``sys.modules`` from the main thread. ``race_child.py`` imports the provider and lstrace
once per entry point and forks the 20 processes from there, single-threaded, at the point
where an app enters capture (the imports cost far more than the proof under load). Label
Studio is a dead port: the race is between lstrace's own threads and the app's thread,
whatever the server does. Three proofs read the same processes' reports:

- generic: no module is ever seen still initialising (imported by another thread);
- generic and exhaustive: an import hook sees no module looked up off the main thread;
- the case that broke first: no ChatOpenAI call fails (0 of 20 processes).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.providers.stubs import OpenAIStub

pytestmark = pytest.mark.providers

CHILD = Path(__file__).with_name("race_child.py")
REPO = Path(__file__).resolve().parents[2]
ENTRY_POINTS = ("ls_session", "ls_track", "enable", "handler")
PROCESSES = int(os.environ.get("LSTRACE_RACE_PROCESSES", "20"))  # per entry point
PARALLEL = int(os.environ.get("LSTRACE_RACE_PARALLEL", "4"))  # processes at once


@pytest.fixture(scope="module")
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as openai_stub:
        yield openai_stub


def dead_url() -> str:
    """A loopback URL nothing listens on (a port the OS just handed out and took back)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run_children(entry: str, count: int, stub: OpenAIStub, tmp: Path) -> list[dict[str, Any]]:
    """Fork ``count`` processes for ``entry``, ``PARALLEL`` at a time; their reports."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LABEL_STUDIO_URL": dead_url(),
        "LABEL_STUDIO_API_KEY": "0123456789abcdef0123456789abcdef01234567",
        "OPENAI_BASE_URL": stub.base_url,
        "OPENAI_API_KEY": "sk-test-race",
    }
    where = tmp / entry
    where.mkdir()
    done = subprocess.run(
        [sys.executable, str(CHILD), entry, str(count), str(PARALLEL), str(where)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    reports = [json.loads(ln) for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(reports) == count, done.stdout + done.stderr[-3000:]
    return reports


@pytest.fixture(scope="module")
def reports(
    stub: OpenAIStub, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], list[dict[str, Any]]]:
    """The children's reports for an entry point (run once per entry, shared by the tests)."""
    done: dict[str, list[dict[str, Any]]] = {}
    tmp = tmp_path_factory.mktemp("race")

    def of(entry: str) -> list[dict[str, Any]]:
        if entry not in done:
            done[entry] = run_children(entry, PROCESSES, stub, tmp)
        return done[entry]

    return of


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_no_module_is_half_imported_after_scope_entry(
    entry: str, reports: Callable[[str], list[dict[str, Any]]]
) -> None:
    """In 20 fresh processes, the main thread never sees a module still initialising during
    the seconds after entering capture (and its first captured calls): lstrace's threads
    import nothing the app could be importing at that moment."""
    found = [r["initialising"] for r in reports(entry) if r["initialising"]]
    assert not found, (
        f"{len(found)}/{PROCESSES} processes saw half-imported modules, e.g. {found[0][:8]}"
    )


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_no_module_is_looked_up_off_the_main_thread(
    entry: str, reports: Callable[[str], list[dict[str, Any]]]
) -> None:
    """In the same processes, an import hook sees no module looked up by any thread but the
    main one (lstrace's spooler and sender, while they spool and retry the calls): not a
    sample of the race window but every lookup."""
    found = [r["thread_imports"] for r in reports(entry) if r["thread_imports"]]
    assert not found, (
        f"{len(found)}/{PROCESSES} processes imported off the main thread, e.g. {found[0][:8]}"
    )


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_first_chatopenai_calls_after_scope_entry_succeed(
    entry: str, reports: Callable[[str], list[dict[str, Any]]]
) -> None:
    """The app's first ChatOpenAI calls, made right after entering capture (and for the next
    seconds), succeed in every one of 20 fresh processes (they failed with "partially
    initialized module 'httpx'" while the sender thread imported httpx)."""
    runs = reports(entry)
    failed = [str(r["error"]) for r in runs if r["error"]]
    first = [e for e in failed if e.startswith("call 1:")]
    assert not failed, (
        f"{len(failed)}/{PROCESSES} processes had a failed call ({len(first)} of them the "
        f"first call): {failed[:2]}"
    )
    assert all(r["calls"] >= 1 for r in runs)
