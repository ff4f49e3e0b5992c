"""Where a reply carries the model spend of the request that produced it."""

from __future__ import annotations

from typing import Any

import msgspec

from agents.llm.messages import Usage
from bus.a2a import Message

__all__ = ["USAGE_KEY", "spend_in", "spend_of"]

# Key in the reply message's metadata: {model: {"inputTokens", "outputTokens", "cost"}}.
# Durable task records copy it to their metadata as "usage".
USAGE_KEY = "hivewire.usage"


def spend_in(usage: Any) -> dict[str, Usage]:
    """The spend per model of a usage record (``{}`` for none or a malformed one)."""
    if not usage:  # most replies: no model was called
        return {}
    try:
        return msgspec.convert(usage, dict[str, Usage])
    except msgspec.ValidationError:
        return {}


def spend_of(message: Message) -> dict[str, Usage]:
    """The spend per model a reply reports in its metadata."""
    return spend_in((message.metadata or {}).get(USAGE_KEY))
