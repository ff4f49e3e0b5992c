"""Tool calls for models that cannot make them: the choice as schema-constrained JSON.

Small open models (and their chat templates) often have no tool calling: a
request offering tools comes back as prose. With ``HIVEWIRE_LLM_TOOL_CALLS=json``
(which ``hivewire up --model`` sets for such a model) the client sends no
``tools`` at all. It describes them in the system message and asks, through a
``json_schema`` response format that the endpoint enforces while sampling
(llama.cpp does), for ``{"tool": <name>, "arguments": {...}}`` or
``{"answer": "..."}``. The reply is read back into the same :class:`Completion`
a native tool call gives, so skills do not change; its usage says
``tools:json``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import msgspec

from agents.errors import StructuredOutputError
from agents.llm.messages import ChatMessage, Completion, Tool, ToolCall

__all__ = ["as_text", "instruction", "read", "response_format"]


def instruction(tools: Sequence[Tool], tool_choice: str | None) -> str:
    """What the model is told about the tools it may choose, and how to answer."""
    offered = _offered(tools, tool_choice)
    listed = "\n".join(f"- {tool.name}: {tool.description}" for tool in offered)
    how = 'reply with JSON: {"tool": "<name>", "arguments": {...}} to call one'
    if _may_answer(tool_choice):
        how += ', or {"answer": "<your reply>"} to answer without a tool'
    return f"You can call these tools:\n{listed}\nTo use them, {how}."


def response_format(tools: Sequence[Tool], tool_choice: str | None) -> dict[str, Any]:
    """A ``json_schema`` response format allowing exactly the choices the request permits."""
    choices: list[dict[str, Any]] = []
    definitions: dict[str, Any] = {}
    for tool in _offered(tools, tool_choice):
        parameters = dict(tool.json_schema())
        definitions.update(parameters.pop("$defs", {}))  # references point at the document's root
        choices.append(
            {
                "type": "object",
                "properties": {"tool": {"const": tool.name}, "arguments": parameters},
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    if _may_answer(tool_choice):
        choices.append(
            {
                "type": "object",
                "properties": {"answer": {"type": "string"}},
                "required": ["answer"],
                "additionalProperties": False,
            }
        )
    schema: dict[str, Any] = {"type": "object", "anyOf": choices}
    if definitions:
        schema["$defs"] = definitions
    return {"type": "json_schema", "json_schema": {"name": "ToolChoice", "schema": schema}}


def read(completion: Completion) -> Completion:
    """The model's JSON choice as a completion: ``tool_calls``, or the answer's ``text``.

    Raises:
        StructuredOutputError: the reply is not one of the permitted choices.
    """
    try:
        choice = msgspec.json.decode(completion.text, type=_Choice)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise StructuredOutputError(completion.model, "tool choice", str(exc), completion.text) from None
    if choice.tool is not None:
        call = ToolCall(
            id="call_" + secrets.token_hex(8),
            name=choice.tool,
            arguments=msgspec.json.encode(choice.arguments or {}).decode(),
        )
        return msgspec.structs.replace(completion, text="", tool_calls=(call,))
    return msgspec.structs.replace(completion, text=choice.answer or "")


def as_text(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The chat with earlier tool calls and results as plain text: a template without tools has no
    place for them (some refuse a ``tool`` message outright)."""
    names: dict[str, str] = {}
    plain: list[ChatMessage] = []
    for message in messages:
        if message.tool_calls:
            said = [message.content] if message.content else []
            for call in message.tool_calls:
                names[call.id] = call.name
                said.append(f'{{"tool": "{call.name}", "arguments": {call.arguments or "{}"}}}')
            plain.append(ChatMessage.assistant("\n".join(said)))
        elif message.role == "tool":
            name = names.get(message.tool_call_id or "", "the tool")
            plain.append(ChatMessage.user(f"Result of {name}: {message.content}"))
        else:
            plain.append(message)
    return plain


class _Choice(msgspec.Struct, frozen=True, kw_only=True):
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    answer: str | None = None


def _offered(tools: Sequence[Tool], tool_choice: str | None) -> list[Tool]:
    if tool_choice in (None, "auto", "required", "none"):
        return list(tools)
    return [tool for tool in tools if tool.name == tool_choice]


def _may_answer(tool_choice: str | None) -> bool:
    return tool_choice in (None, "auto")
