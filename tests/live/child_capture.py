"""A capturing process for the live tests that need a process of their own.

Run as ``python child_capture.py MODE --spool S --url U --key K --title T --n N``. Every
captured call is reported on stdout, once its ``invoke`` returned, as
``<who> <run_id> <time.monotonic()>`` (flushed at once), so the test knows what was captured
and when. Modes:

- ``loop``: capture ``n`` calls, then sleep until killed (the SIGKILL test);
- ``exit``: capture ``n`` calls and exit normally (the exit-flush test);
- ``fork``: capture in the parent, in an ``os.fork()`` child that exits normally, and in a
  ``multiprocessing`` fork child (which ends by ``os._exit``) (the fork-safety test);
- ``workers``: an app server's layout. The parent enables lstrace (as an app module imported
  by ``gunicorn --preload``) and forks ``--workers`` processes that each make calls for
  ``--seconds``, rotating over ``--projects`` projects (``<title>-p<k>``, so every process
  races to create every project), then exit normally. Each call is reported as
  ``<who> <run_id> <k> <time.time()>`` (wall clock: another process compares it with when
  the task became visible); the parent reports ``exit <pid> <code>`` for each worker.
  lstrace's log goes to stderr at INFO (project creations are counted from it).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import multiprocessing
import os
import sys
import time
import uuid

from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

import lstrace

MODEL = GenericFakeChatModel(messages=itertools.repeat(AIMessage(content="a fake reply")))


def report(line: str) -> None:
    """Write one line to stdout in one write(2): processes sharing the pipe never mix lines."""
    os.write(1, f"{line}\n".encode())


def capture(who: str, n: int, pause: float = 0.0) -> None:
    """Make ``n`` captured calls, reporting each on stdout; ``pause`` stands for the app's
    own I/O between calls (a real LLM call waits on the network)."""
    for i in range(n):
        run_id = uuid.uuid4()
        MODEL.invoke(f"{who} question {i}", config={"run_id": run_id})
        report(f"{who} {run_id} {time.monotonic()}")
        if pause:
            time.sleep(pause)


def _mp_child(n: int) -> None:
    capture("mp-child", n)  # no flush here: a multiprocessing child must not need one


def fork_mode(n: int) -> None:
    capture("parent", n)
    pid = os.fork()
    if pid == 0:
        capture("fork-child", n)
        return  # leaves the interpreter normally: the atexit flush delivers
    capture("parent", n)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    proc = multiprocessing.get_context("fork").Process(target=_mp_child, args=(n,))
    proc.start()
    capture("parent", n)
    proc.join()
    assert proc.exitcode == 0, proc.exitcode
    result = lstrace.flush(timeout=60)
    report(f"flushed {result.delivered} {result.pending}")


def _worker(title: str, number: int, projects: int, seconds: float, pause: float) -> None:
    who = f"worker{number}"
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        k = (i + number) % projects
        run_id = uuid.uuid4()
        with lstrace.ls_session(project_name=f"{title}-p{k}"):
            MODEL.invoke(f"{who} question {i}", config={"run_id": run_id})
        report(f"{who} {run_id} {k} {time.time()}")
        i += 1
        if pause:
            time.sleep(pause)


def workers_mode(args: argparse.Namespace) -> None:
    logging.basicConfig(stream=sys.stderr, format="%(process)d %(message)s")
    logging.getLogger("lstrace").setLevel(logging.INFO)
    pids = []
    for number in range(args.workers):
        pid = os.fork()
        if pid == 0:
            _worker(args.title, number, args.projects, args.seconds, args.pause)
            return  # leaves the interpreter normally: the atexit flush delivers the rest
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        report(f"exit {pid} {os.waitstatus_to_exitcode(status)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["loop", "exit", "fork", "workers"])
    for name in ("--spool", "--url", "--key", "--title"):
        parser.add_argument(name, required=True)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--shutdown-timeout", type=float, default=30.0)
    parser.add_argument("--max-queue", type=int, default=10_000)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--projects", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--flush-interval", type=float, default=0.1)
    args = parser.parse_args()
    lstrace.configure(
        spool_path=args.spool,
        batch_size=args.batch_size,
        flush_interval=args.flush_interval,
        max_backoff=1.0,
        shutdown_timeout=args.shutdown_timeout,
        max_queue=args.max_queue,
    )
    lstrace.enable(project_name=args.title, url=args.url, api_key=args.key)
    if args.mode == "fork":
        fork_mode(args.n)
        return
    if args.mode == "workers":
        workers_mode(args)
        return
    capture("main", args.n, args.pause)
    if args.mode == "loop":
        report("done")
        time.sleep(600)  # the test kills us long before this ends


if __name__ == "__main__":
    main()
