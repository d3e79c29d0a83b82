"""A process whose spool file cannot grow (RLIMIT_FSIZE, as on a full disk) captures calls
for a fake Label Studio; prints what arrived and what lstrace counted, as JSON.

Run by tests/test_spool_faults.py (a fake Label Studio) and tests/live/test_faults_spool.py
(a real one): ``python -m tests.full_disk_child <spool> <calls> [<url> <key> <title>]``.
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

from langchain_core.language_models import FakeListLLM

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
    spool, calls = Path(sys.argv[1]), int(sys.argv[2])
    url, key, title = sys.argv[3:6] if len(sys.argv) > 3 else (URL, KEY, "full disk")
    handler = Recording()
    records = handler.records
    logging.getLogger("lstrace").addHandler(handler)
    server = FakeLabelStudio()
    if url == URL:
        _worker.configure(spool_path=spool, connect=server.connect, max_backoff=0.5)
    else:
        _worker.configure(spool_path=spool, max_backoff=0.5, batch_size=100)
    llm = FakeListLLM(responses=["an answer " * 200])
    with lstrace.ls_session(project_name=title, url=url, api_key=key):
        llm.invoke("opens the spool")
        lstrace.flush(60)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
        limit = max(p.stat().st_size for p in spool.parent.glob(spool.name + "*"))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        for n in range(calls):
            llm.invoke(f"question {n} " + "x" * 2000)
    result = lstrace.flush(120)
    stats = lstrace.stats()
    print(
        json.dumps(
            {
                "arrived": len(set(server.run_ids(title))),
                "imported": len(server.run_ids(title)),
                "pending": result.pending,
                "captured": stats.captured,
                "failed": stats.failed_by_reason,
                "errors": [r.getMessage() for r in records if r.levelno >= logging.ERROR],
                "tracebacks": sum(r.exc_info is not None for r in records),
                "threads": sorted({r.threadName for r in records if r.levelno >= logging.ERROR}),
            }
        )
    )


if __name__ == "__main__":
    main()
