#!/usr/bin/env python3
"""Memory of the export's snapshot read path at any size, in seconds, without Label Studio.

Usage (from the repository root, with the dev venv's Python)::

    python benchmarks/bench_export_memory.py              # 10,000 and 100,000 tasks
    python benchmarks/bench_export_memory.py 250000

For each size, a fresh child process reads that many tasks in lstrace's layout (a prompt,
an edit and a rating, a prediction) through ``lstrace._export.read.annotated``, exactly as
an export does: both snapshots downloaded in chunks, parsed by ijson, spilled to the
temporary file, read back in id order. The snapshot server is played in process and
serves the tasks in shuffled id order, as PostgreSQL does, so the read back seeks. Prints
the child's RSS before the read and its peak (VmHWM) after; target: growth < 50 MB at
100,000 tasks. Label Studio's side is measured by ``bench_export.py``; this isolates
lstrace's. The 1-minute load average is printed beside every figure. Not a test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import contextlib, json, random, sys, time
from lstrace._export.read import Reading, annotated
from lstrace._export.snapshot import SUBMITTED

N = int(sys.argv[1])

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0

def task(i):
    edit = {"from_name": "response", "to_name": "prompt", "type": "textarea",
            "value": {"text": [f"Answer {i}. " * 20]}}
    stars = {"from_name": "rating", "to_name": "prompt", "type": "rating", "value": {"rating": 4}}
    return {"id": i,
            "data": {"prompt": f"Question {i % 499}? " * 10, "run_id": f"{i:032x}",
                     "model": "FakeListLLM", "tags": "", "metadata": "{}"},
            "annotations": [{"id": i, "result": [edit, stars], "was_cancelled": False,
                             "lead_time": 3.0, "completed_by": 1}],
            "predictions": [{"model_version": "FakeListLLM", "result": [edit]}]}

class Server:
    def __init__(self):
        self.made = []
    def create_snapshot(self, project_id, body):
        self.made.append(body["task_filter_options"])
        count = N if body["task_filter_options"] == SUBMITTED else 0
        return {"id": len(self.made), "status": "completed", "counters": {"task_number": count}}
    @contextlib.contextmanager
    def download_snapshot(self, project_id, export_id):
        yield self._chunks(self.made[export_id - 1] == SUBMITTED)
    def _chunks(self, submitted):
        order = list(range(1, N + 1)) if submitted else []
        random.Random(1).shuffle(order)
        yield b"["
        batch = []
        for n, i in enumerate(order):
            batch.append((b"," if n else b"") + json.dumps(task(i)).encode())
            if len(batch) == 64:
                yield b"".join(batch)
                batch = []
        yield b"".join(batch) + b"]"
    def delete_snapshot(self, project_id, export_id):
        pass

before = rss("VmRSS")
started = time.perf_counter()
last = 0
for _, got in annotated(Server(), 1, Reading()):
    assert got["id"] == last + 1, "not in id order"
    last = got["id"]
assert last == N
took = time.perf_counter() - started
peak = rss("VmHWM")
print(f"{N:>7} tasks read in id order in {took:6.1f} s; RSS {before:.0f} MB before, "
      f"peak {peak:.0f} MB: growth {peak - before:5.1f} MB")
"""


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000]
    print(f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}", flush=True)
    for size in sizes:
        load = os.getloadavg()[0]
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(size)],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
        )
        if proc.returncode != 0:
            raise SystemExit(f"the read of {size} tasks failed:\n{proc.stderr}")
        growth = float(proc.stdout.split("growth")[1].split()[0])
        verdict = (
            "" if size < 100_000 else f" (target < 50 MB: {'PASS' if growth < 50 else 'FAIL'})"
        )
        print(f"{proc.stdout.strip()}{verdict} (load {load:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
