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
import gc
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
from dataclasses import dataclass, field
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


# -- part 1: the cost of a captured call -----------------------------------------------


class _NoopHandler:
    """Built lazily (BaseCallbackHandler subclass) so importing this script stays cheap."""

    @staticmethod
    def make() -> Any:
        from langchain_core.callbacks import BaseCallbackHandler

        class DoNothing(BaseCallbackHandler):
            run_inline = True

        return DoNothing()


@dataclass
class Variant:
    """One way of making the same fake call: its scope, callbacks, and how to drain it."""

    name: str
    scope: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    callbacks: list[Any] = field(default_factory=list)
    drain: Callable[[], None] = lambda: None  # until its background has sent everything
    calls: int | None = None  # per block (None: --block)
    cpu: bool = True  # CPU per call is measured (not for a handler that blocks on the network)
    kind: str = "peer"  # "base", "lstrace", "peer", "community"


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by group: the caller (main thread),
    lstrace's threads, and every other thread (the peers' senders)."""
    out = {"caller": 0.0, "lstrace": 0.0, "other": 0.0}
    main = threading.main_thread()
    for thread in threading.enumerate():
        try:
            cpu = time.clock_gettime(time.pthread_getcpuclockid(thread.ident or 0))
        except (OSError, AttributeError, OverflowError):  # exited meanwhile, or not Linux
            continue
        group = "caller" if thread is main else "lstrace" if thread.name.startswith(
            "lstrace-") else "other"  # fmt: skip
        out[group] += cpu
    return out


def _lstrace_variants(url: str, token: str) -> list[Variant]:
    import lstrace
    from lstrace import masking

    def drain() -> None:
        result = lstrace.flush(timeout=900)
        if result.pending:
            raise RuntimeError(f"lstrace left {result.pending} tasks undelivered")

    tag = uuid.uuid4().hex[:8]

    def session(mode: Any, **extra: Any) -> Callable[[], contextlib.AbstractContextManager[Any]]:
        title = f"bench-cost-{mode}-{'masked-' if extra else ''}{tag}"
        return lambda: lstrace.ls_session(
            project_name=title, mode=mode, url=url, api_key=token, **extra
        )

    return [
        Variant("lstrace, chat mode", session("chat"), drain=drain, kind="lstrace"),
        Variant("lstrace, prompt mode", session("prompt"), drain=drain, kind="lstrace"),
        Variant(
            "lstrace, chat mode, masking.default",
            session("chat", mask=masking.default),
            drain=drain,
            kind="lstrace-masked",
        ),
    ]


def _peer_variants(sink: str | None) -> tuple[list[Variant], list[str]]:
    """LangSmith's tracer and Langfuse's handler, each sending to the local sink."""
    variants: list[Variant] = []
    notes: list[str] = []
    if sink is None:
        return variants, ["peers not measured: no sink (--no-peers)"]
    try:
        from langchain_core.tracers.context import tracing_v2_enabled
        from langsmith import Client
    except ImportError as exc:
        notes.append(f"LangSmith not installed ({exc.name})")
    else:
        client = Client(api_url=sink, api_key="lsv2-bench-sink")

        def langsmith_drain() -> None:
            client.flush(timeout=300)

        variants.append(
            Variant(
                "LangSmith tracer (LangChainTracer)",
                lambda: tracing_v2_enabled(project_name="bench", client=client),
                drain=langsmith_drain,
            )
        )
    try:
        import logging

        from langfuse import Langfuse  # type: ignore[import-not-found,unused-ignore]
        from langfuse.langchain import (  # type: ignore[import-not-found,unused-ignore]
            CallbackHandler,
        )
    except ImportError as exc:
        notes.append(f"Langfuse not installed ({exc.name}): pip install langfuse")
    else:
        logging.getLogger("langfuse").setLevel(logging.ERROR)  # "could not parse the model"
        langfuse = Langfuse(public_key="pk-lf-bench", secret_key="sk-lf-bench", host=sink)
        variants.append(
            Variant("Langfuse CallbackHandler", callbacks=[CallbackHandler()], drain=langfuse.flush)
        )
    return variants, notes


def part_cost(url: str, token: str, sink: str | None, rounds: int, block: int) -> dict[str, Any]:
    """Per variant, interleaved by blocks: each call's wall time, each block's wall time, and
    the process CPU time (all threads) from a block's first call until its background has
    delivered everything (``drain``)."""
    from langchain_core.tracers.context import register_configure_hook

    import lstrace

    lstrace.configure(spool_path=Path(tempfile.mkdtemp()) / "spool.sqlite3")
    noop_var: contextvars.ContextVar[Any] = contextvars.ContextVar("bench_noop", default=None)
    register_configure_hook(noop_var, inheritable=True)
    noop = _NoopHandler.make()

    @contextlib.contextmanager
    def noop_scope() -> Iterator[None]:
        token_ = noop_var.set(noop)
        try:
            yield
        finally:
            noop_var.reset(token_)

    peers, notes = _peer_variants(sink)
    variants = [
        Variant("untraced", kind="base"),
        Variant("do-nothing handler (the floor)", noop_scope, kind="base"),
        *_lstrace_variants(url, token),
        *peers,
    ]
    community = _community_handler(url, token)
    if isinstance(community, str):
        notes.append(community)
    else:
        variants.append(
            Variant(
                "langchain-community LabelStudioCallbackHandler",
                callbacks=[community],
                calls=max(1, block // 25),
                cpu=False,
                kind="community",
            )
        )
    model = fake_model()
    for v in variants:  # warm-up: imports, caches, threads, projects, connections
        with v.scope():
            for i in range(v.calls or 100):
                model.invoke(f"warm up {i}", config={"callbacks": v.callbacks})
        v.drain()
    results: dict[str, dict[str, Any]] = {
        v.name: {"kind": v.kind, "lat": [], "block": [], "cpu": [], "threads": []} for v in variants
    }
    for r in range(rounds):
        for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
            _block(model, v, v.calls or block, results[v.name])
    return {
        "variants": {name: _summary(res, rounds) for name, res in results.items()},
        "block": block,
        "rounds": rounds,
        "paired_own": _paired(results),
        "notes": notes,
        "load": load_avg(),
    }


def _block(model: Any, v: Variant, n: int, out: dict[str, Any]) -> None:
    config = {"callbacks": v.callbacks}
    lat = out["lat"]
    gc.collect()  # every block starts from the same heap state
    threads0 = _thread_cpu()
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    with v.scope():
        for i in range(n):
            t0 = time.perf_counter_ns()
            model.invoke(f"question {i}", config=config)
            lat.append(time.perf_counter_ns() - t0)
    wall1 = time.perf_counter()
    v.drain()
    cpu1 = time.process_time()
    threads1 = _thread_cpu()
    out["block"].append((wall1 - wall0) / n * 1e6)
    if v.cpu:
        out["cpu"].append((cpu1 - cpu0) / n * 1e6)
        out["threads"].append(
            {k: max(0.0, threads1[k] - threads0.get(k, 0.0)) / n * 1e6 for k in threads1}
        )


def _summary(res: dict[str, Any], rounds: int) -> dict[str, Any]:
    lat = sorted(res["lat"])
    p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
    out: dict[str, Any] = {
        "kind": res["kind"],
        "calls": len(lat),
        "median_us": statistics.median(lat) / 1000,
        "p99_us": p99 / 1000,
        "block_mean_us": statistics.fmean(res["block"]),
    }
    if res["cpu"]:
        out["cpu_us"] = statistics.median(res["cpu"])
        out["cpu_spread"] = [min(res["cpu"]), max(res["cpu"])]
        out["threads_us"] = {
            k: statistics.median(t[k] for t in res["threads"]) for k in res["threads"][0]
        }
    return out


def _paired(results: dict[str, dict[str, Any]]) -> dict[str, list[float]]:
    """Per variant, per round: its CPU per call minus the floor's in the same round."""
    floor = results["do-nothing handler (the floor)"]["cpu"]
    return {
        name: [c - f for c, f in zip(res["cpu"], floor, strict=True)]
        for name, res in results.items()
        if res["cpu"] and res["kind"] != "base"
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


def part_memory(calls: int, dead_url: str) -> dict[str, Any]:
    """Peak RSS growth over a warmed-up baseline while ``calls`` calls are captured."""
    import lstrace

    spool_dir = Path(tempfile.mkdtemp())
    lstrace.configure(spool_path=spool_dir / "spool.sqlite3", shutdown_timeout=0.5)
    model = fake_model()
    with lstrace.ls_session(project_name="bench-memory", url=dead_url, api_key=TOKEN):
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


# -- the tables --------------------------------------------------------------------------


def run_part(args: argparse.Namespace, part: str, url: str, token: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--part", part, "--url", url, "--token", token]
    cmd += ["--rounds", str(args.rounds), "--block", str(args.block)]
    cmd += ["--calls", str(args.calls), "--reps", str(args.reps)]
    cmd += ["--down-calls", str(args.down_calls), "--dead-url", args.dead_url]
    if args.sink:
        cmd += ["--sink", args.sink]
    print(f"... {part} (load {load_avg()})", file=sys.stderr, flush=True)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


FLOOR = "do-nothing handler (the floor)"


def cost_table(cost: dict[str, Any]) -> list[str]:
    """One row per variant: caller latency, block mean, CPU per call drained."""
    v = cost["variants"]
    untraced = v["untraced"].get("cpu_us", 0.0)
    lines = [
        f"Cost of one fake chat-model invoke ({cost['rounds']} rounds x {cost['block']} calls "
        "per variant, interleaved; CPU = process CPU time of all threads from a block's first "
        "call until its background delivered everything, per call, median of the rounds)",
        "",
        f"{'variant':<44} {'median':>7} {'p99':>7} {'block':>7} {'CPU':>7} {'-untr.':>7} "
        f"{'caller':>7} {'bg':>6}  CPU spread",
        f"{'':<44} {'us':>7} {'us':>7} {'mean us':>7} {'us':>7} {'us':>7} {'us':>7} {'us':>6}",
    ]
    for name, r in v.items():
        if "cpu_us" in r:
            t = r["threads_us"]
            lo, hi = r["cpu_spread"]
            cpu = (f"{r['cpu_us']:7.0f} {r['cpu_us'] - untraced:7.0f} {t['caller']:7.0f} "
                   f"{t['lstrace'] + t['other']:6.0f}  {lo:.0f}-{hi:.0f}")  # fmt: skip
        else:
            cpu = f"{'n/a':>7}"
        lines.append(f"{name:<44} {r['median_us']:7.0f} {r['p99_us']:7.0f} "
                     f"{r['block_mean_us']:7.0f} {cpu}")  # fmt: skip
    lines.append("")
    lines.append("median/p99: one call's wall time on the caller's thread (all calls); block "
                 "mean: a block's wall time / its calls (background not drained); -untr.: CPU "
                 "minus untraced; caller/bg: the main thread's and the background threads' "
                 "share of CPU")  # fmt: skip
    lines += [f"note: {n}" for n in cost["notes"]]
    return lines


def targets(cost: dict[str, Any], thru: dict[str, Any], mem: dict[str, Any]) -> list[str]:
    v = cost["variants"]
    floor = v[FLOOR]
    rows: list[tuple[str, str, str, str]] = []

    def row(what: str, figure: str, target: str, ok: bool | None) -> None:
        rows.append((what, figure, target, "" if ok is None else "PASS" if ok else "FAIL"))

    for name, r in v.items():
        if r["kind"] not in ("lstrace", "lstrace-masked"):
            continue
        own = statistics.median(cost["paired_own"][name])
        strict = r["kind"] == "lstrace"
        row(f"{name}: own CPU per call (minus the floor)", f"{own:.1f} us",
            "< 30 us" if strict else "", own < 30 if strict else None)  # fmt: skip
        total = r["cpu_us"] / floor["cpu_us"]
        row(f"{name}: CPU per call / floor's", f"{total:.2f}x",
            "< 1.3x" if strict else "", total < 1.3 if strict else None)  # fmt: skip
        med = r["median_us"] / floor["median_us"]
        row(f"{name}: median latency / floor's", f"{med:.3f}x", "<= 1.10x", med <= 1.10)
        p99 = r["p99_us"] / floor["p99_us"]
        row(f"{name}: p99 latency / floor's p99", f"{p99:.2f}x", "<= 1.5x", p99 <= 1.5)
    ls_block = v["lstrace, chat mode"]["block_mean_us"]
    for name, r in v.items():
        if r["kind"] in ("peer", "community"):
            row(f"{name}: block mean / lstrace chat's", f"{r['block_mean_us'] / ls_block:.1f}x",
                "", None)  # fmt: skip
    ls_rate = thru["calls"] / thru["lstrace_s"]
    raw_rate = thru["raw_tasks"] / thru["raw_s"]
    ok = thru["lstrace_arrived"] == thru["calls"] and thru["raw_arrived"] == thru["raw_tasks"]
    row(f"lstrace: {thru['calls']} calls to all confirmed (median of {thru['reps']})",
        f"{thru['lstrace_s']:.1f} s = {ls_rate:.0f} tasks/s", "", None)  # fmt: skip
    row(f"raw SDK: one bulk import of {thru['raw_tasks']} (median of {thru['reps']})",
        f"{thru['raw_s']:.1f} s = {raw_rate:.0f} tasks/s", "", None)  # fmt: skip
    row("lstrace / raw throughput", f"{ls_rate / raw_rate:.0%}", ">= 90%",
        ls_rate / raw_rate >= 0.9 and ok)  # fmt: skip
    kept = mem["pending"] >= mem["calls"]  # nothing dropped to save memory
    row(f"RSS growth, {mem['calls']} calls, Label Studio down", f"{mem['growth_mb']:.1f} MB",
        "< 50 MB", mem["growth_mb"] < 50 and kept)  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"{'target':<{width}}  {'figure':>26}  {'target':>9}  result", "-" * (width + 48)]
    lines += [f"{a:<{width}}  {b:>26}  {c:>9}  {d}" for a, b, c, d in rows]
    lines.append("")
    spread = {n: f"{min(x):.0f}..{max(x):.0f}" for n, x in cost["paired_own"].items()}
    lines.append(f"own CPU per call, per round (min..max): {spread}")
    lines.append(f"load (1/5 min): cost {cost['load']}; throughput {thru['load']}; "
                 f"memory {mem['load']}")  # fmt: skip
    lines.append(f"throughput runs (s): lstrace {thru['lstrace_runs']}, raw {thru['raw_runs']}")
    lines.append(f"captures: {thru['calls']} calls took {thru['capture_s']:.1f} s to make; "
                 f"{mem['calls']} calls with Label Studio down took {mem['elapsed_s']:.1f} s, "
                 f"left {mem['pending']} pending in a {mem['spool_mb']:.0f} MB spool")  # fmt: skip
    return lines


@contextlib.contextmanager
def sink_server() -> Iterator[str]:
    """The local sink (benchmarks/sink.py) in a process of its own; yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("sink.py")), "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split()[1])
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


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
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (cost part)")
    parser.add_argument("--block", type=int, default=2000, help="calls per variant per round")
    parser.add_argument("--calls", type=int, default=10_000, help="throughput calls")
    parser.add_argument("--reps", type=int, default=2, help="throughput repetitions (median)")
    parser.add_argument("--down-calls", type=int, default=100_000, help="memory-part calls")
    parser.add_argument("--dead-url", default=DEAD_URL, help="where nothing listens (memory)")
    parser.add_argument("--no-peers", action="store_true", help="skip LangSmith and Langfuse")
    parser.add_argument("--only", choices=["cost", "throughput", "memory"], help="one part")
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=["cost", "throughput", "memory"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part == "cost":
        print(json.dumps(part_cost(args.url, args.token, args.sink, args.rounds, args.block)))
        return 0
    if args.part == "throughput":
        print(json.dumps(part_throughput(args.url, args.token, args.calls, args.reps)))
        return 0
    if args.part == "memory":
        print(json.dumps(part_memory(args.down_calls, args.dead_url)))
        return 0
    labelstudio, data_dir = None, None
    url = args.url
    if url is None:
        labelstudio = _load_labelstudio()
        data_dir = Path(tempfile.mkdtemp(prefix="bench-labelstudio-"))
        print(f"... starting Label Studio on port {args.port} ({data_dir})", file=sys.stderr)
        url = labelstudio.start(args.port, data_dir, args.token, timeout=1200)
    parts = [args.only] if args.only else ["cost", "throughput", "memory"]
    found: dict[str, dict[str, Any]] = {}
    try:
        with contextlib.ExitStack() as stack:
            if "cost" in parts and not args.no_peers:
                args.sink = stack.enter_context(sink_server())
            for part in parts:
                found[part] = run_part(args, part, url, args.token)
    finally:
        if labelstudio is not None and data_dir is not None:
            labelstudio.stop(data_dir)
            shutil.rmtree(data_dir, ignore_errors=True)
    if "cost" in found:
        print("\n".join(cost_table(found["cost"])))
        print()
    if len(found) == 3:
        print("\n".join(targets(found["cost"], found["throughput"], found["memory"])))
    else:
        print(json.dumps({k: v for k, v in found.items() if k != "cost"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
