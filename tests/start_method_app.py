"""An app that calls ``lstrace.enable()`` at import (the Quickstart's pattern) and makes its
calls in a ``multiprocessing`` child of the start method given (issue 12.3).

``python -m tests.start_method_app <method> <spool> <calls>``: the child imports this
module afresh (spawn, forkserver) or inherits it (fork), captures ``<calls>`` calls for a
fake Label Studio that lives in the child, and ends as multiprocessing children do (by
``os._exit``). Nothing is sent before the exit flush (flush_interval is an hour), so the
rows left in the spool afterwards say whether the child's exit flush ran. The child's
fake server reports what arrived on stdout, from the exit flush's own thread.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path
from typing import Any

from langchain_core.language_models import FakeListLLM

import lstrace
from lstrace._delivery import worker as _worker
from tests.fakeclient import KEY, URL, FakeLabelStudio

SERVER = FakeLabelStudio()
if len(sys.argv) > 2:  # the app's process, and children that import it afresh
    _worker.configure(spool_path=Path(sys.argv[2]), connect=SERVER.connect, flush_interval=3600)
lstrace.enable(project_name="start methods", url=URL, api_key=KEY)


def work(calls: int) -> None:
    llm = FakeListLLM(responses=["an answer"])
    for n in range(calls):
        llm.invoke(f"question {n}")


def main(method: str, calls: int) -> Any:
    child = multiprocessing.get_context(method).Process(target=work, args=(calls,))
    child.start()
    child.join()
    return child.exitcode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[3])))
