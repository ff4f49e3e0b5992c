"""``hivewire ask "question"``: a streamed answer from a running gateway, in the terminal.

It talks to the gateway ``hivewire up`` started (``.hivewire/up.json``), or to
``HIVEWIRE_GATEWAY_URL`` with ``HIVEWIRE_API_KEY``. Tokens print as they
arrive; the agent's progress notes (and alerts) go to standard error; the
sources and a hand-off flag follow the answer.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any

from gateway.local import read_up

__all__ = ["run"]


class AskError(Exception):
    """Something the user can fix: said in one line."""


def run(args: argparse.Namespace) -> int:
    """``hivewire ask`` (registered in :mod:`gateway.cli`)."""
    up = read_up()
    base = args.url or os.environ.get("HIVEWIRE_GATEWAY_URL") or up.get("url")
    key = os.environ.get("HIVEWIRE_API_KEY") or up.get("apiKey")
    if not base or not key:
        print(
            "hivewire ask: no gateway found; run `hivewire up` here, or set HIVEWIRE_GATEWAY_URL and "
            "HIVEWIRE_API_KEY",
            file=sys.stderr,
        )
        return 2
    try:
        client = _Client(base, key)
        conversation = args.conversation
        if conversation is None:
            body = {"agent": args.agent} if args.agent else {}
            conversation = client.json("POST", "/v1/conversations", body)["id"]
        final = None
        streamed = ""
        for event, data in client.events(
            f"/v1/conversations/{conversation}/messages", {"text": args.question}
        ):
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
        except OSError as exc:
            connection.close()
            raise AskError(f"cannot reach the gateway at {self._host}:{self._port} ({exc})") from None
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
            found: dict[str, Any] = json.loads(response.read())
            return found
        finally:
            connection.close()

    def events(self, path: str, body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        connection, response = self._send("POST", path, body, "text/event-stream")
        self.task_id = response.getheader("Hivewire-Task-Id")
        try:
            event, data = "message", ""
            for raw in response:
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data:
                        yield event, json.loads(data)
                    event, data = "message", ""
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data += line[6:]
        finally:
            connection.close()
