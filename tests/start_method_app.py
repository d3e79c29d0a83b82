"""An app that calls ``lstrace.enable()`` at import (the Quickstart's pattern) and makes its
calls in a ``multiprocessing`` child of the start method given (issue 12.3).

``python -m tests.start_method_app <method> <spool> <calls> [<url> <key> <title>]``: the
child imports this module afresh (spawn, forkserver) or inherits it (fork), captures
``<calls>`` calls for a fake Label Studio that lives in the child (or the real one given),
and ends as multiprocessing children do (by ``os._exit``). Nothing is sent before the exit
flush (flush_interval is an hour), so the rows left in the spool afterwards say whether the
child's exit flush ran.
"""

from __future__ import annotations

import multiprocessing
import sys
from multiprocessing.context import ForkContext, ForkServerContext, SpawnContext
from pathlib import Path

from langchain_core.language_models import FakeListLLM

import lstrace
from lstrace._delivery import worker as _worker
from tests.fakeclient import KEY, URL, FakeLabelStudio

SERVER = FakeLabelStudio()
# [<url> <key> <title>] after the count: a real Label Studio instead (the live tier)
URL_, KEY_, TITLE = sys.argv[4:7] if len(sys.argv) > 6 else (URL, KEY, "start methods")
if len(sys.argv) > 2:  # the app's process, and children that import it afresh
    fake = {"connect": SERVER.connect} if URL_ == URL else {}
    # the exit flush ends as soon as nothing is pending: a long bound only helps a busy machine
    _worker.configure(
        spool_path=Path(sys.argv[2]), flush_interval=3600, shutdown_timeout=300, **fake
    )
lstrace.enable(project_name=TITLE, url=URL_, api_key=KEY_)


def work(calls: int) -> None:
    llm = FakeListLLM(responses=["an answer"])
    for n in range(calls):
        llm.invoke(f"question {n}")


def main(method: str, calls: int) -> int | None:
    context = multiprocessing.get_context(method)
    assert isinstance(context, (ForkContext, ForkServerContext, SpawnContext)), method
    child = context.Process(target=work, args=(calls,))
    child.start()
    child.join()
    return child.exitcode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[3])))
