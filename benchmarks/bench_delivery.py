#!/usr/bin/env python3
"""Delivery benchmark: caller overhead, delivery throughput, memory while Label Studio is down.

Prints a table with each figure, its target and PASS/FAIL (see benchmarks/README.md)::

    python benchmarks/bench_delivery.py                 # starts Label Studio on 127.0.0.1:18110
    python benchmarks/bench_delivery.py --url http://127.0.0.1:8080 --token TOKEN

Each measurement runs in a fresh child process of this script (``--part``), so one part's
allocations and threads never flatter another's figures. Not a test: it checks nothing
itself; it measures and says how the figures compare with the targets.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import importlib.util
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PORT = 18110
DEAD_URL = "http://127.0.0.1:18119"  # nothing listens there: Label Studio is down
TOKEN = "0123456789abcdef0123456789abcdef01234567"

# -- shared helpers ------------------------------------------------------------------


def fake_model() -> Any:
    """LangChain's own fake chat model, answering the same short reply for ever."""
    from langchain_core.language_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    return GenericFakeChatModel(messages=itertools.repeat(AIMessage(content="a fake reply")))


def load_avg() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; psutil elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.Process().memory_info().rss)


def sdk(url: str, token: str) -> Any:
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=url, api_key=token, timeout=600)  # type: ignore[no-untyped-call]


def project_id(client: Any, title: str) -> int:
    (found,) = [p.id for p in client.projects.list(title=title) if p.title == title]
    return int(found)


# -- part 1: caller overhead -----------------------------------------------------------


class _NoopHandler:
    """Built lazily (BaseCallbackHandler subclass) so importing this script stays cheap."""

    @staticmethod
    def make() -> Any:
        from langchain_core.callbacks import BaseCallbackHandler

        class DoNothing(BaseCallbackHandler):
            run_inline = True

        return DoNothing()


def part_overhead(url: str, token: str, rounds: int, block: int) -> dict[str, Any]:
    """Median wall time of one fake ``invoke`` per variant, variants interleaved by block."""
    from langchain_core.tracers.context import register_configure_hook

    import lstrace

    lstrace.configure(spool_path=Path(tempfile.mkdtemp()) / "spool.sqlite3")
    noop_var: contextvars.ContextVar[Any] = contextvars.ContextVar("bench_noop", default=None)
    register_configure_hook(noop_var, inheritable=True)
    model = fake_model()
    noop = _NoopHandler.make()

    @contextlib.contextmanager
    def noop_scope() -> Iterator[None]:
        token_ = noop_var.set(noop)
        try:
            yield
        finally:
            noop_var.reset(token_)

    title = f"bench-overhead-{uuid.uuid4().hex[:8]}"
    variants: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
        "untraced": contextlib.nullcontext,
        "do-nothing handler": noop_scope,
        "lstrace": lambda: lstrace.ls_session(project_name=title, url=url, api_key=token),
    }
    callbacks: dict[str, list[Any]] = {name: [] for name in variants}
    community = _community_handler(url, token)
    if isinstance(community, str):
        note = community
    else:
        note = ""
        variants["langchain-community handler"] = contextlib.nullcontext
        callbacks["langchain-community handler"] = [community]
    times: dict[str, list[int]] = {name: [] for name in variants}
    for _ in range(20):  # warm-up: imports, caches, the sender thread, the project
        for name, scope in variants.items():
            with scope():
                model.invoke("warm up", config={"callbacks": callbacks[name]})
    lstrace.flush(timeout=60)
    order = list(variants)
    for r in range(rounds):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            n = block if name != "langchain-community handler" else max(1, block // 25)
            config = {"callbacks": callbacks[name]}
            with variants[name]():
                for i in range(n):
                    t0 = time.perf_counter_ns()
                    model.invoke(f"question {i}", config=config)
                    times[name].append(time.perf_counter_ns() - t0)
    result = lstrace.flush(timeout=300)
    medians = {name: statistics.median(t) / 1000 for name, t in times.items()}
    return {
        "medians_us": medians,
        "means_us": {name: statistics.fmean(t) / 1000 for name, t in times.items()},
        "lstrace_captured": lstrace.stats().captured,
        "counts": {name: len(t) for name, t in times.items()},
        "community_note": note,
        "lstrace_pending_after": result.pending,
        "load": load_avg(),
    }


def _community_handler(url: str, token: str) -> Any:
    """langchain-community's LabelStudioCallbackHandler, or why it cannot be measured."""
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_community.callbacks import (  # type: ignore[import-not-found]
                LabelStudioCallbackHandler,
            )
    except ImportError as exc:
        return f"langchain-community not installed here ({exc.name}); see benchmarks/README.md"
    try:
        return LabelStudioCallbackHandler(
            url=url,
            api_key=token,
            project_name=f"bench-community-{uuid.uuid4().hex[:8]}",
            mode="chat",  # a chat model's calls; its default "prompt" mode refuses them
        )
    except Exception as exc:  # e.g. an SDK without the legacy Client
        return f"langchain-community handler failed with this SDK: {type(exc).__name__}: {exc}"


# -- part 2: delivery throughput -------------------------------------------------------


def part_throughput(url: str, token: str, calls: int, reps: int) -> dict[str, Any]:
    """lstrace: first call to all confirmed. Raw SDK: the same tasks in one bulk import.

    Both sides run warm (SDK imported, lstrace's threads started by a small warm-up run),
    alternate ``reps`` times, and each side's median counts; a new project each time
    (lstrace's time includes creating it).
    """
    import lstrace

    lstrace.configure(spool_path=Path(tempfile.mkdtemp()) / "spool.sqlite3")
    model = fake_model()
    client = sdk(url, token)
    warm = f"bench-warm-{uuid.uuid4().hex[:8]}"
    with lstrace.ls_session(project_name=warm, url=url, api_key=token):
        for i in range(100):
            model.invoke(f"warm up {i}")
    lstrace.flush(timeout=120)
    ls_runs: list[dict[str, Any]] = []
    raw_runs: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    for _ in range(reps):
        ls_runs.append(_lstrace_run(client, model, url, token, calls))
        if not tasks:
            tasks = _tasks_of(client, ls_runs[0]["project"])
        raw_runs.append(_raw_run(client, tasks, ls_runs[0]["config"]))
    lstrace_s = statistics.median(r["seconds"] for r in ls_runs)
    raw_s = statistics.median(r["seconds"] for r in raw_runs)
    return {
        "calls": calls,
        "reps": reps,
        "lstrace_s": lstrace_s,
        "lstrace_runs": [round(r["seconds"], 2) for r in ls_runs],
        "capture_s": statistics.median(r["capture_s"] for r in ls_runs),
        "lstrace_arrived": min(r["arrived"] for r in ls_runs),
        "raw_s": raw_s,
        "raw_runs": [round(r["seconds"], 2) for r in raw_runs],
        "raw_tasks": len(tasks),
        "raw_arrived": min(r["arrived"] for r in raw_runs),
        "load": ", ".join(r["load"] for r in ls_runs),
    }


def _lstrace_run(client: Any, model: Any, url: str, token: str, calls: int) -> dict[str, Any]:
    import lstrace

    title = f"bench-throughput-{uuid.uuid4().hex[:8]}"
    load = load_avg()
    started = time.perf_counter()
    with lstrace.ls_session(project_name=title, url=url, api_key=token):
        for i in range(calls):
            model.invoke(f"question {i}")
    captured = time.perf_counter()
    lstrace.flush(timeout=1800)
    seconds = time.perf_counter() - started
    project = client.projects.get(id=project_id(client, title))
    return {
        "seconds": seconds,
        "capture_s": captured - started,
        "project": project.id,
        "config": project.label_config,
        "arrived": int(project.task_number or 0),
        "load": load,
    }


def _tasks_of(client: Any, project: int) -> list[dict[str, Any]]:
    """The project's tasks as import payloads: data plus predictions, as lstrace sent them."""
    return [
        {"data": t.data, "predictions": [{"model_version": p.model_version, "result": p.result}
                                         for p in t.predictions]}
        for t in client.tasks.list(project=project, page_size=1000, include="data,predictions")
    ]  # fmt: skip


def _raw_run(client: Any, tasks: list[dict[str, Any]], config: str) -> dict[str, Any]:
    title = f"bench-raw-{uuid.uuid4().hex[:8]}"
    project = client.projects.create(title=title, label_config=config).id
    started = time.perf_counter()
    client.projects.import_tasks(
        id=project, request=tasks, return_task_ids=False, request_options={"max_retries": 0}
    )
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "arrived": int(client.projects.get(id=project).task_number or 0)}


# -- part 3: memory while Label Studio is down -----------------------------------------


def part_memory(calls: int) -> dict[str, Any]:
    """Peak RSS growth over a warmed-up baseline while ``calls`` calls are captured."""
    import lstrace

    spool_dir = Path(tempfile.mkdtemp())
    lstrace.configure(spool_path=spool_dir / "spool.sqlite3", shutdown_timeout=0.5)
    model = fake_model()
    with lstrace.ls_session(project_name="bench-memory", url=DEAD_URL, api_key=TOKEN):
        for i in range(2000):  # warm-up: imports, the sender's first failures, SQLite caches
            model.invoke(f"warm up {i}")
        lstrace.flush(timeout=2)
        baseline = rss_bytes()
        peak = baseline
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.05):
                peak = max(peak, rss_bytes())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        load_before = load_avg()
        t0 = time.perf_counter()
        for i in range(calls):
            model.invoke(f"question {i}")
        elapsed = time.perf_counter() - t0
        lstrace.flush(timeout=5)  # the queue into the spool; nothing can be sent
        done.set()
        sampler.join()
    peak = max(peak, rss_bytes())
    stats = lstrace.stats()
    spool_mb = sum(p.stat().st_size for p in spool_dir.iterdir()) / 2**20
    lstrace.configure(shutdown_timeout=0.5)  # stops the sender; the spool can go
    shutil.rmtree(spool_dir)
    return {
        "calls": calls,
        "growth_mb": (peak - baseline) / 2**20,
        "baseline_mb": baseline / 2**20,
        "elapsed_s": elapsed,
        "pending": stats.pending,
        "spool_mb": spool_mb,
        "load": load_before,
    }


# -- the table ---------------------------------------------------------------------------


def run_part(args: argparse.Namespace, part: str, url: str, token: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--part", part, "--url", url, "--token", token]
    cmd += ["--rounds", str(args.rounds), "--block", str(args.block)]
    cmd += ["--calls", str(args.calls), "--reps", str(args.reps)]
    cmd += ["--down-calls", str(args.down_calls)]
    print(f"... {part} (load {load_avg()})", file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def table(over: dict[str, Any], thru: dict[str, Any], mem: dict[str, Any]) -> list[str]:
    med = over["medians_us"]
    rows: list[tuple[str, str, str, str]] = []
    for name, us in med.items():
        mean = over["means_us"][name]
        rows.append((f"invoke, {name} (median of {over['counts'][name]})",
                     f"{us:.0f} us (mean {mean:.0f})", "", ""))  # fmt: skip
    captured = over["lstrace_captured"] >= over["counts"]["lstrace"]  # it did capture them all
    ratio_noop = med["lstrace"] / med["do-nothing handler"]
    rows.append(("lstrace / do-nothing handler", f"{ratio_noop:.3f}x", "<= 1.10x",
                 "PASS" if ratio_noop <= 1.10 and captured else "FAIL"))  # fmt: skip
    floor = med["do-nothing handler"] / med["untraced"]
    rows.append(("do-nothing handler / untraced", f"{floor:.3f}x", "(~1.19x)", ""))
    rows.append(("lstrace / untraced", f"{med['lstrace'] / med['untraced']:.3f}x", "", ""))
    if "langchain-community handler" in med:
        community = med["langchain-community handler"] / med["untraced"]
        rows.append(("langchain-community / untraced", f"{community:.1f}x", "", ""))
    else:
        rows.append(("langchain-community handler", "n/a", "", over["community_note"]))
    ls_rate = thru["calls"] / thru["lstrace_s"]
    raw_rate = thru["raw_tasks"] / thru["raw_s"]
    ok = thru["lstrace_arrived"] == thru["calls"] and thru["raw_arrived"] == thru["raw_tasks"]
    rows.append((f"lstrace: {thru['calls']} calls to all confirmed (median of {thru['reps']})",
                 f"{thru['lstrace_s']:.1f} s = {ls_rate:.0f} tasks/s", "", ""))  # fmt: skip
    rows.append((f"raw SDK: one bulk import of {thru['raw_tasks']} (median of {thru['reps']})",
                 f"{thru['raw_s']:.1f} s = {raw_rate:.0f} tasks/s", "", ""))  # fmt: skip
    rows.append(("lstrace / raw throughput", f"{ls_rate / raw_rate:.0%}", ">= 80%",
                 "PASS" if ls_rate / raw_rate >= 0.8 and ok else "FAIL"))  # fmt: skip
    kept = mem["pending"] >= mem["calls"]  # nothing dropped to save memory
    rows.append((f"RSS growth, {mem['calls']} calls, Label Studio down",
                 f"{mem['growth_mb']:.1f} MB", "< 50 MB",
                 "PASS" if mem["growth_mb"] < 50 and kept else "FAIL"))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"{'measure':<{width}}  {'figure':>26}  {'target':>9}  result", "-" * (width + 48)]
    lines += [f"{a:<{width}}  {b:>26}  {c:>9}  {d}" for a, b, c, d in rows]
    lines.append("")
    lines.append(f"load (1/5 min): overhead {over['load']}; throughput {thru['load']}; "
                 f"memory {mem['load']}")  # fmt: skip
    lines.append(f"throughput runs (s): lstrace {thru['lstrace_runs']}, raw {thru['raw_runs']}")
    lines.append(f"captures: {thru['calls']} calls took {thru['capture_s']:.1f} s to make; "
                 f"{mem['calls']} calls with Label Studio down took {mem['elapsed_s']:.1f} s, "
                 f"left {mem['pending']} pending in a {mem['spool_mb']:.0f} MB spool")  # fmt: skip
    return lines


def _load_labelstudio() -> Any:
    spec = importlib.util.spec_from_file_location("labelstudio", REPO / "scripts/labelstudio.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running Label Studio (default: start one)")
    parser.add_argument("--token", default=TOKEN, help="its API token (legacy token)")
    parser.add_argument("--port", type=int, default=PORT, help="port for the started server")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved overhead rounds")
    parser.add_argument("--block", type=int, default=250, help="calls per variant per round")
    parser.add_argument("--calls", type=int, default=10_000, help="throughput calls")
    parser.add_argument("--reps", type=int, default=2, help="throughput repetitions (median)")
    parser.add_argument("--down-calls", type=int, default=100_000, help="memory-part calls")
    parser.add_argument(
        "--part", choices=["overhead", "throughput", "memory"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.part == "overhead":
        print(json.dumps(part_overhead(args.url, args.token, args.rounds, args.block)))
        return 0
    if args.part == "throughput":
        print(json.dumps(part_throughput(args.url, args.token, args.calls, args.reps)))
        return 0
    if args.part == "memory":
        print(json.dumps(part_memory(args.down_calls)))
        return 0
    labelstudio, data_dir = None, None
    url = args.url
    if url is None:
        labelstudio = _load_labelstudio()
        data_dir = Path(tempfile.mkdtemp(prefix="bench-labelstudio-"))
        print(f"... starting Label Studio on port {args.port} ({data_dir})", file=sys.stderr)
        url = labelstudio.start(args.port, data_dir, args.token)
    try:
        over = run_part(args, "overhead", url, args.token)
        thru = run_part(args, "throughput", url, args.token)
        mem = run_part(args, "memory", url, args.token)
    finally:
        if labelstudio is not None:
            labelstudio.stop(data_dir)
            shutil.rmtree(data_dir, ignore_errors=True)
    print("\n".join(table(over, thru, mem)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
