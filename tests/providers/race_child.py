"""The processes of the import-race proofs (issue 9.1): enter capture, call, look.

    python race_child.py ENTRY COUNT PARALLEL DIR

``ENTRY`` is how each process enters capture: ``ls_session``, ``ls_track``, ``enable`` or
``handler`` (the drop-in ``LabelStudioCallbackHandler``). As an app does, this process
imports its provider and lstrace and builds its ``ChatOpenAI`` (``OPENAI_BASE_URL`` points
at the test's stub); then it forks ``COUNT`` children, ``PARALLEL`` at a time. Each child
is a process at the moment an app enters capture: the same modules imported, the model
built, no call made yet and only the main thread (checked before every fork), so lstrace's
threads start in it as in a fresh process, without paying the imports 20 times. It
enters capture and, right away and again every few milliseconds for ``WINDOW`` seconds:

- calls the model (the app's first LLM calls: the provider SDK imports what it loads
  lazily, and each call is captured, so lstrace's spooler and sender have work), noting
  the first error;
- looks at ``sys.modules`` from this, the main, thread for modules some other thread is
  still importing (``__spec__._initializing`` set). The main thread is between its own
  calls, so it is importing nothing itself: anything found is being imported by
  lstrace's threads, which must import nothing;
- records, through an import hook, every module looked up on a thread that is not the
  main one (not a sample: every lookup).

Each child writes ``DIR/ENTRY-N.json``, ``{"calls", "error", "initialising",
"thread_imports"}``, and ends with ``os._exit``: Label Studio is a dead port here, and
waiting for the exit flush would only slow the proof down. This process prints one JSON
line per child, a crashed child as an error. The environment gives ``LABEL_STUDIO_URL``
and a key; each child's spool is ``DIR/ENTRY-N.sqlite3``.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from langchain_openai import ChatOpenAI

import lstrace

WINDOW = 1.5  # seconds of calling and looking: longer than the sender's old start-up
PAUSE = 0.02  # between calls: the app's thread leaves the others time to run
PROJECT = "import race"
MODEL = ChatOpenAI(model="gpt-4o-mini", max_retries=0)
THREAD_IMPORTS: list[str] = []  # "thread: module" for each lookup off the main thread


class OffMainThread(importlib.abc.MetaPathFinder):
    """Records each module looked up on another thread than the main one; finds nothing."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        thread = threading.current_thread()
        if thread is not threading.main_thread():
            THREAD_IMPORTS.append(f"{thread.name}: {fullname}")


def initialising() -> set[str]:
    """Modules that some thread has begun but not finished importing."""
    return {
        name
        for name, module in list(sys.modules.items())
        if name != "__main__" and getattr(getattr(module, "__spec__", None), "_initializing", False)
    }


def call_and_look(callbacks: list[Any]) -> dict[str, Any]:
    seen = initialising()
    error = None
    calls = 0
    deadline = time.monotonic() + WINDOW
    while calls == 0 or time.monotonic() < deadline:
        calls += 1
        try:
            MODEL.invoke("hello", {"callbacks": callbacks})
        except Exception as exc:
            error = error or f"call {calls}: {type(exc).__name__}: {exc}"
        seen |= initialising()
        time.sleep(PAUSE)
        seen |= initialising()
    return {
        "calls": calls,
        "error": error,
        "initialising": sorted(seen),
        "thread_imports": sorted(set(THREAD_IMPORTS)),
    }


def run(entry: str) -> dict[str, Any]:
    if entry == "ls_session":
        with lstrace.ls_session(project_name=PROJECT):
            return call_and_look([])
    if entry == "ls_track":
        return lstrace.ls_track(project_name=PROJECT)(call_and_look)([])
    if entry == "enable":
        lstrace.enable(project_name=PROJECT)
        return call_and_look([])
    if entry == "handler":
        return call_and_look([lstrace.LabelStudioCallbackHandler(project_name=PROJECT)])
    raise SystemExit(f"unknown entry point {entry!r}")


def child(entry: str, out: Path) -> None:
    """One process entering capture: its report to ``out``; never returns."""
    sys.meta_path.insert(0, OffMainThread())
    try:
        report = run(entry)
    except Exception as exc:  # capture itself raised: a failure of the proof too
        report = {"calls": 0, "error": f"at entry: {type(exc).__name__}: {exc}"}
        report |= {"initialising": [], "thread_imports": []}
    out.write_text(json.dumps(report), encoding="utf-8")
    os._exit(0)


def collected(pid: int, out: Path) -> dict[str, Any]:
    """The report of the child ``pid`` once it ended, or its crash as an error."""
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0 and out.exists():
        return dict(json.loads(out.read_text(encoding="utf-8")))
    crash = f"child exit {os.waitstatus_to_exitcode(status)}"
    return {"calls": 0, "error": crash, "initialising": [crash], "thread_imports": []}


def main() -> None:
    entry, count, parallel, where = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    running: list[tuple[int, Path]] = []
    for i in range(count):
        if len(running) >= parallel:
            print(json.dumps(collected(*running.pop(0))), flush=True)
        if threading.active_count() != 1:  # a fork would not be a fresh process then
            raise SystemExit(f"threads before fork {i}: {threading.enumerate()}")
        out = Path(where, f"{entry}-{i}.json")
        os.environ["LSTRACE_SPOOL_PATH"] = str(out.with_suffix(".sqlite3"))
        pid = os.fork()
        if pid == 0:
            try:
                child(entry, out)
            finally:  # the child never goes back into this loop
                os._exit(1)
        running.append((pid, out))
    for pid, out in running:
        print(json.dumps(collected(pid, out)), flush=True)


if __name__ == "__main__":
    main()
