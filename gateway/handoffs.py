"""The hand-off queue over HTTP: conversations flagged for a person, and a person's reply into one."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents.handoff import HANDOFF_KEY, Handoff
from agents.mesh import Mesh
from bus.a2a import Message
from gateway.guard import Guard
from gateway.http import json_response, read_json
from gateway.problems import Problem
from gateway.settings import GatewaySettings
from gateway.turns import Conversations

__all__ = ["FlaggedConversation", "HandoffQueue", "PersonReply"]

_STATUSES = ("open", "handled", "all")


class FlaggedConversation(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A conversation in the hand-off queue."""

    conversation_id: str
    handoff: Handoff


class PersonReply(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A person's answer into a conversation, sent as its agent."""

    text: str
    author: str = "support"


class HandoffQueue:
    """``GET /v1/handoffs`` and ``POST /v1/conversations/{cid}/replies``."""

    def __init__(
        self, settings: GatewaySettings, mesh: Mesh, guard: Guard, conversations: Conversations
    ) -> None:
        self._settings = settings
        self._mesh = mesh
        self._guard = guard
        self._conversations = conversations

    def routes(self) -> list[Route]:
        """The queue's routes."""
        return [
            Route("/v1/handoffs", self.list_handoffs, methods=["GET"]),
            Route("/v1/conversations/{cid}/replies", self.reply, methods=["POST"]),
        ]

    async def list_handoffs(self, request: Request) -> Response:
        """The tenant's flagged conversations, newest first (``?status=open|handled|all``, default open)."""
        admitted = await self._guard.admit(request)
        status = request.query_params.get("status", "open")
        if status not in _STATUSES:
            raise Problem(400, "bad-status", "Invalid status", f"status is one of {', '.join(_STATUSES)}")
        found = await self._mesh.state_everywhere(admitted.tenant, HANDOFF_KEY, Handoff)
        flagged = [
            FlaggedConversation(conversation_id=cid, handoff=versioned.value)
            for cid, versioned in found.items()
            if status == "all" or versioned.value.status == status
        ]
        flagged.sort(key=lambda item: item.handoff.at, reverse=True)
        return json_response(flagged, headers=admitted.headers)

    async def reply(self, request: Request) -> Response:
        """A person answers as the conversation's agent: the reply joins its events and history."""
        admitted = await self._guard.admit(request)
        conversation = await self._conversations.get(admitted.tenant, request.path_params["cid"])
        body = await read_json(request, PersonReply, self._settings.gateway_max_body)
        if not body.text.strip():
            raise Problem(422, "invalid-body", "Empty reply", "'text' is empty")
        if not body.author.strip() or len(body.author) > 64:
            raise Problem(422, "invalid-body", "Invalid author", "'author' is 1 to 64 characters")
        reply: Message = await self._conversations.reply_as_person(
            admitted.tenant, conversation, body.text, body.author.strip()
        )
        return json_response(reply, 201, admitted.headers)
