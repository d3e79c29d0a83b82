"""One fresh process of the import-race proofs (issue 9.1): enter capture, call, look.

    python race_child.py ENTRY

``ENTRY`` is how the process enters capture: ``ls_session``, ``ls_track``, ``enable`` or
``handler`` (the drop-in ``LabelStudioCallbackHandler``). As an app does, the process
imports its provider and builds its ``ChatOpenAI`` first (``OPENAI_BASE_URL`` points at
the test's stub); then it enters capture and, right away and again every few
milliseconds for ``WINDOW`` seconds:

- calls the model (the app's first LLM calls; each is captured, so lstrace's spooler and
  sender have work), noting the first error;
- looks at ``sys.modules`` from this, the main, thread for modules some other thread is
  still importing (``__spec__._initializing`` set). The main thread is between its own
  calls, so it is importing nothing itself: anything found is being imported by
  lstrace's threads, which must import nothing.

It prints one JSON line, ``{"entry", "calls", "error", "initialising"}``, and ends with
``os._exit``: Label Studio is a dead port here, and waiting for the exit flush would only
slow the proof down. The environment gives ``LABEL_STUDIO_URL``, a key and a spool.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from langchain_openai import ChatOpenAI

import lstrace

WINDOW = 1.5  # seconds of calling and looking: longer than the sender's old start-up
PAUSE = 0.02  # between calls: the app's thread leaves the others time to run
PROJECT = "import race"
MODEL = ChatOpenAI(model="gpt-4o-mini", max_retries=0)


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
    return {"calls": calls, "error": error, "initialising": sorted(seen)}


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


def main() -> None:
    entry = sys.argv[1]
    try:
        report = run(entry)
    except Exception as exc:  # capture itself raised: a failure of the proof too
        report = {"calls": 0, "error": f"at entry: {type(exc).__name__}: {exc}", "initialising": []}
    print(json.dumps({"entry": entry, **report}), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
