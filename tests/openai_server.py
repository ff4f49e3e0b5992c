"""A local OpenAI-compatible chat-completions server, so tests run the real client without a paid API."""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import itertools
import json
import math
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["Answer", "OpenAIServer", "Responder"]

_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")

# What the real API puts in "type" and "code" for the failures tests ask for.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
}

# A piece of a streamed reply: a word and the whitespace after it, so the pieces add up to the reply.
_PIECE = re.compile(r"\s*\S+\s*")
_WORD = re.compile(r"\w+")
# text-embedding-3-small's size; a request's "dimensions" asks for another.
_EMBEDDING_DIMENSIONS = 1536


@dataclass(frozen=True)
class Answer:
    """What a scripted model answers (see :meth:`OpenAIServer.respond_with`): text, or tool calls.

    ``tool_calls`` are ``(name, arguments as JSON text)`` pairs, answered together as the real API
    answers a model's parallel tool calls.
    """

    text: str = ""
    tool_calls: tuple[tuple[str, str], ...] = ()


# Decides the answer to one request body; ``None`` leaves it to the server's other rules.
Responder = Callable[[dict[str, Any]], Answer | None]


@dataclass
class _Failure:
    status: int
    times: int
    model: str | None
    retry_after: float | None


class OpenAIServer:
    """An HTTP server speaking the ``/v1/chat/completions`` protocol on a free loopback port.

    It answers with ``"echo: "`` plus the last user message (or a canned reply per model;
    ``"tool said: "`` plus the result when the last message is a tool's), counts one token
    per whitespace-separated word, streams one SSE chunk per word, and fails on demand
    with the status codes and error bodies of the real API. Every JSON body it receives
    on ``/v1/chat/completions`` is recorded, failed ones included.

    Tool calls: :meth:`call_tool` makes the next request that offers tools answer
    with a call (streamed in pieces as the real API does). As the real API, it
    refuses (400) tool parameters or a ``json_schema`` whose root is not an
    object, and a ``tool`` message that answers no earlier tool call.
    :meth:`refuse_json_schema` makes it refuse ``json_schema`` response formats
    for a model, as endpoints without structured output do.

    With ``embeddings=True`` it also serves ``/v1/embeddings``: deterministic
    vectors hashed from the words of each input (texts sharing words are
    close, so search over them behaves like search), as floats or base64 as
    asked. Embedding requests are recorded apart, in :attr:`embedding_requests`.

    A scripted model (:meth:`respond_with`) decides answers by the request's content,
    for tests and benchmarks whose agents hold a conversation with tools.

    Args:
        latency: seconds to wait before the first byte of each answer, or a ``(low, high)``
            range: each request then waits a time in it that a hash of its body picks (the
            same request, the same wait, so runs compare fairly). May be changed while the
            server runs.
        token_delay: seconds between the streamed pieces of an answer (a model writing);
            may be changed while the server runs.
        embeddings: serve ``/v1/embeddings`` (off: it is an unknown URL, a 404).
    """

    def __init__(
        self,
        *,
        latency: float | tuple[float, float] = 0.0,
        embeddings: bool = False,
        token_delay: float = 0.0,
    ) -> None:
        self.latency = latency
        self.token_delay = token_delay
        self.embeddings = embeddings
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._embedding_requests: list[dict[str, Any]] = []
        self._failures: list[_Failure] = []
        self._replies: dict[str, str] = {}
        self._tool_calls: list[tuple[str, str]] = []
        self._responder: Responder | None = None
        self._no_schemas: set[str] = set()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL to give the client, e.g. ``http://127.0.0.1:PORT/v1``."""
        if self._httpd is None:
            raise RuntimeError("the OpenAI server has not been started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of the chat-completion bodies received so far, oldest first."""
        with self._lock:
            return copy.deepcopy(self._requests)

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        """A copy of the ``/v1/embeddings`` bodies received so far, oldest first."""
        with self._lock:
            return copy.deepcopy(self._embedding_requests)

    def start(self) -> None:
        """Bind a free port on 127.0.0.1 and serve from a daemon thread."""
        if self._httpd is not None:
            return
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and drop open connections, so pooled client connections fail too."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> OpenAIServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def fail(
        self, status: int, *, times: int = 1, model: str | None = None, retry_after: float | None = None
    ) -> None:
        """Answer the next ``times`` chat completions (naming ``model``, if given) with ``status``.

        The body is an OpenAI-style ``{"error": {...}}``; ``retry_after`` is sent as a
        ``retry-after`` header. Several calls queue up; each request uses the oldest match.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"not an error status: {status}")
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        with self._lock:
            self._failures.append(_Failure(status, times, model, retry_after))

    def reply(self, model: str, text: str) -> None:
        """Answer requests naming ``model`` with ``text`` instead of the echo."""
        with self._lock:
            self._replies[model] = text

    def call_tool(self, name: str, arguments: str) -> None:
        """Answer the next request offering tools with a call of ``name`` (``arguments``: JSON text)."""
        with self._lock:
            self._tool_calls.append((name, arguments))

    def respond_with(self, responder: Responder | None) -> None:
        """Answer each request as ``responder(body)`` says, unless a failure, a queued tool call or a
        canned reply comes first; ``None`` from it (or no responder) leaves the echo."""
        with self._lock:
            self._responder = responder

    def refuse_json_schema(self, model: str) -> None:
        """Answer 400 to requests for ``model`` with a ``json_schema`` response format."""
        with self._lock:
            self._no_schemas.add(model)

    def clear(self) -> None:
        """Forget recorded requests, pending failures, canned replies, refusals and the responder."""
        with self._lock:
            self._responder = None
            self._no_schemas.clear()
            self._requests.clear()
            self._embedding_requests.clear()
            self._failures.clear()
            self._replies.clear()
            self._tool_calls.clear()

    def _record(self, body: dict[str, Any]) -> tuple[_Failure | None, str, list[tuple[str, str]]]:
        """Record ``body``; return the failure it must get, if any, the reply text and any tool calls."""
        model = body.get("model")
        messages = body.get("messages")
        with self._lock:
            self._requests.append(body)
            failure = next((f for f in self._failures if f.model in (None, model)), None)
            if failure is not None:
                failure.times -= 1
                if failure.times == 0:
                    self._failures.remove(failure)
            reply = self._replies.get(model) if isinstance(model, str) else None
            tool_calls = []
            if failure is None and body.get("tools") and self._tool_calls:
                tool_calls.append(self._tool_calls.pop(0))
            responder = self._responder
        if failure is None and not tool_calls and reply is None and responder is not None:
            answer = responder(body)
            if answer is not None:
                reply, tool_calls = answer.text, list(answer.tool_calls)
        if reply is None:
            last = messages[-1] if isinstance(messages, list) and messages else None
            if isinstance(last, dict) and last.get("role") == "tool":
                reply = "tool said: " + _text_of(last.get("content"))
            else:
                reply = "echo: " + _last_user_text(messages)
        return failure, reply, tool_calls

    def latency_for(self, body: object) -> float:
        """The seconds a request with this body waits (the same for the same body)."""
        latency = self.latency
        if isinstance(latency, tuple):
            low, high = latency
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
            return low + (high - low) * int.from_bytes(digest[:8], "big") / 2**64
        return latency

    def _wait_latency(self, body: object = None) -> None:
        latency = self.latency_for(body)
        if latency > 0:
            self._stopping.wait(latency)

    def _next_id(self) -> str:
        return f"chatcmpl-{next(self._ids):06d}"


class _HTTPServer(ThreadingHTTPServer):
    """The stdlib server, knowing its owner and the connections it has open."""

    daemon_threads = True

    def __init__(self, owner: OpenAIServer) -> None:
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down keep-alive connections whose handler threads would otherwise linger."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # the client closed it already
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal in tests (cancelled streams, stop()).
        if not isinstance(sys.exception(), OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    # Idle keep-alive connections give up after this long rather than pinning a thread.
    timeout = 30
    # Headers and body go out in separate writes; with Nagle's algorithm that costs a delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        owner = self.server.owner
        if self.path.rstrip("/") != "/v1/models":
            self._send_error(404, f"Unknown request URL: GET {self.path}")
            return
        owner._wait_latency()
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": "hivewire-tests"} for model in _MODELS
        ]
        self._send_json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        owner = self.server.owner
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if owner.embeddings and self.path.rstrip("/") == "/v1/embeddings":
            self._embed(raw)
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_error(404, f"Unknown request URL: POST {self.path}")
            return
        body = self._json_object(raw)
        if body is None:
            return
        refusal = _refusal(body)
        response_format = body.get("response_format")
        with owner._lock:
            no_schemas = body.get("model") in owner._no_schemas
        if no_schemas and isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            refusal = "Invalid parameter: 'response_format' of type 'json_schema' is not supported."
        if refusal is not None:
            owner._record(body)
            self._send_error(400, refusal)
            return
        failure, text, tool_calls = owner._record(body)
        owner._wait_latency(body)
        if failure is not None:
            headers = {} if failure.retry_after is None else {"retry-after": _seconds(failure.retry_after)}
            self._send_error(failure.status, f"Simulated failure {failure.status}", headers)
            return
        model = str(body.get("model", ""))
        calls = [
            {"id": f"call_{owner._next_id()[9:]}", "type": "function", "name": name, "arguments": arguments}
            for name, arguments in tool_calls
        ]
        if calls:
            text = ""
        usage = {
            "prompt_tokens": _count_prompt_words(body.get("messages")),
            "completion_tokens": len(text.split()),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            self._stream(owner._next_id(), model, text, usage if include_usage else None, calls)
            return
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        finish_reason = "stop"
        if calls:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
                for call in calls
            ]
            finish_reason = "tool_calls"
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
        completion = {
            "id": owner._next_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": usage,
            "system_fingerprint": None,
        }
        self._send_json(200, completion)

    def _json_object(self, raw: bytes) -> dict[str, Any] | None:
        """The request body as a JSON object, or ``None`` after answering 400 as OpenAI does."""
        try:
            body = json.loads(raw)
        except ValueError as error:
            self._send_error(400, f"We could not parse the JSON body of your request: {error}")
            return None
        if not isinstance(body, dict):
            self._send_error(400, "The request body must be a JSON object")
            return None
        return body

    def _embed(self, raw: bytes) -> None:
        owner = self.server.owner
        body = self._json_object(raw)
        if body is None:
            return
        with owner._lock:
            owner._embedding_requests.append(body)
        owner._wait_latency(body)
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            self._send_error(400, "'input' must be a non-empty string or a list of non-empty strings")
            return
        dimensions = body.get("dimensions", _EMBEDDING_DIMENSIONS)
        if not isinstance(dimensions, int) or dimensions < 1:
            self._send_error(400, f"'dimensions' must be a positive integer, not {dimensions!r}")
            return
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = _hashed_vector(text, dimensions)
            encoded: object = (
                base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(text.split()) for text in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        self._send_json(200, {"object": "list", "data": data, "model": body.get("model"), "usage": usage})

    def _stream(
        self,
        completion_id: str,
        model: str,
        text: str,
        usage: dict[str, int] | None,
        calls: list[dict[str, str]],
    ) -> None:
        """Send the reply as Server-Sent Events in a chunked body, one write (and packet) per event."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", completion_id)
        self.end_headers()
        base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        # The real API sends "usage": null on every chunk but the last when usage is asked for.
        extra: dict[str, Any] = {"usage": None} if usage is not None else {}

        def choice(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

        if calls:
            for index, call in enumerate(calls):
                # As the real API: each call's id and name first, then its arguments in pieces.
                first = {"index": index, "id": call["id"], "type": "function"}
                start = {**first, "function": {"name": call["name"], "arguments": ""}}
                delta: dict[str, Any] = {"tool_calls": [start]}
                if index == 0:
                    delta = {"role": "assistant", "content": None, **delta}
                self._write_event({**base, "choices": [choice(delta, None)], **extra})
                arguments = call["arguments"]
                for at in range(0, len(arguments), 8):
                    piece = {"index": index, "function": {"arguments": arguments[at : at + 8]}}
                    self._write_event({**base, "choices": [choice({"tool_calls": [piece]}, None)], **extra})
            self._write_event({**base, "choices": [choice({}, "tool_calls")], **extra})
        else:
            pieces = _PIECE.findall(text) or [text]
            for number, piece_text in enumerate(pieces):
                if number and self.server.owner.token_delay > 0:
                    self.server.owner._stopping.wait(self.server.owner.token_delay)
                delta = (
                    {"role": "assistant", "content": piece_text} if number == 0 else {"content": piece_text}
                )
                self._write_event({**base, "choices": [choice(delta, None)], **extra})
            self._write_event({**base, "choices": [choice({}, "stop")], **extra})
        if usage is not None:
            self._write_event({**base, "choices": [], "usage": usage})
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")  # the last chunk: the body is complete and the connection reusable

    def _write_event(self, data: dict[str, Any]) -> None:
        self._write_chunk(b"data: " + json.dumps(data).encode() + b"\n\n")

    def _write_chunk(self, data: bytes) -> None:
        # wfile is unbuffered, so each chunk leaves as it is written.
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _send_json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        content = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(content)

    def _send_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        kind, code = _ERROR_KINDS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None)
        )
        error = {"message": message, "type": kind, "param": None, "code": code}
        self._send_json(status, {"error": error}, headers)


def _refusal(body: dict[str, Any]) -> str | None:
    """Why the real API would answer 400 to what this server checks: tool and schema shapes, tool messages."""
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            return "Missing required parameter: 'tools[0].function.name'."
        refusal = _object_schema_refusal(function.get("parameters", {"type": "object"}))
        if refusal is not None:
            return f"Invalid schema for function '{function['name']}': {refusal}"
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        refusal = _object_schema_refusal(schema)
        if refusal is not None:
            return f"Invalid schema for response_format: {refusal}"
    called: set[str] = set()
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                called.add(call["id"])
        if message.get("role") == "tool" and message.get("tool_call_id") not in called:
            return (
                "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                "message with 'tool_calls'."
            )
    return None


def _object_schema_refusal(schema: object) -> str | None:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind != "object":
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{kind}\"'."
    return None


def _text_of(content: object) -> str:
    """The text of a message's content: a string, or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text"
        ]
        return " ".join(text for text in texts if isinstance(text, str))
    return ""


def _last_user_text(messages: object) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _count_prompt_words(messages: object) -> int:
    if not isinstance(messages, list):
        return 0
    return sum(len(_text_of(m.get("content")).split()) for m in messages if isinstance(m, dict))


def _hashed_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector with one signed component per word (hashed): shared words make texts close."""
    vector = [0.0] * dimensions
    words = _WORD.findall(text.lower()) or [text]
    for word in words:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        slot = int.from_bytes(digest[:4], "little") % dimensions
        vector[slot] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


def _seconds(value: float) -> str:
    """``retry-after`` as the API writes it: whole seconds without a decimal point."""
    return str(int(value)) if float(value).is_integer() else str(value)
