#!/usr/bin/env python3
"""Delivery and export on each Label Studio backend, in one run on one machine; prints tables.

    python benchmarks/bench_backends.py                        # sqlite, then postgres
    python benchmarks/bench_backends.py --backends postgres --seconds 300

For each backend it starts a fresh server with ``scripts/labelstudio.py`` (SQLite: Django's
development server; postgres: a private PostgreSQL cluster behind ``--workers`` gunicorn
workers), measures, and stops it:

1. **throughput**: ``bench_delivery.py --part throughput`` against that server: lstrace's
   first call to all confirmed (``--calls``, default 10,000), against one raw bulk import of
   the same tasks; target >= 80%;
2. **sustained multi-process delivery**: ``tests/live/child_capture.py workers``: 8 processes
   forked from one app (as gunicorn forks its workers) capture into 3 projects for
   ``--seconds`` at the paces of ``--pauses`` (seconds between a process's calls; 0 = flat
   out), lstrace's defaults (batch 1,000, flush 1 s). The server's own database is polled
   every 0.2 s (PostgreSQL through ``psql``, SQLite read-only): a task is *visible* once its
   import committed, which is when the API shows it. Reported: tasks per second (all tasks /
   first call to last task visible), and call-to-visible latency (median, p99, max);
3. **export**: ``export_paging.py``'s exports (sft, preference, ratings, each in a child
   process) of ``--export-size`` annotated tasks, and the server's native JSON export
   (``GET /api/projects/{id}/export``).

The load average (1 min) is printed beside every figure: the machine has 2 cores that other
work shares, and every figure moves with it. Not a test: it checks nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TOKEN = "0123456789abcdef0123456789abcdef01234567"
CHILD = REPO / "tests" / "live" / "child_capture.py"
PORTS = {"sqlite": 18110, "postgres": 18111}
PG_PORT = 18433
POLL_S = 0.2
WINDOW = 6_000  # ids behind the newest seen that may still commit (concurrent imports)


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load1() -> float:
    return os.getloadavg()[0]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- 1. throughput: bench_delivery's part, against this server --------------------------------


def throughput(url: str, calls: int, reps: int) -> dict[str, Any]:
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_delivery.py"), "--part", "throughput"]
    cmd += ["--url", url, "--token", TOKEN, "--calls", str(calls), "--reps", str(reps)]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, cwd=REPO).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


# -- 2. sustained multi-process delivery ------------------------------------------------------


class Visibility:
    """Polls the server's database for the tasks of some projects: when each run id appeared."""

    def __init__(self, backend: str, data_dir: Path, pg_port: int) -> None:
        self.backend, self.data_dir, self.pg_port = backend, data_dir, pg_port
        if backend == "postgres":
            self.psql = _load(REPO / "scripts" / "labelstudio.py")._pg_bin("psql")
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._newest = 0

    def start(self, titles: list[str]) -> None:
        self.titles = titles
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _query(self, sql: str) -> list[tuple[str, ...]]:
        if self.backend == "postgres":
            cmd = [self.psql, "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres"]
            out = subprocess.run(
                [*cmd, "-d", "labelstudio", "-tAF", "\t", "-c", sql],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            return [tuple(line.split("\t")) for line in out.splitlines() if line]
        uri = f"file:{self.data_dir / 'label_studio.sqlite3'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=30) as db:
            return [tuple(str(v) for v in row) for row in db.execute(sql)]

    def _run(self) -> None:
        run_id = (
            "data->>'run_id'" if self.backend == "postgres" else "json_extract(data, '$.run_id')"
        )
        titles = ", ".join("'" + t.replace("'", "''") + "'" for t in self.titles)
        while not self._stop.wait(POLL_S):
            sql = (
                f"SELECT t.id, {run_id} FROM task t JOIN project p ON p.id = t.project_id "
                f"WHERE p.title IN ({titles}) AND t.id > {max(0, self._newest - WINDOW)}"
            )
            try:
                rows = self._query(sql)
            except (subprocess.CalledProcessError, sqlite3.Error):
                continue  # the database is busy: poll again
            now = time.time()
            for task_id, rid in rows:
                self.seen.setdefault(rid, now)
                self._newest = max(self._newest, int(task_id))


def sustained(
    url: str, backend: str, data_dir: Path, pg_port: int, seconds: float, pause: float
) -> dict[str, Any]:
    title = f"bench-mp-{uuid.uuid4().hex[:8]}"
    titles = [f"{title}-p{k}" for k in range(3)]
    watcher = Visibility(backend, data_dir, pg_port)
    watcher.start(titles)
    spool = Path(tempfile.mkdtemp()) / "app.sqlite3"
    load_before = load1()
    cmd = [sys.executable, str(CHILD), "workers", "--spool", str(spool), "--url", url,
           "--key", TOKEN, "--title", title, "--workers", "8", "--projects", "3",
           "--seconds", str(seconds), "--pause", str(pause), "--batch-size", "1000",
           "--flush-interval", "1", "--shutdown-timeout", "600"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    calls = {
        parts[1]: float(parts[3])
        for parts in (line.split() for line in done.stdout.splitlines())
        if parts and parts[0].startswith("worker")
    }
    deadline = time.monotonic() + 300
    while len(set(calls) - set(watcher.seen)) and time.monotonic() < deadline:
        time.sleep(1)  # the workers confirmed delivery at exit; wait for the poller to see all
    watcher.stop()
    shutil.rmtree(spool.parent, ignore_errors=True)
    seen = {r: watcher.seen[r] for r in calls if r in watcher.seen}
    latencies = [seen[r] - calls[r] for r in seen]
    first, last = min(calls.values()), max(seen.values(), default=0.0)
    return {
        "pause": pause,
        "calls": len(calls),
        "visible": len(seen),
        "extra": len(set(watcher.seen) - set(calls)),
        "exit": done.returncode,
        "offered_per_s": len(calls) / seconds,
        "tasks_per_s": len(seen) / (last - first) if last > first else 0.0,
        "median_s": statistics.median(latencies) if latencies else float("nan"),
        "p99_s": percentile(latencies, 0.99) if latencies else float("nan"),
        "max_s": max(latencies, default=float("nan")),
        "load": f"{load_before:.2f}/{load1():.2f}",
    }


# -- 3. export ----------------------------------------------------------------------------------


def export_figures(url: str, size: int) -> dict[str, Any]:
    paging = _load(REPO / "benchmarks" / "export_paging.py")
    started = time.perf_counter()
    project = paging.seed_project(url, TOKEN, f"bench-export-{size}", size)
    seeded = time.perf_counter() - started
    out_dir = Path(tempfile.mkdtemp())
    rows = {}
    try:
        for fmt in paging.FORMATS:
            load = load1()
            f = paging.run_export(url, project, fmt, out_dir / f"{fmt}.jsonl")
            rows[fmt] = {**f, "load": load}
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    load = load1()
    started = time.perf_counter()
    req = urllib.request.Request(
        f"{url}/api/projects/{project}/export?exportType=JSON&download_all_tasks=true",
        headers={"Authorization": f"Token {TOKEN}"},
    )
    with urllib.request.urlopen(req, timeout=1800) as resp:
        native = len(json.loads(resp.read()))
    rows["native JSON export"] = {
        "tasks": native, "rows": native, "seconds": time.perf_counter() - started,
        "traced_peak": float("nan"), "max_rss_kb": float("nan"), "load": load,
    }  # fmt: skip
    return {"size": size, "seed_s": seeded, "rows": rows}


# -- the run ------------------------------------------------------------------------------------


def run_backend(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    ls = _load(REPO / "scripts" / "labelstudio.py")
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-{backend}-"))
    data_dir.chmod(0o711)  # as root, PostgreSQL runs as the postgres user: it must reach this
    print(f"... {backend}: starting Label Studio ({data_dir})", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    url = ls.start(PORTS[backend], data_dir, TOKEN, backend=backend, workers=args.workers,
                   pg_port=PG_PORT, timeout=1800)  # fmt: skip
    result: dict[str, Any] = {"backend": backend, "start_s": time.monotonic() - t0}
    try:
        if "throughput" in args.parts:
            print(f"... {backend}: throughput (load {load1():.2f})", file=sys.stderr, flush=True)
            load = load1()
            result["throughput"] = {**throughput(url, args.calls, args.reps), "load1": load}
        if "sustained" in args.parts:
            result["sustained"] = []
            for pause in args.pauses:
                print(f"... {backend}: 8 processes, pause {pause} (load {load1():.2f})",
                      file=sys.stderr, flush=True)  # fmt: skip
                figures = sustained(url, backend, data_dir, PG_PORT, args.seconds, pause)
                result["sustained"].append(figures)
        if "export" in args.parts:
            print(f"... {backend}: export (load {load1():.2f})", file=sys.stderr, flush=True)
            result["export"] = export_figures(url, args.export_size)
    finally:
        ls.stop(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


def tables(results: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    lines = []
    if "throughput" in args.parts:
        lines += ["", f"1. delivery throughput: {args.calls} calls, first call to all confirmed "
                  f"(median of {args.reps}), against one raw bulk import of the same tasks", "",
                  f"{'backend':<9} {'lstrace':>20} {'raw import':>20} {'ratio':>6} "
                  f"{'target':>7}  load (1 min)"]  # fmt: skip
        for r in results:
            t = r["throughput"]
            ls_rate, raw_rate = t["calls"] / t["lstrace_s"], t["raw_tasks"] / t["raw_s"]
            ok = t["lstrace_arrived"] == t["calls"] and ratio_ok(ls_rate / raw_rate)
            lines.append(
                f"{r['backend']:<9} {t['lstrace_s']:>6.1f} s {ls_rate:>5.0f}/s    "
                f"{t['raw_s']:>6.1f} s {raw_rate:>5.0f}/s    {ls_rate / raw_rate:>5.0%} "
                f"{'>= 80%':>7}  {t['load']} {'PASS' if ok else 'FAIL'}"
            )
    if "sustained" in args.parts:
        lines += ["", f"2. sustained delivery: 8 processes x 3 projects for {args.seconds:.0f} s "
                  "(pause = seconds between a process's calls)", "",
                  f"{'backend':<9} {'pause':>5} {'calls':>7} {'offered':>8} {'delivered':>10} "
                  f"{'median':>7} {'p99':>7} {'max':>7} {'lost':>5} {'extra':>5} load"]  # fmt: skip
        for r in results:
            for s in r["sustained"]:
                lost = s["calls"] - s["visible"]
                lines.append(
                    f"{r['backend']:<9} {s['pause']:>5g} {s['calls']:>7} "
                    f"{s['offered_per_s']:>6.0f}/s {s['tasks_per_s']:>8.0f}/s "
                    f"{s['median_s']:>6.2f}s {s['p99_s']:>6.2f}s {s['max_s']:>6.2f}s "
                    f"{lost:>5} {s['extra']:>5}  {s['load']}"
                )
    if "export" in args.parts:
        lines += ["", f"3. export of {args.export_size} annotated tasks (lstrace export, each "
                  "format in a child process; the server's native JSON export)", "",
                  f"{'backend':<9} {'format':<19} {'rows':>6} {'seconds':>8} {'tasks/s':>8} "
                  f"{'traced peak':>12} {'max RSS':>8}  load"]  # fmt: skip
        for r in results:
            e = r["export"]
            for fmt, f in e["rows"].items():
                peak = (
                    ""
                    if f["traced_peak"] != f["traced_peak"]
                    else f"{f['traced_peak'] / 2**20:.1f} MiB"
                )
                rss = (
                    ""
                    if f["max_rss_kb"] != f["max_rss_kb"]
                    else f"{f['max_rss_kb'] / 1024:.0f} MiB"
                )
                lines.append(
                    f"{r['backend']:<9} {fmt:<19} {f['rows']:>6.0f} {f['seconds']:>8.1f} "
                    f"{f['tasks'] / f['seconds']:>8.0f} {peak:>12} {rss:>8}  {f['load']:.2f}"
                )  # fmt: skip
    lines += [
        "",
        "server start (s): " + ", ".join(f"{r['backend']} {r['start_s']:.0f}" for r in results),
    ]
    return lines


def ratio_ok(ratio: float) -> bool:
    return ratio >= 0.8


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=["sqlite", "postgres"],
                        default=["sqlite", "postgres"])  # fmt: skip
    parser.add_argument("--parts", nargs="+", choices=["throughput", "sustained", "export"],
                        default=["throughput", "sustained", "export"])  # fmt: skip
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (postgres)")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0, help="multi-process capture time")
    parser.add_argument("--pauses", type=float, nargs="+", default=[0.05, 0.0])
    parser.add_argument("--export-size", type=int, default=5_000)
    args = parser.parse_args()
    results = []
    for backend in args.backends:
        results.append(run_backend(args, backend))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # in case a later one fails
        print("\n".join(tables(results[-1:], args)), file=sys.stderr, flush=True)
    print("\n".join(tables(results, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
