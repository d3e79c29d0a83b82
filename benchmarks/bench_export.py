#!/usr/bin/env python3
"""lstrace export's rate beside Label Studio's own export, in one run; plus its memory.

Usage (from the repository root, with the dev venv's Python)::

    python benchmarks/bench_export.py                        # 10,000 tasks; memory at 100,000
    python benchmarks/bench_export.py --tasks 20000 --rounds 5 --memory-tasks 0
    python benchmarks/bench_export.py --url http://127.0.0.1:8080 --token TOKEN
    python benchmarks/bench_export.py --backend postgres --port 23300 --workers 4

Without ``--url`` it starts a fresh Label Studio with ``scripts/labelstudio.py`` on
``--port`` (``--backend sqlite``: the development server; ``postgres``: a private PostgreSQL
behind gunicorn workers) and stops it at the end. It then:

1. builds a project of ``--tasks`` tasks in lstrace's layout, each imported with its
   annotation (an edit and a rating, a rating, or a skip for one task in ten), 1,000 per
   import request;
2. ``--rounds`` times, in rotating order: Label Studio's own export (``GET
   /api/projects/{id}/export?exportType=JSON&download_all_tasks=true``, read to the last
   byte), a native export snapshot (``POST /api/projects/{id}/exports`` with predictions,
   then its download), and ``lstrace export`` (``export_project`` in a child process, timed
   from the call to the file written, so Python's start-up is not counted). Rates are tasks
   per second; the table shows each round and the medians; target: lstrace >= 80% of the
   native export;
3. for ``--memory-tasks`` (0 skips it), one more project of that size and one lstrace
   export of it: the child's RSS just before the export and its peak (VmHWM) after it;
   target: growth < 50 MB.

The 1-minute load average is printed beside every figure: every figure moves with what
else the machine runs. Not a test: it checks nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.annotated_project import seed_project  # noqa: E402
from tests.labelstudio_script import load_script  # noqa: E402

TOKEN = "0123456789abcdef0123456789abcdef01234567"

CHILD = """
import json, sys, time
from lstrace.export import export_project

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0

url, token, project, fmt, out = sys.argv[1:6]
before = rss("VmRSS")
started = time.perf_counter()
result = export_project(int(project), fmt, out, url=url, api_key=token)
took = time.perf_counter() - started
print(json.dumps({"rows": result.rows, "tasks": result.tasks, "seconds": took,
                  "read": result.read, "rss_before_kb": before, "rss_peak_kb": rss("VmHWM")}))
"""


def load1() -> float:
    return os.getloadavg()[0]


# -- the three ways to export --------------------------------------------------------------------


def native_export(http: httpx.Client, project: int) -> dict[str, Any]:
    """Label Studio's own export endpoint, read to the last byte."""
    started = time.perf_counter()
    with http.stream(
        "GET",
        f"/api/projects/{project}/export",
        params={"exportType": "JSON", "download_all_tasks": "true"},
    ) as answer:
        answer.raise_for_status()
        body = b"".join(answer.iter_bytes())
    took = time.perf_counter() - started
    return {"seconds": took, "tasks": len(json.loads(body)), "mb": len(body) / 1e6}


def native_snapshot(http: httpx.Client, project: int) -> dict[str, Any]:
    """A native export snapshot of the whole project (predictions expanded), downloaded."""
    started = time.perf_counter()
    made = http.post(
        f"/api/projects/{project}/exports/",
        json={"title": "bench", "serialization_options": {"predictions": {"only_id": False}}},
    )
    made.raise_for_status()
    snapshot = made.json()
    while snapshot["status"] not in ("completed", "failed"):
        time.sleep(0.5)
        snapshot = http.get(f"/api/projects/{project}/exports/{snapshot['id']}").json()
    with http.stream("GET", f"/api/projects/{project}/exports/{snapshot['id']}/download") as got:
        got.raise_for_status()
        size = sum(len(chunk) for chunk in got.iter_bytes())
    took = time.perf_counter() - started
    http.delete(f"/api/projects/{project}/exports/{snapshot['id']}")
    return {"seconds": took, "tasks": snapshot["counters"]["task_number"], "mb": size / 1e6}


def lstrace_export(url: str, token: str, project: int, out: Path) -> dict[str, Any]:
    """``export_project`` in a child process (its memory is its own)."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, url, token, str(project), "sft", str(out)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise SystemExit(f"lstrace export failed:\n{proc.stderr}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


# -- the run -------------------------------------------------------------------------------------


def rotations(rounds: int) -> Iterator[list[str]]:
    ways = ["native export", "native snapshot", "lstrace export"]
    for r in range(rounds):
        yield ways[r % 3 :] + ways[: r % 3]


def measure(args: argparse.Namespace, url: str, http: httpx.Client, out: Path) -> None:
    started = time.perf_counter()
    project = seed_project(
        url, args.token, f"bench export {args.tasks} {time.time():.0f}", args.tasks
    )
    print(f"seeded project {project}: {args.tasks} annotated tasks in "
          f"{time.perf_counter() - started:.0f} s (load {load1():.2f})", flush=True)  # fmt: skip
    rates: dict[str, list[float]] = {}
    print(f"\n{'round':>5}  {'way':<16} {'tasks':>7} {'seconds':>8} {'tasks/s':>8} {'load':>5}")
    for number, order in enumerate(rotations(args.rounds), 1):
        for way in order:
            load = load1()
            if way == "native export":
                f = native_export(http, project)
            elif way == "native snapshot":
                f = native_snapshot(http, project)
            else:
                f = lstrace_export(url, args.token, project, out / "sft.jsonl")
            rate = f["tasks"] / f["seconds"]
            rates.setdefault(way, []).append(rate)
            extra = f"  ({f['rows']} rows; read by {f['read']})" if "rows" in f else ""
            print(f"{number:>5}  {way:<16} {f['tasks']:>7} {f['seconds']:>8.1f} {rate:>8.0f} "
                  f"{load:>5.2f}{extra}", flush=True)  # fmt: skip
    median = {way: statistics.median(r) for way, r in rates.items()}
    print("\nmedians: " + ", ".join(f"{way} {rate:.0f} tasks/s" for way, rate in median.items()))
    for base in ("native export", "native snapshot"):
        ratio = median["lstrace export"] / median[base]
        verdict = "PASS" if ratio >= 0.8 else "FAIL"
        print(f"lstrace / {base}: {ratio:.0%} (target >= 80%: {verdict})")
    if args.memory_tasks:
        memory(args, url, http, out)


def memory(args: argparse.Namespace, url: str, http: httpx.Client, out: Path) -> None:
    started = time.perf_counter()
    project = seed_project(url, args.token, f"bench memory {args.memory_tasks}", args.memory_tasks)
    print(f"\nseeded project {project}: {args.memory_tasks} annotated tasks in "
          f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    load = load1()
    f = lstrace_export(url, args.token, project, out / "memory.jsonl")
    growth = (f["rss_peak_kb"] - f["rss_before_kb"]) / 1024
    print(
        f"lstrace export of {f['tasks']} tasks (read by {f['read']}): {f['seconds']:.0f} s "
        f"({f['tasks'] / f['seconds']:.0f} tasks/s, load {load:.2f} -> {load1():.2f}); RSS "
        f"{f['rss_before_kb'] / 1024:.0f} MB before, peak {f['rss_peak_kb'] / 1024:.0f} MB: "
        f"growth {growth:.1f} MB (target < 50 MB: {'PASS' if growth < 50 else 'FAIL'})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-tasks", type=int, default=100_000)
    parser.add_argument("--url", help="a running Label Studio (default: start a fresh one)")
    parser.add_argument("--token", default=TOKEN, help="its API key (legacy token)")
    parser.add_argument("--port", type=int, default=18124, help="for the server it starts")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (postgres)")
    parser.add_argument("--pg-port", type=int, default=18434, help="its PostgreSQL (postgres)")
    parser.add_argument("--start-timeout", type=float, default=1200.0,
                        help="seconds the server it starts may take to be up")  # fmt: skip
    args = parser.parse_args()
    ls, data = load_script(), None
    url = args.url
    if url is None:
        data = Path(tempfile.mkdtemp(prefix="bench-export-"))
        data.chmod(0o711)  # as root, PostgreSQL runs as the postgres user: it must reach this
        url = ls.start(args.port, data, args.token, backend=args.backend,
                       workers=args.workers, pg_port=args.pg_port,
                       timeout=args.start_timeout)  # fmt: skip
    out = Path(tempfile.mkdtemp(prefix="bench-export-out-"))
    print(f"Label Studio at {url} ({args.backend if args.url is None else 'given'}); "
          f"{os.cpu_count()} CPUs; load {load1():.2f}", flush=True)  # fmt: skip
    try:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Token {args.token}"}, timeout=3600
        ) as http:
            measure(args, url, http, out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if data is not None:
            ls.stop(data)
            shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
