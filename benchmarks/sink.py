#!/usr/bin/env python3
"""A local HTTP sink for the peers' tracers: answers every request at once.

``bench_delivery.py`` starts it in a process of its own (its CPU never counts as the
benchmark's) and points LangSmith's client and Langfuse's OTLP exporter at it::

    python benchmarks/sink.py 26150        # prints "ready <port>", serves until killed

Every request's body is read in full (Content-Length or chunked) and answered with
``200 {}`` (``202`` for POST), keeping the connection alive: what a tracing backend that
accepts everything instantly would do. ``GET /info`` (LangSmith's client asks it once)
says that the server takes zstd-compressed runs, as LangSmith's service does, so the
client sends the way it does in production. Requests are counted per path;
``GET /__counts`` returns the counts as JSON.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ANSWERS = {"/info": b'{"version":"0.0.0-sink","instance_flags":{"zstd_compression_enabled":true}}'}
_counts: Counter[str] = Counter()
_lock = threading.Lock()


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the peers' clients expect

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _read_body(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                self.rfile.read(size + 2)  # the chunk and its CRLF
                if size == 0:
                    break
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def _answer(self, status: int) -> None:
        self._read_body()
        path = self.path.split("?")[0]
        with _lock:
            _counts[f"{self.command} {path}"] += 1
            body = _ANSWERS.get(path, b"{}")
            if path == "/__counts":
                body = json.dumps(dict(_counts)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(200)

    def do_POST(self) -> None:
        self._answer(202)

    def do_PUT(self) -> None:
        self._answer(200)

    def do_PATCH(self) -> None:
        self._answer(200)


def main() -> int:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), _Sink)
    server.daemon_threads = True
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
