#!/usr/bin/env python3
"""Trace-mode benchmark: what a step costs the caller, and memory for a long trace.

Prints one line per figure (no Label Studio needed: tasks stay in a temporary spool)::

    python benchmarks/bench_trace.py [--calls 3000] [--steps 5000]

- caller time per fake chat-model call inside one chain run (a trace root), medians of
  blocks: untraced, ``mode="chat"`` and ``mode="trace"``;
- process CPU per call with the background spooler's work drained (``flush``);
- RSS growth while one trace records ``--steps`` steps, and the size of its task row.

Each part runs in a fresh child process. Not a test: it measures and prints.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BLOCK = 100


def rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def model() -> Any:
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    return GenericFakeChatModel(messages=itertools.repeat(AIMessage(content="a fake reply")))


def part_overhead(mode: str, calls: int) -> dict[str, float]:
    """Per-call caller time (median of blocks) and process CPU per call, drained."""
    from langchain_core.runnables import RunnableLambda

    import lstrace

    llm = model()
    blocks: list[float] = []

    def loop(_: Any) -> int:
        for _ in range(calls // BLOCK):
            start = time.perf_counter()
            for _ in range(BLOCK):
                llm.invoke("hi")
            blocks.append((time.perf_counter() - start) / BLOCK)
        return 0

    chain = RunnableLambda(loop)
    chain.invoke(None)  # warm up LangChain's caches
    blocks.clear()
    cpu = time.process_time()
    if mode == "untraced":
        chain.invoke(None)
    else:
        with lstrace.ls_session(project_name="bench", mode=mode):
            chain.invoke(None)
        lstrace.flush(60)  # Label Studio is unreachable: this drains the spooler only
    cpu = time.process_time() - cpu
    return {"caller_us": statistics.median(blocks) * 1e6, "cpu_us": cpu / calls * 1e6}


def part_memory(steps: int, mode: str = "trace") -> dict[str, float]:
    """RSS growth (and, in trace mode, the task row) for one chain run of ``steps`` calls."""
    from langchain_core.runnables import RunnableLambda

    import lstrace

    llm = model()
    n = 200

    def loop(_: Any) -> int:
        nonlocal peak
        for i in range(n):
            llm.invoke(f"step {i} " + "x" * 200)
            if i % 500 == 0:
                peak = max(peak, rss())
        return 0

    peak = 0
    with lstrace.ls_session(project_name="bench", mode=mode):  # warm up: worker, imports
        RunnableLambda(loop).invoke(None)
    lstrace.flush(120)
    time.sleep(2)  # the sender's one-time imports
    db = sqlite3.connect(os.environ["LSTRACE_SPOOL_PATH"])
    db.execute("DELETE FROM tasks")
    db.commit()
    n = steps
    before = peak = rss()
    with lstrace.ls_session(project_name="bench", mode=mode):
        RunnableLambda(loop).invoke(None)
    lstrace.flush(120)
    peak = max(peak, rss())
    if mode != "trace":
        return {"rss_growth_mb": (peak - before) / 2**20}
    [(body,)] = db.execute("SELECT body FROM tasks").fetchall()
    content = json.loads(body)
    return {
        "rss_growth_mb": (peak - before) / 2**20,
        "task_row_mb": len(body) / 2**20,
        "recorded": len(content["steps"]),
        "skipped": content["skipped"],
    }


def run_part(args: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "LSTRACE_SPOOL_PATH": str(Path(tmp) / "spool.sqlite3"),
            "LABEL_STUDIO_URL": "http://127.0.0.1:9",  # nothing listens: nothing is sent
            "LABEL_STUDIO_API_KEY": "bench",
            "PYTHONPATH": str(REPO),
        }
        done = subprocess.run(
            [sys.executable, __file__, "--part", *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--part", nargs="*")
    ns = parser.parse_args()
    if ns.part:
        kind, arg = ns.part[0], ns.part[1:]
        result = (
            part_overhead(arg[0], int(arg[1]))
            if kind == "overhead"
            else part_memory(int(arg[0]), arg[1] if len(arg) > 1 else "trace")
        )
        print(json.dumps(result))
        return
    print(f"load average {os.getloadavg()[0]:.2f}")
    for mode in ("untraced", "chat", "trace"):
        r = run_part(["overhead", mode, str(ns.calls)])
        print(
            f"{mode:9} caller {r['caller_us']:7.1f} us/call   "
            f"process CPU (drained) {r['cpu_us']:7.1f} us/call"
        )
    c = run_part(["memory", str(ns.steps), "chat"])
    print(
        f"one chain run of {ns.steps} model calls in chat mode: "
        f"RSS growth {c['rss_growth_mb']:.1f} MB"
    )
    m = run_part(["memory", str(ns.steps)])
    print(
        f"one trace of {ns.steps} model calls: RSS growth {m['rss_growth_mb']:.1f} MB, "
        f"task row {m['task_row_mb']:.2f} MB, {m['recorded']:.0f} steps recorded, "
        f"{m['skipped']:.0f} counted past the limit"
    )


if __name__ == "__main__":
    main()
