"""``hivewire ask "question"``: a streamed answer from a running gateway, in the terminal.

It talks to ``--url``, else ``HIVEWIRE_GATEWAY_URL``, else the gateway of the
mesh ``hivewire up`` runs from the data folder (its state file), with
``HIVEWIRE_API_KEY`` or the key ``hivewire up`` made. The question is the
argument, or standard input (``-``, or none). Tokens print as they arrive; the
agent's progress (classification, hand-offs, notes and alerts) goes to standard
error; the sources and a hand-off flag follow the answer.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any

from bus import local
from gateway.local import find_gateway

__all__ = ["run"]


class AskError(Exception):
    """Something the user can fix: said in one line."""


def run(args: argparse.Namespace) -> int:
    """``hivewire ask`` (registered in :mod:`gateway.cli`)."""
    base, key, data_dir = find_gateway(args.url, args.data_dir)
    if not key:
        print(
            f"hivewire ask: no API key; run `hivewire up` (it records one in {local.state_path(data_dir)}), "
            "or set HIVEWIRE_API_KEY",
            file=sys.stderr,
        )
        return 2
    question = _question(args.question)
    if not question:
        print("hivewire ask: the question is empty", file=sys.stderr)
        return 2
    try:
        client = _Client(base, key)
    except AskError as exc:
        print(f"hivewire ask: {exc}", file=sys.stderr)
        return 2
    try:
        conversation = args.conversation
        if conversation is None:
            body = {name: value for name, value in (("agent", args.agent), ("skill", args.skill)) if value}
            conversation = client.json("POST", "/v1/conversations", body)["id"]
        final = None
        streamed = ""
        for event, data in client.events(f"/v1/conversations/{conversation}/messages", {"text": question}):
            if event == "artifact":
                for part in data["artifactUpdate"]["artifact"]["parts"]:
                    if "text" in part:
                        print(part["text"], end="", flush=True)
                        streamed += part["text"]
            elif event == "status":
                update = data["statusUpdate"]
                if client.task_id is not None and update.get("taskId") != client.task_id:
                    continue  # another task of the conversation (a durable sub-task, say)
                if update["status"]["state"] in _TERMINAL:
                    final = update["status"]
                elif note := _text(update["status"].get("message")):
                    print(f"[{note}]", file=sys.stderr, flush=True)
    except AskError as exc:
        print(f"hivewire ask: {exc}", file=sys.stderr)
        return 1
    return _finish(final, streamed, conversation)


def _question(given: str) -> str:
    """The question: the argument, or standard input for ``-`` (a pipe, a file, or typed until EOF)."""
    return (sys.stdin.read() if given == "-" else given).strip()


_TERMINAL = {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"}


def _text(message: dict[str, Any] | None) -> str:
    return "".join(part.get("text", "") for part in (message or {}).get("parts", []))


def _finish(final: dict[str, Any] | None, streamed: str, conversation: str) -> int:
    if final is None:
        print("\nhivewire ask: the stream ended before the answer did", file=sys.stderr)
        return 1
    message = final.get("message") or {}
    if final["state"] != "TASK_STATE_COMPLETED":
        problem = (message.get("metadata") or {}).get("problem", {})
        print(
            f"\nhivewire ask: {problem.get('title', final['state'])}: {problem.get('detail', '')}",
            file=sys.stderr,
        )
        return 1
    text = _text(message)
    # What the reply adds after the streamed tokens (or all of it, if nothing streamed).
    print(text[len(streamed) :] if text.startswith(streamed) else ("" if streamed else text), end="")
    desk = (message.get("metadata") or {}).get("hivewire.desk")
    print()
    if desk:
        print(
            f"\n[intent: {desk['intent']}, sentiment: {desk['sentiment']}"
            + (", handed off to a human" if desk["handoff"] else "")
            + "]",
            file=sys.stderr,
        )
    print(f"[conversation {conversation}: continue with --conversation {conversation}]", file=sys.stderr)
    _print_trace(message)
    return 0


def _print_trace(message: dict[str, Any]) -> None:
    """Where to see the turn's spans, when it was traced."""
    trace_id = (message.get("metadata") or {}).get("hivewire.trace")
    if isinstance(trace_id, str):
        print(f"[trace {trace_id}: see it with `hivewire traces {trace_id}`]", file=sys.stderr)


class _Client:
    def __init__(self, base: str, key: str) -> None:
        parsed = urllib.parse.urlsplit(base)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise AskError(f"{base!r} is not an http(s) URL")
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.task_id: str | None = None  # the turn's, once the gateway has said it

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=120)

    def _send(
        self, method: str, path: str, body: dict[str, Any], accept: str
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        connection = self._connection()
        try:
            connection.request(method, path, json.dumps(body), {**self._headers, "Accept": accept})
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            # Nothing listening, or something that does not speak HTTP (a NATS port, say).
            connection.close()
            raise AskError(
                f"cannot reach a gateway at {self._host}:{self._port} ({exc or type(exc).__name__})"
            ) from None
        if response.status >= 400:
            try:
                problem = json.loads(response.read())
                detail = f"{problem.get('title')}: {problem.get('detail', '')}"
            except ValueError:
                detail = f"HTTP {response.status}"
            connection.close()
            raise AskError(detail)
        return connection, response

    def json(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        connection, response = self._send(method, path, body, "application/json")
        try:
            found = json.loads(response.read())
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise AskError(f"{self._host}:{self._port} did not answer as a gateway does ({exc})") from None
        finally:
            connection.close()
        if not isinstance(found, dict):
            raise AskError(f"{self._host}:{self._port} did not answer as a gateway does")
        return found

    def events(self, path: str, body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        connection, response = self._send("POST", path, body, "text/event-stream")
        self.task_id = response.getheader("Hivewire-Task-Id")
        try:
            event, data = "message", ""
            for raw in _lines(response):
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data:
                        yield event, json.loads(data)
                    event, data = "message", ""
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data += line[6:]
        except ValueError as exc:
            raise AskError(f"the gateway sent an event that is not JSON ({exc})") from None
        finally:
            connection.close()


def _lines(response: http.client.HTTPResponse) -> Iterator[bytes]:
    try:
        yield from response
    except (OSError, http.client.HTTPException) as exc:
        raise AskError(f"the gateway's stream broke off ({exc or type(exc).__name__})") from None
