"""A process whose spool file cannot grow (RLIMIT_FSIZE, as on a full disk) captures calls
for a fake Label Studio; prints what arrived and what lstrace counted, as JSON.

Run by tests/test_spool_faults.py (a fake Label Studio) and tests/live/test_faults_spool.py
(a real one): ``python -m tests.full_disk_child [--trace] <spool> <calls> [<url> <key> <title>]``.
With ``--trace`` the session is in trace mode and each call is a chain of two model calls
(one task with two steps); the report then also gives the steps each task arrived with.
A file limit stands for a full filesystem: SQLite's writes past it fail like writes to a
full disk do, and only this process is limited.
"""

from __future__ import annotations

import json
import logging
import resource
import signal
import sys
from pathlib import Path
from typing import Literal

from langchain_core.language_models import FakeListLLM
from langchain_core.runnables import RunnableLambda

import lstrace
from lstrace._delivery import worker as _worker
from tests.fakeclient import KEY, URL, FakeLabelStudio


class Recording(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def main() -> None:
    trace = "--trace" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--trace"]
    spool, calls = Path(args[0]), int(args[1])
    url, key, title = args[2:5] if len(args) > 2 else (URL, KEY, "full disk")
    handler = Recording()
    records = handler.records
    logging.getLogger("lstrace").addHandler(handler)
    server = FakeLabelStudio()
    if url == URL:
        _worker.configure(spool_path=spool, connect=server.connect, max_backoff=0.5)
    else:
        _worker.configure(spool_path=spool, max_backoff=0.5, batch_size=100)
    llm = FakeListLLM(responses=["an answer " * 200])
    if trace:  # a trace of two model calls: two steps spooled, then one task at the end
        chain: RunnableLambda[str, str] = RunnableLambda(
            lambda q: llm.invoke(q) + llm.invoke("again " + q)
        )
        call = chain.invoke
    else:
        call = llm.invoke
    mode: Literal["prompt", "trace"] = "trace" if trace else "prompt"
    with lstrace.ls_session(project_name=title, url=url, api_key=key, mode=mode):
        call("opens the spool")
        lstrace.flush(60)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
        limit = max(p.stat().st_size for p in spool.parent.glob(spool.name + "*"))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        for n in range(calls):
            call(f"question {n} " + "x" * 2000)
    result = lstrace.flush(120)
    stats = lstrace.stats()
    print(
        json.dumps(
            {
                "arrived": len(set(server.run_ids(title))),
                "imported": len(server.run_ids(title)),
                "steps": sorted(
                    {
                        int(t["data"].get("steps", 0))
                        for p in server.projects.values()
                        for t in p.tasks
                    }
                ),
                "pending": result.pending,
                "captured": stats.captured,
                "failed": stats.failed_by_reason,
                "overflowed": stats.overflowed,
                "errors": [r.getMessage() for r in records if r.levelno >= logging.ERROR],
                "tracebacks": sum(r.exc_info is not None for r in records),
                "threads": sorted({r.threadName for r in records if r.levelno >= logging.ERROR}),
            }
        )
    )


if __name__ == "__main__":
    main()
