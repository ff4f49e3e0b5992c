"""A model call in the chat-completions format: the prompt, tools, sampling and formats it sends, and
the pieces of the answer it reads back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from agents.errors import StructuredOutputError
from agents.llm.messages import ChatMessage, Completion, Passage, Tool, ToolCall, object_schema
from agents.llm.models import Model

__all__ = [
    "CITE",
    "ToolCallParts",
    "json_format",
    "json_object_format",
    "parse_json",
    "prompt",
    "sampling",
    "tool_params",
    "type_name",
    "words",
]

T = TypeVar("T")

# Said after the passages, where small models still read it: "[n]" itself was copied literally.
CITE = (
    "Answer from these passages only. Cite the passage each fact comes from by its number in "
    "brackets, like [1] or [2]. If the passages do not contain the answer, say that the knowledge "
    "base does not cover it; do not guess."
)


def json_format(out_type: type[Any]) -> dict[str, Any]:
    """The ``response_format`` that asks for JSON matching ``out_type``'s schema."""
    return {
        "type": "json_schema",
        "json_schema": {"name": type_name(out_type), "schema": object_schema(out_type)},
    }


def json_object_format(schema: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """JSON mode for endpoints that refuse schemas: the ``response_format`` and the prompt's instruction."""
    instruction = (
        "Reply with one JSON object that follows this JSON schema:\n" + msgspec.json.encode(schema).decode()
    )
    return {"type": "json_object"}, instruction


def parse_json(completion: Completion, out_type: type[T]) -> T:
    """Decode a completion asked for with :func:`json_format`.

    Raises:
        StructuredOutputError: it is not valid JSON of ``out_type``.
    """
    try:
        return msgspec.json.decode(_strip_fences(completion.text), type=out_type)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise StructuredOutputError(
            completion.model, type_name(out_type), str(exc), completion.text
        ) from None


def type_name(out_type: type[Any]) -> str:
    return str(getattr(out_type, "__name__", "Output"))


def prompt(
    messages: Sequence[ChatMessage], passages: Sequence[Passage], *, instruction: str = ""
) -> list[Any]:
    """The request's ``messages``: the passages, numbered, and ``instruction`` join the first system
    message (one system message: some chat templates take no other), or open the chat as one."""
    extra = []
    if passages:
        numbered = "\n\n".join(f"[{n}] {p.label}:\n{p.text}" for n, p in enumerate(passages, 1))
        extra.append(f"Passages:\n\n{numbered}\n\n{CITE}")
    if instruction:
        extra.append(instruction)
    wire = [_chat_message(m) for m in messages]
    if extra:
        if wire and wire[0]["role"] == "system":
            wire[0]["content"] = "\n\n".join([wire[0]["content"], *extra])
        else:
            wire.insert(0, {"role": "system", "content": "\n\n".join(extra)})
    return wire


def _chat_message(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def tool_params(tools: Sequence[Tool], tool_choice: str | None) -> dict[str, Any]:
    """The request's ``tools`` and ``tool_choice`` (a tool's name forces that tool)."""
    offered: dict[str, Any] = {}
    if tools:
        offered["tools"] = [tool.to_openai() for tool in tools]
    if tool_choice is not None:
        if tool_choice in ("auto", "none", "required"):
            offered["tool_choice"] = tool_choice
        else:
            offered["tool_choice"] = {"type": "function", "function": {"name": tool_choice}}
    return offered


class ToolCallParts:
    """Tool calls of a streamed answer, put together from their pieces (keyed by index)."""

    def __init__(self) -> None:
        self._calls: dict[int, tuple[str, str, list[str]]] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(self, deltas: Sequence[Any]) -> None:
        for delta in deltas:
            call_id, name, arguments = self._calls.get(delta.index, ("", "", []))
            function = delta.function
            if function is not None:
                name = name or function.name or ""  # sent whole, with the call's first piece
                if function.arguments:
                    arguments.append(function.arguments)
            self._calls[delta.index] = (delta.id or call_id, name, arguments)

    def assembled(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(id=call_id, name=name, arguments="".join(arguments))
            for _, (call_id, name, arguments) in sorted(self._calls.items())
        )


def sampling(model: Model) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if model.temperature is not None:
        params["temperature"] = model.temperature
    if model.max_tokens is not None:
        params["max_tokens"] = model.max_tokens
    if model.top_p is not None:
        params["top_p"] = model.top_p
    return params


def words(text: str) -> list[str]:
    """Split text into stream-sized pieces that join back to the same text."""
    pieces = text.split(" ")
    return [piece + " " for piece in pieces[:-1]] + [pieces[-1]] if pieces else []


def _strip_fences(text: str) -> str:
    """Models often wrap JSON in a Markdown code fence; the fence is not part of the answer."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped.strip()
