"""What goes into a model call and what comes out: chat messages, passages, usage, completions."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["ChatMessage", "Completion", "Passage", "Usage"]

Role = Literal["system", "user", "assistant"]


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message of a chat with a model."""

    role: Role
    content: str

    @classmethod
    def system(cls, content: str) -> ChatMessage:
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> ChatMessage:
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str) -> ChatMessage:
        return cls(role="assistant", content=content)


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
    """Tokens a call consumed and what they cost."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost=self.cost + other.cost,
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
    """

    text: str
    model: str
    usage: Usage = msgspec.field(default_factory=Usage)
    cached: bool = False
    offline: bool = False
