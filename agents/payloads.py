"""How typed skill inputs and outputs travel inside A2A messages.

A skill's input and output are Python types. On the wire every request and
reply is an A2A :class:`~bus.a2a.Message`, so any A2A client can call any skill:

* ``Message`` travels as itself;
* ``str`` travels as the message's text parts (a message with parts but no
  text is refused, not read as an empty text);
* anything else (a msgspec struct, a list, a dict...) travels as the first
  data part, whose JSON shape is the type's JSON schema (published on the card).
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import msgspec
from msgspec import UnsetType

from bus.a2a import Message, Part, Role, new_id

__all__ = ["from_message", "json_schema", "to_message"]

T = TypeVar("T")


def to_message(
    value: object,
    *,
    role: Role,
    context_id: str | None = None,
    task_id: str | None = None,
) -> Message:
    """Wrap ``value`` in an A2A message (a ``Message`` is returned with the ids filled in)."""
    if isinstance(value, Message):
        if value.context_id is not None or context_id is None:
            return value
        return msgspec.structs.replace(value, context_id=context_id, task_id=value.task_id or task_id)
    if isinstance(value, str):
        parts: tuple[Part, ...] = (Part.text_part(value),)
    else:
        parts = (Part.data_part(msgspec.to_builtins(value)),)
    return Message(message_id=new_id(), role=role, parts=parts, context_id=context_id, task_id=task_id)


def from_message(message: Message, value_type: type[T]) -> T:
    """Read a value of ``value_type`` out of ``message``.

    Raises:
        ValueError: the message carries nothing of that type (the reason says why).
    """
    if value_type is Message:
        return cast("T", message)
    if value_type is str:
        if message.parts and not any(isinstance(part.text, str) for part in message.parts):
            raise ValueError(f"expected text, got {_kinds(message)}")
        return cast("T", message.text)
    for part in message.parts:
        if not isinstance(part.data, UnsetType):
            try:
                return msgspec.convert(part.data, value_type)
            except msgspec.ValidationError as exc:
                raise ValueError(str(exc)) from None
    raise ValueError(f"expected a data part holding {_name(value_type)}, got {_kinds(message)}")


def json_schema(value_type: type[Any]) -> dict[str, Any]:
    """The JSON schema of what a message of ``value_type`` carries (for agent cards)."""
    if value_type is Message:
        return {"description": "any A2A message"}
    if value_type is str:
        return {"type": "string", "description": "the message's text"}
    return msgspec.json.schema(value_type)


def _name(value_type: type[Any]) -> str:
    return getattr(value_type, "__name__", repr(value_type))


def _kinds(message: Message) -> str:
    kinds = [part.kind for part in message.parts]
    return "parts " + ", ".join(kinds) if kinds else "no parts"
