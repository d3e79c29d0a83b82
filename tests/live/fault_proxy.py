"""A small fault-injecting HTTP reverse proxy for live failure tests (standard library only).

It runs in a thread of the test process, listens on 127.0.0.1 (port 0 picks a free port) and
forwards every request to ``upstream``. Faults are planned from the test::

    proxy = FaultProxy(upstream="http://127.0.0.1:18080")
    proxy.start()
    proxy.fail_next(1, status=429, retry_after=1, path="/import")
    proxy.drop_next(1, after_forward=True)  # upstream processed it, the client gets no answer
    client = LabelStudio(base_url=proxy.url, ...)
    ...
    assert proxy.counts["/api/projects/1/import"] == 2
    proxy.stop()

Each plan applies to the next ``n`` requests that match its filters (``path`` is a substring
of the request path, ``query`` of its URL-decoded query string, ``method`` an HTTP method);
plans are consumed in the order they were made, at most one per request.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypedDict

from typing_extensions import Unpack

# Headers that belong to one connection and are not forwarded.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "content-length", "host",
}  # fmt: skip


class FaultFields(TypedDict, total=False):
    """The optional fields of a :class:`Fault`, as the planning methods pass them."""

    path: str | None
    method: str | None
    query: str | None
    status: int
    retry_after: float | None
    seconds: float
    after_forward: bool


@dataclass
class Fault:
    """One planned fault: what to do to the next ``remaining`` matching requests."""

    kind: str  # "fail", "delay" or "drop"
    remaining: int
    path: str | None = None
    method: str | None = None
    query: str | None = None
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    after_forward: bool = False

    def matches(self, method: str, path: str, query: str = "") -> bool:
        """Return True if this fault applies to a request."""
        return (
            self.remaining > 0
            and (self.path is None or self.path in path)
            and (self.query is None or self.query in query)
            and (self.method is None or self.method.upper() == method)
        )


class FaultProxy:
    """Threaded reverse proxy to ``upstream`` with planned faults, for tests."""

    def __init__(self, upstream: str, port: int = 0, timeout: float = 300.0) -> None:
        """Prepare a proxy to ``upstream`` (e.g. ``http://127.0.0.1:8080``); call start()."""
        parts = urllib.parse.urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.port = port
        self.timeout = timeout
        self.counts: collections.Counter[str] = collections.Counter()  # requests seen, by path
        self.forwarded: collections.Counter[str] = collections.Counter()  # reached upstream
        self.log: list[tuple[str, str, str]] = []  # (method, path with query, outcome)
        self._faults: list[Fault] = []
        self._down: str | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the proxy, to give to the client instead of the upstream's."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        """Start listening (in a daemon thread); return self."""
        handler = type("Handler", (_Handler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening. Connections being served finish in their own threads."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        """Start the proxy in a ``with`` block."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        """Stop the proxy at the end of a ``with`` block."""
        self.stop()

    def _plan(self, n: int, kind: str, **kw: Unpack[FaultFields]) -> None:
        with self._lock:
            self._faults.append(Fault(kind, n, **kw))

    def fail_next(
        self, n: int = 1, status: int = 500, *, retry_after: float | None = None,
        after_forward: bool = False, path: str | None = None, method: str | None = None,
        query: str | None = None,
    ) -> None:  # fmt: skip
        """Answer the next ``n`` matching requests with ``status`` (and ``Retry-After``).

        By default the upstream never sees them; with ``after_forward`` the upstream
        processes the request first and its answer is replaced (the ambiguous case).
        """
        self._plan(n, "fail", status=status, retry_after=retry_after,
                   after_forward=after_forward, path=path, method=method, query=query)  # fmt: skip

    def delay_next(
        self, n: int, seconds: float, *, after_forward: bool = True,
        path: str | None = None, method: str | None = None,
    ) -> None:  # fmt: skip
        """Hold the next ``n`` matching requests for ``seconds``.

        By default the request is forwarded first and the upstream's answer is held: a client
        timing out meanwhile cannot know that the server did the work.
        """
        self._plan(n, "delay", seconds=seconds, after_forward=after_forward, path=path,
                   method=method)  # fmt: skip

    def drop_next(
        self, n: int = 1, *, after_forward: bool = False,
        path: str | None = None, method: str | None = None,
    ) -> None:  # fmt: skip
        """Close the connection of the next ``n`` matching requests without answering.

        With ``after_forward`` the upstream processes the request first (the ambiguous case).
        """
        self._plan(n, "drop", after_forward=after_forward, path=path, method=method)

    def down(self, mode: str = "close") -> None:
        """Make the "server" unavailable until up().

        ``mode`` is ``"close"`` (close every connection without answering; connections are
        still accepted), ``"refuse"`` (stop listening: connection refused) or ``"503"``.
        """
        if mode not in ("close", "refuse", "503"):
            raise ValueError(f"unknown mode {mode!r}")
        self._down = mode
        if mode == "refuse":
            self.stop()

    def up(self) -> None:
        """Undo down(): serve again, on the same port."""
        if self._down == "refuse" and self._server is None:
            self.start()
        self._down = None

    def reset(self) -> None:
        """Forget planned faults, counts and the log; bring the proxy up."""
        self.up()
        with self._lock:
            self._faults.clear()
            self.counts.clear()
            self.forwarded.clear()
            self.log.clear()

    def pending(self) -> int:
        """Return how many planned faults have not happened yet."""
        with self._lock:
            return sum(f.remaining for f in self._faults)

    def _take(self, method: str, path: str, query: str = "") -> Fault | None:
        """Count a request and, unless down, consume the first planned fault matching it."""
        with self._lock:
            self.counts[path] += 1
            if self._down:
                return None
            for fault in self._faults:
                if fault.matches(method, path, query):
                    fault.remaining -= 1
                    return fault
            return None


class _Handler(BaseHTTPRequestHandler):
    """Serves one client connection for a FaultProxy (HTTP/1.1, keep-alive)."""

    proxy: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:
        """Keep quiet: the proxy has its own log."""

    def _handle(self) -> None:
        proxy = self.proxy
        parts = urllib.parse.urlsplit(self.path)
        path, query = parts.path, urllib.parse.unquote_plus(parts.query)
        body = self._read_body()
        fault = proxy._take(self.command, path, query)
        if proxy._down in ("close", "refuse"):
            return self._finish(path, "down", drop=True)
        if proxy._down == "503":
            return self._finish(path, "down-503", status=503, data=b'{"detail": "down"}')
        if fault is not None and not fault.after_forward and self._inject(path, fault, "before"):
            return None
        try:
            status, headers, data = self._forward(body)
        except OSError as exc:
            return self._finish(path, f"upstream error {exc}", status=502, data=b"bad gateway")
        with proxy._lock:
            proxy.forwarded[path] += 1
        if fault is not None and fault.after_forward and self._inject(path, fault, str(status)):
            return None
        return self._finish(path, str(status), status=status, data=data, headers=headers)

    def _inject(self, path: str, fault: Fault, when: str) -> bool:
        """Apply ``fault``; return True if that answered (or dropped) the request."""
        if fault.kind == "delay":
            time.sleep(fault.seconds)
            return False
        if fault.kind == "drop":
            self._finish(path, f"dropped ({when})", drop=True)
            return True
        headers = [("Content-Type", "application/json")]
        if fault.retry_after is not None:
            headers.append(("Retry-After", f"{fault.retry_after:g}"))
        data = b'{"detail": "injected fault %d"}' % fault.status
        self._finish(path, f"failed {fault.status} ({when})", fault.status, data, headers=headers)
        return True

    def _read_body(self) -> bytes:
        """Read the request body (Content-Length or chunked)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request upstream; return its status, headers and body."""
        p = self.proxy
        conn = http.client.HTTPConnection(p.upstream_host, p.upstream_port, timeout=p.timeout)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Host"] = f"{p.upstream_host}:{p.upstream_port}"
            headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            skip = HOP_BY_HOP | {"server", "date"}  # send_response() adds its own
            kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in skip]
            return resp.status, kept, data
        finally:
            conn.close()

    def _finish(
        self, path: str, outcome: str, status: int = 0, data: bytes = b"", *,
        headers: list[tuple[str, str]] | None = None, drop: bool = False,
    ) -> None:  # fmt: skip
        """Log the outcome, then answer, or close the connection without answering."""
        self.proxy.log.append((self.command, self.path, outcome))
        if drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.send_response(status)
            for key, value in headers or []:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:  # the client gave up (e.g. timed out during a delay)
            self.close_connection = True


for _method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
    setattr(_Handler, f"do_{_method}", _Handler._handle)
