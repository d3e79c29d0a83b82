"""After ``fork()`` each module resets its own per-process state (issue 10.1): the child
starts with no pending runs, no sampling links and a worker of its own that keeps the
parent's keys (gunicorn workers capture like the app that forked them)."""

from __future__ import annotations

import json
import os
import time
from uuid import uuid4

import pytest
from langchain_core.language_models import FakeListLLM

import lstrace
from lstrace._capture import handler as _handler
from lstrace._capture import sampling as _sampling
from lstrace._capture.scope import active
from lstrace._delivery import worker as _worker


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_resets_what_the_parent_owned_and_keeps_its_keys() -> None:
    """In the child: the parent's pending run and sampling links are gone, the worker is a
    new one (new owner token, running threads) with the parent's key for the server, and a
    call captured there is spooled by the child's own worker."""
    url = "http://127.0.0.1:9"  # nothing is sent: the child only spools
    with lstrace.ls_session(project_name="fork: state", url=url):
        scope = active()
        assert scope is not None
        scope.handler.on_llm_start({}, ["never ends"], run_id=uuid4())
        _sampling.note(uuid4(), None)
        parent = _worker._get()
        assert _handler._pending and _sampling._parents  # the parent holds state
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, then leave without running the parent's exit code
            try:
                child = _worker._get()
                FakeListLLM(responses=["ok"]).invoke("in the child")
                deadline = time.monotonic() + 120  # generous: the machine may be loaded
                while child.stats().captured < 1 and time.monotonic() < deadline:
                    time.sleep(0.02)
                report = {
                    "pending_runs": len(_handler._pending),
                    "parents": len(_sampling._parents),
                    "new_worker": child is not parent and child.owner != parent.owner,
                    "keys": sorted(child.keys),
                    "captured": child.stats().captured,
                }
                os.write(write, json.dumps(report).encode())
            finally:
                os._exit(0)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        with os.fdopen(read) as pipe:
            report = json.loads(pipe.read() or "{}")
    assert os.waitstatus_to_exitcode(status) == 0
    assert report["pending_runs"] == 0 and report["parents"] == 0
    assert report["new_worker"] is True
    assert report["keys"] == [url]
    assert report["captured"] == 1
    assert _handler._pending  # the parent's own state is untouched
