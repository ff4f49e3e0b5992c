"""Hand-offs: a conversation flagged for a person, kept in its shared state until a person answers.

An agent that cannot (or should not) resolve a turn writes a :class:`Handoff`
under the key ``handoff`` of the conversation's state (the support desk's
triage does). The gateway's hand-off queue lists them; a person's reply into
the conversation marks the hand-off handled.
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec

__all__ = ["HANDOFF_KEY", "Handoff", "handled"]

HANDOFF_KEY = "handoff"


class Handoff(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Why a conversation needs a person, and whether one has answered."""

    reason: str
    question: str = ""
    at: float = 0.0
    status: Literal["open", "handled"] = "open"
    handled_by: str = ""
    handled_at: float = 0.0


def handled(handoff: Handoff, by: str) -> Handoff:
    """``handoff`` marked answered by ``by`` (unchanged if a person answered already)."""
    if handoff.status == "handled":
        return handoff
    return msgspec.structs.replace(handoff, status="handled", handled_by=by, handled_at=time.time())
