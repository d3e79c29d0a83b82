"""lstrace's background threads import nothing (issue 9.1): everything they run is imported
by ``import lstrace``, on the application's thread.

A thread that imports a module while the application imports it too lets the application
see it half-initialised (``partially initialized module 'httpx'`` in the first ChatOpenAI
call). The check runs in a fresh process: an import hook records every module looked up
on a thread named ``lstrace-*`` while calls are captured, converted, masked, spooled and
sent to servers that fail in every way a request can fail without Label Studio (refused
connection, 503 with Retry-After, a read timeout), then at the exit flush.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHILD = r"""
import http.server, importlib.abc, itertools, sys, threading, time

seen = []


class Recorder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if threading.current_thread().name.startswith("lstrace-"):
            seen.append((threading.current_thread().name, fullname))
        return None


sys.meta_path.insert(0, Recorder())
import lstrace
from lstrace import masking
from langchain_core.language_models import FakeListLLM, GenericFakeChatModel
from langchain_core.messages import AIMessage


class Failing(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.slow:
            time.sleep(1.0)
        body = b'{"detail": "down for maintenance"}'
        self.send_response(503)
        self.send_header("Retry-After", "0.1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, *args):
        pass


def failing_server(slow):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    server.slow = slow
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


lstrace.configure(spool_path=sys.argv[1], flush_interval=0.05, request_timeout=0.3)
chat = GenericFakeChatModel(messages=itertools.repeat(AIMessage(content="call 555-123-4567")))
urls = [failing_server(slow=False), failing_server(slow=True), "http://127.0.0.1:9"]
for url in urls:
    with lstrace.ls_session(
        project_name="imports", url=url, api_key="k" * 40, mask=masking.default, mode="chat"
    ):
        initialising = [
            name
            for name, module in list(sys.modules.items())
            if getattr(getattr(module, "__spec__", None), "_initializing", False)
        ]
        print("INITIALISING", initialising)
        chat.invoke("hello, write to a@b.co")
        FakeListLLM(responses=["ok"]).invoke("a prompt")
    lstrace.flush(timeout=2)
stats = lstrace.stats()
print("RETRIED", stats.retried > 0, "SPOOLED", stats.spooled)
lstrace._delivery.worker.shutdown(timeout=1.0, report=False)
print("IMPORTS", sorted(set(seen)))
"""


def test_background_threads_import_nothing(tmp_path: Path) -> None:
    """While captured calls are converted, masked, spooled and sent to failing servers, and
    through the exit flush, no thread of lstrace imports a module; right after a scope is
    entered no module is half-initialised."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "spool.sqlite3")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = out.stdout.splitlines()
    assert lines.count("INITIALISING []") == 3, out.stdout + out.stderr
    assert "RETRIED True SPOOLED 6" in lines, out.stdout + out.stderr  # the threads did work
    assert lines[-1] == "IMPORTS []", out.stderr
