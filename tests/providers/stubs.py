"""Provider stub servers for tests: an OpenAI-compatible API and Anthropic's Messages API.

Real provider SDKs (``langchain-openai``, ``langchain-anthropic``) are pointed at these
servers, which a test starts on 127.0.0.1 (standard library only, one thread each, plus
one per open connection). Nothing leaves the machine.

Each stub answers from a script the test gives it (:meth:`StubServer.script`), one turn
per request, and falls back to :attr:`StubServer.responder` (by default a reply quoting
the last user message) once the script is used up. A turn is:

- a ``str``: a text reply;
- a ``dict`` or ``list``: a JSON reply (what ``with_structured_output`` parses);
- a :class:`ToolCall`, or a :class:`Reply` with text and/or tool calls;
- :class:`Choices`: different replies for the ``n`` choices of one OpenAI request;
- :class:`Fail`: an error status with the provider's error body.

The stubs answer as the providers do where the SDKs look: the *served* model
(``gpt-4o-mini-2024-07-18`` for a request naming ``gpt-4o-mini``) differs from the
requested one, ``usage`` is filled in (and counted over all ``n`` choices), streaming
is server-sent events (with the final usage chunk when ``stream_options.include_usage``
is set). Every request and what was answered is kept in :attr:`StubServer.exchanges`, so
a test compares the tasks in Label Studio with what the provider really said.

Usage::

    with OpenAIStub() as stub:
        stub.script("Paris.", ToolCall("get_weather", {"city": "Paris"}))
        ChatOpenAI(model="gpt-4o-mini", base_url=stub.base_url, api_key="sk-test").invoke("hi")
        [exchange] = stub.exchanges
        exchange.served_model, exchange.usage["total_tokens"]

Both stubs listen on a port the OS picks (never one of another tier's ranges).
While a vcrpy cassette is active, requests to a running stub pass through to it
(see :func:`is_stub_request`), so offline tests can use the stubs too.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, TypeAlias

from typing_extensions import Self

__all__ = [
    "AnthropicStub",
    "Choices",
    "Exchange",
    "Fail",
    "OpenAIStub",
    "Reply",
    "StubServer",
    "ToolCall",
    "is_stub_request",
]

# Requested model -> the snapshot a provider says answered. Unknown names get SERVED_SUFFIX.
SERVED_MODELS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-3.5-turbo-instruct": "gpt-3.5-turbo-instruct-0914",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
}
SERVED_SUFFIX = "-2024-07-18"

_running_ports: set[int] = set()  # ports of the stubs running in this process


@dataclass(frozen=True)
class ToolCall:
    """The model asks to call tool ``name`` with ``args``."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None  # None: a fresh provider-style id


@dataclass(frozen=True)
class Reply:
    """A reply with text and/or tool calls."""

    text: str | None = None
    tool_calls: Sequence[ToolCall] = ()


@dataclass(frozen=True)
class Fail:
    """Answer with an error: ``status`` and the provider's error body."""

    status: int
    message: str = "stub failure"
    retry_after: float | None = None


Answer: TypeAlias = "str | Mapping[str, Any] | list[Any] | ToolCall | Reply"


@dataclass(frozen=True)
class Choices:
    """Distinct answers for the ``n`` choices of one request (cycled if ``n`` is larger)."""

    answers: tuple[Answer, ...]

    def __init__(self, *answers: Answer) -> None:
        object.__setattr__(self, "answers", answers)


Turn: TypeAlias = "Answer | Choices | Fail"


@dataclass
class Exchange:
    """One request a stub got and what it answered."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int = 200
    served_model: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    texts: list[str | None] = field(default_factory=list)  # per choice; None: only tool calls
    tool_calls: list[list[dict[str, Any]]] = field(default_factory=list)  # per choice

    @property
    def requested_model(self) -> str:
        return str(self.body.get("model", ""))


def served_model(requested: str) -> str:
    """The model name a stub reports as having answered a request for ``requested``."""
    return SERVED_MODELS.get(requested, requested + SERVED_SUFFIX)


def tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: one token per word, at least one."""
    return max(1, len(text.split()))


def is_stub_request(host: str, port: int | None) -> bool:
    """True for a request to a stub running in this process (vcrpy lets these through)."""
    return host in ("127.0.0.1", "localhost") and port in _running_ports


def quote_last_user_message(body: Mapping[str, Any]) -> Turn:
    """The default responder: a text reply quoting the request's last user message."""
    return f"Stub reply to: {last_user_text(body)}"


def last_user_text(body: Mapping[str, Any]) -> str:
    """The text of the last user message of a chat/messages request (or the prompt)."""
    if "prompt" in body:
        prompt = body["prompt"]
        return str(prompt[-1] if isinstance(prompt, list) else prompt)
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            return _plain(message.get("content"))
    return ""


def _plain(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_plain(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class StubServer:
    """A provider stub on 127.0.0.1: a script of turns, a record of exchanges, a thread.

    Use it as a context manager (or :meth:`start` / :meth:`stop`). Thread-safe: many
    clients (threads or processes) may call it at once; the script is consumed in the
    order requests arrive.
    """

    routes: ClassVar[dict[str, str]] = {}  # path -> method name

    def __init__(self, *, responder: Callable[[Mapping[str, Any]], Turn] | None = None) -> None:
        self.responder = responder or quote_last_user_message
        self.exchanges: list[Exchange] = []
        self._script: deque[Turn] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Self:
        stub: StubServer = self

        class Handler(_Handler):
            owner = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        _running_ports.add(self.port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        _running_ports.discard(self.port)
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the stub is not running"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The server's root, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    # -- the script -----------------------------------------------------------------------

    def script(self, *turns: Turn) -> None:
        """Answer the next requests with ``turns``, in order."""
        with self._lock:
            self._script.extend(turns)

    def next_turn(self, body: Mapping[str, Any]) -> Turn:
        with self._lock:
            if self._script:
                return self._script.popleft()
        return self.responder(body)

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def answered(self, path: str) -> list[Exchange]:
        """The successful exchanges on ``path`` (e.g. ``/v1/chat/completions``), in order."""
        with self._lock:
            return [e for e in self.exchanges if e.path == path and e.status == 200]


class _Handler(BaseHTTPRequestHandler):
    """Routes a request to its stub's method; writes JSON or server-sent events."""

    owner: ClassVar[StubServer]
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read exchanges
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        method = self.owner.routes.get(path)
        if method is None:
            self.send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self.send_json(400, {"error": {"message": "body is not JSON", "type": "bad_request"}})
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        exchange = Exchange(path=path, body=body, headers=headers)
        # Recorded before answering (the stub fills it in before writing a byte): a client
        # that has read its reply always finds the exchange.
        self.owner.record(exchange)
        getattr(self.owner, method)(self, exchange)

    def send_json(self, status: int, payload: Any, headers: Mapping[str, str] = {}) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_events(self, events: Iterator[tuple[str | None, Any]]) -> None:
        """Stream ``(event name or None, data)`` pairs as server-sent events, chunked."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for name, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            frame = (f"event: {name}\n" if name else "") + f"data: {text}\n\n"
            self._chunk(frame.encode())
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _answer_text(answer: Answer) -> str | None:
    if isinstance(answer, str):
        return answer
    if isinstance(answer, ToolCall):
        return None
    if isinstance(answer, Reply):
        return answer.text
    return json.dumps(answer)


def _answer_calls(answer: Answer) -> Sequence[ToolCall]:
    if isinstance(answer, ToolCall):
        return (answer,)
    if isinstance(answer, Reply):
        return answer.tool_calls
    return ()


def _pieces(text: str) -> list[str]:
    """A text cut into word-sized stream deltas that join back to it."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


# -- OpenAI ----------------------------------------------------------------------------------


class OpenAIStub(StubServer):
    """OpenAI's ``/v1/chat/completions`` and ``/v1/completions``.

    Point ``ChatOpenAI`` / ``OpenAI`` at :attr:`base_url` (or set ``OPENAI_BASE_URL``).
    """

    routes: ClassVar[dict[str, str]] = {
        "/v1/chat/completions": "chat_completions",
        "/v1/completions": "completions",
    }

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def chat_completions(self, handler: _Handler, exchange: Exchange) -> None:
        body = exchange.body
        turn = self.next_turn(body)
        if isinstance(turn, Fail):
            self._fail(handler, exchange, turn)
            return
        answers = _choices(turn, int(body.get("n") or 1))
        calls = [[_openai_call(c) for c in _answer_calls(a)] for a in answers]
        exchange.served_model = served_model(exchange.requested_model)
        exchange.texts = [_answer_text(a) for a in answers]
        exchange.tool_calls = calls
        exchange.usage = _openai_usage(
            sum(tokens(_plain(m.get("content"))) + 3 for m in body.get("messages", [])),
            sum(_completion_tokens(t, c) for t, c in zip(exchange.texts, calls, strict=True)),
        )
        reply_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if body.get("stream"):
            handler.send_events(self._chat_events(reply_id, exchange))
            return
        choices = [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": [],
                    **({"tool_calls": call} if call else {}),
                },
                "logprobs": None,
                "finish_reason": "tool_calls" if call else "stop",
            }
            for i, (text, call) in enumerate(zip(exchange.texts, calls, strict=True))
        ]
        handler.send_json(
            200, {**self._envelope(reply_id, exchange, "chat.completion"), "choices": choices}
        )

    def _chat_events(self, reply_id: str, exchange: Exchange) -> Iterator[tuple[None, Any]]:
        with_usage = bool((exchange.body.get("stream_options") or {}).get("include_usage"))
        base = self._envelope(reply_id, exchange, "chat.completion.chunk", usage=False)
        extra = {"usage": None} if with_usage else {}

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> Any:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            return None, {**base, "choices": [choice], **extra}

        for i, (text, calls) in enumerate(zip(exchange.texts, exchange.tool_calls, strict=True)):
            yield chunk(i, {"role": "assistant", "content": "", "refusal": None})
            for piece in _pieces(text) if text else []:
                yield chunk(i, {"content": piece})
            for k, call in enumerate(calls):
                name, args = call["function"]["name"], call["function"]["arguments"]
                head = {"index": k, "id": call["id"], "type": "function"}
                yield chunk(
                    i, {"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]}
                )
                for piece in _pieces(args):
                    yield chunk(i, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
            yield chunk(i, {}, "tool_calls" if calls else "stop")
        if with_usage:
            yield None, {**base, "choices": [], "usage": exchange.usage}
        yield None, "[DONE]"

    def completions(self, handler: _Handler, exchange: Exchange) -> None:
        body = exchange.body
        prompts = body.get("prompt", "")
        prompts = prompts if isinstance(prompts, list) else [prompts]
        n = int(body.get("n") or 1)
        texts: list[str | None] = []
        for prompt in prompts:  # langchain's OpenAI LLM sends a batch's prompts in one request
            turn = self.next_turn({**body, "prompt": prompt})
            if isinstance(turn, Fail):
                self._fail(handler, exchange, turn)
                return
            texts += [_answer_text(a) or "" for a in _choices(turn, n)]
        exchange.served_model = served_model(exchange.requested_model)
        exchange.texts = texts
        exchange.tool_calls = [[] for _ in texts]
        exchange.usage = _openai_usage(
            sum(tokens(str(p)) for p in prompts), sum(tokens(t or "") for t in texts)
        )
        reply_id = f"cmpl-{uuid.uuid4().hex[:24]}"
        envelope = self._envelope(reply_id, exchange, "text_completion")
        if body.get("stream"):
            handler.send_events(self._completion_events(envelope, exchange))
            return
        choices = [
            {"index": i, "text": text, "logprobs": None, "finish_reason": "stop"}
            for i, text in enumerate(texts)
        ]
        handler.send_json(200, {**envelope, "choices": choices})

    def _completion_events(
        self, envelope: dict[str, Any], exchange: Exchange
    ) -> Iterator[tuple[None, Any]]:
        base = {k: v for k, v in envelope.items() if k != "usage"}
        for i, text in enumerate(exchange.texts):
            for piece in _pieces(text or ""):
                choice = {"index": i, "text": piece, "logprobs": None, "finish_reason": None}
                yield None, {**base, "choices": [choice]}
            yield None, {**base, "choices": [{"index": i, "text": "", "finish_reason": "stop"}]}
        if (exchange.body.get("stream_options") or {}).get("include_usage"):
            yield None, {**base, "choices": [], "usage": exchange.usage}
        yield None, "[DONE]"

    def _envelope(
        self, reply_id: str, exchange: Exchange, kind: str, *, usage: bool = True
    ) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "id": reply_id,
            "object": kind,
            "created": int(time.time()),
            "model": exchange.served_model,
            "system_fingerprint": "fp_stub0001",
            "service_tier": "default",
        }
        if usage:
            envelope["usage"] = exchange.usage
        return envelope

    def _fail(self, handler: _Handler, exchange: Exchange, fail: Fail) -> None:
        exchange.status = fail.status
        kind = "rate_limit_exceeded" if fail.status == 429 else "server_error"
        headers = {"retry-after": str(fail.retry_after)} if fail.retry_after is not None else {}
        error = {"message": fail.message, "type": kind, "param": None, "code": kind}
        handler.send_json(fail.status, {"error": error}, headers)


def _choices(turn: Answer | Choices, n: int) -> list[Answer]:
    answers = turn.answers if isinstance(turn, Choices) else (turn,)
    return [answers[i % len(answers)] for i in range(max(1, n))]


def _openai_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id or f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(dict(call.args))},
    }


def _completion_tokens(text: str | None, calls: Sequence[Mapping[str, Any]]) -> int:
    return (tokens(text) if text else 0) + sum(
        tokens(c["function"]["arguments"]) + 4 for c in calls
    )


def _openai_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


# -- Anthropic -------------------------------------------------------------------------------


class AnthropicStub(StubServer):
    """Anthropic's ``/v1/messages``. Point ``ChatAnthropic`` at :attr:`base_url`."""

    routes: ClassVar[dict[str, str]] = {"/v1/messages": "messages"}

    @property
    def base_url(self) -> str:
        return self.url  # the SDK appends /v1/messages itself

    def messages(self, handler: _Handler, exchange: Exchange) -> None:
        body = exchange.body
        turn = self.next_turn(body)
        if isinstance(turn, Fail):
            exchange.status = turn.status
            kind = "rate_limit_error" if turn.status == 429 else "api_error"
            error = {"type": "error", "error": {"type": kind, "message": turn.message}}
            handler.send_json(turn.status, error)
            return
        [answer] = _choices(turn, 1)
        text, calls = _answer_text(answer), _answer_calls(answer)
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        blocks += [
            {
                "type": "tool_use",
                "id": c.id or f"toolu_{uuid.uuid4().hex[:24]}",
                "name": c.name,
                "input": dict(c.args),
            }
            for c in calls
        ]
        system = body.get("system")
        prompt = sum(tokens(_plain(m.get("content"))) + 3 for m in body.get("messages", []))
        prompt += tokens(_plain(system)) if system else 0
        output = (tokens(text) if text else 0) + sum(
            tokens(json.dumps(dict(c.args))) + 4 for c in calls
        )
        exchange.served_model = served_model(exchange.requested_model)
        exchange.texts = [text]
        exchange.tool_calls = [[b for b in blocks if b["type"] == "tool_use"]]
        exchange.usage = {
            "input_tokens": prompt,
            "output_tokens": output,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        }
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": exchange.served_model,
            "content": blocks,
            "stop_reason": "tool_use" if calls else "end_turn",
            "stop_sequence": None,
            "usage": exchange.usage,
        }
        if body.get("stream"):
            handler.send_events(_anthropic_events(message))
        else:
            handler.send_json(200, message)


def _anthropic_events(message: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            empty: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        else:
            empty = {**block, "input": {}}
            raw = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(raw)]
        yield (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": empty,
            },
        )
        for piece in deltas:
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": piece},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    # Since 2025 the final delta carries the whole call's counts, input tokens included.
    final = {k: v for k, v in usage.items() if k != "service_tier"}
    yield "message_delta", {"type": "message_delta", "delta": delta, "usage": final}
    yield "message_stop", {"type": "message_stop"}
