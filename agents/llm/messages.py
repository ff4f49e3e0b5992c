"""What goes into a model call and what comes out: chat messages, tools, passages, usage, completions."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec

from agents.errors import StructuredOutputError

__all__ = [
    "ChatMessage",
    "Completion",
    "Passage",
    "Tool",
    "ToolCall",
    "Usage",
    "estimate_tokens",
    "object_schema",
]

Role = Literal["system", "user", "assistant", "tool"]

T = TypeVar("T")


def object_schema(type_: type[Any]) -> dict[str, Any]:
    """``type_``'s JSON schema with its own definition at the root, as model APIs want it.

    msgspec puts every struct under ``$defs`` and the root is a ``$ref``; OpenAI's
    tool parameters and ``json_schema`` response formats need an object at the root.
    Made once per type (it goes into every request and cache key that offers the
    type, and costs far more than a cache hit): the dict is shared, read it only.
    """
    schema = _SCHEMAS.get(type_)
    if schema is None:
        schema = _SCHEMAS[type_] = _root_schema(type_)
    return schema


# The schemas made so far, by type: as many as the tools and output types a program has.
_SCHEMAS: dict[Any, dict[str, Any]] = {}


def _root_schema(type_: type[Any]) -> dict[str, Any]:
    (root,), components = msgspec.json.schema_components([type_], ref_template="#/$defs/{name}")
    name = root.get("$ref", "").rpartition("/")[2]
    if not name:
        return root
    schema = dict(components.pop(name))
    if components:
        schema["$defs"] = components
    return schema


class Tool(msgspec.Struct, frozen=True, kw_only=True):
    """A function the model may ask to call, with typed arguments.

    Attributes:
        name: what the model calls it (letters, digits, ``_`` and ``-``).
        description: when to use it; the model reads this.
        parameters: a msgspec type (usually a ``Struct``) its arguments decode to.
        schema: the arguments' JSON schema when it is not made from ``parameters`` (a tool
            described by someone else, such as an MCP server's; then ``parameters`` is a dict).
    """

    name: str
    description: str
    parameters: type[Any]
    schema: dict[str, Any] | None = None

    def json_schema(self) -> dict[str, Any]:
        """The arguments' JSON schema, an object at the root (shared: read it only)."""
        return self.schema if self.schema is not None else object_schema(self.parameters)

    def to_openai(self) -> dict[str, Any]:
        """The ``tools`` entry of a chat-completions request."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.json_schema(),
            },
        }


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """The model asks for ``name`` to be called with ``arguments`` (a JSON text)."""

    id: str
    name: str
    arguments: str

    def decode(self, type_: type[T]) -> T:
        """The arguments as ``type_`` (the tool's ``parameters``).

        Raises:
            StructuredOutputError: the model's arguments are not valid JSON of ``type_``.
        """
        try:
            return msgspec.json.decode(self.arguments or "{}", type=type_)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            expected = f"{getattr(type_, '__name__', 'arguments')} for tool {self.name}"
            raise StructuredOutputError("", expected, str(exc), self.arguments) from None


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One message of a chat with a model.

    An assistant message may carry the tool calls the model asked for; a
    ``tool`` message answers one of them (``tool_call_id``).
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @classmethod
    def system(cls, content: str) -> ChatMessage:
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> ChatMessage:
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str, tool_calls: tuple[ToolCall, ...] = ()) -> ChatMessage:
        return cls(role="assistant", content=content, tool_calls=tool_calls)

    @classmethod
    def tool(cls, call: ToolCall, result: str) -> ChatMessage:
        """The result of ``call``, to send back to the model."""
        return cls(role="tool", content=result, tool_call_id=call.id)


# Tokens per message beyond its text (role and separators), as chat formats count them.
_MESSAGE_OVERHEAD = 4


def estimate_tokens(message: ChatMessage) -> int:
    """A tokenizer-free estimate: about four characters per token for English text."""
    return _MESSAGE_OVERHEAD + (len(message.content) + 3) // 4


class Passage(msgspec.Struct, frozen=True, kw_only=True):
    """A piece of retrieved knowledge the answer should stand on (and cite)."""

    text: str
    source: str = ""
    title: str = ""
    score: float | None = None

    @property
    def label(self) -> str:
        """How to cite it: "Title (source)", or whichever of the two it has."""
        if self.title and self.source:
            return f"{self.title} ({self.source})"
        return self.title or self.source or "passage"


class Usage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Tokens a call consumed, what they cost, and how tools and structured output were asked for.

    ``modes`` names the mechanisms used, e.g. ``structured:json_schema`` (the
    endpoint's schema-constrained output), ``structured:json_object`` (it
    refused schemas: JSON mode, the schema in the prompt), ``tools:native`` or
    ``tools:json`` (a model that cannot call tools chose one through
    schema-constrained JSON instead).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    modes: tuple[str, ...] = ()

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost=self.cost + other.cost,
            modes=tuple(sorted({*self.modes, *other.modes})),
        )

    def __sub__(self, other: Usage) -> Usage:
        """The tokens and cost spent since ``other`` was the total (modes are not subtracted)."""
        return Usage(
            input_tokens=self.input_tokens - other.input_tokens,
            output_tokens=self.output_tokens - other.output_tokens,
            cost=self.cost - other.cost,
        )


class Completion(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A model's answer.

    Attributes:
        text: the answer.
        model: the model that produced it (the fallback's name if it answered;
            ``hivewire-offline-extractive`` in offline mode).
        usage: tokens and cost of this call (zero when served from the cache).
        cached: served from the response cache, not by the model.
        offline: no model is configured: an extractive answer from the passages.
        tool_calls: the tools the model asks to be called (then ``text`` is often empty).
        truncated: the answer stopped at the model's ``max_tokens`` (``finish_reason`` ``length``).
    """

    text: str
    model: str
    usage: Usage = msgspec.field(default_factory=Usage)
    cached: bool = False
    offline: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    truncated: bool = False

    @property
    def message(self) -> ChatMessage:
        """This answer as the assistant's message of the chat (tool calls included)."""
        return ChatMessage.assistant(self.text, self.tool_calls)
