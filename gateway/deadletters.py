"""Dead letters over HTTP: a tenant's parked tasks, and replaying one (what ``hivewire dlq`` does)."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agents.mesh import Mesh
from bus.a2a import Task
from gateway.guard import Guard
from gateway.http import int_param, json_response
from gateway.problems import Problem

__all__ = ["DeadLetterPage", "DeadLetterRoutes", "ParkedTask", "Replayed"]


_MAX_SEQ = 2**64 - 1  # JetStream sequences are uint64


class ParkedTask(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A dead letter as the API lists it (``seq`` is what replay takes)."""

    seq: int
    agent: str
    skill: str | None
    task_id: str | None
    context_id: str | None
    reason: str
    deliveries: int
    failed_at: float
    replayable: bool
    # How often the task had been replayed before it was parked this time.
    replays: int = 0


class DeadLetterPage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Dead letters, oldest first; ``nextAfter`` continues the listing."""

    items: list[ParkedTask]
    next_after: int | None = None


class Replayed(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A replayed dead letter: its sequence and the task, queued again."""

    seq: int
    task: Task


class DeadLetterRoutes:
    """``GET /v1/dead-letters`` and ``POST /v1/dead-letters/{seq}/replay``."""

    def __init__(self, mesh: Mesh, guard: Guard) -> None:
        self._mesh = mesh
        self._guard = guard

    def routes(self) -> list[Route]:
        """The dead-letter routes."""
        return [
            Route("/v1/dead-letters", self.list_letters, methods=["GET"]),
            Route("/v1/dead-letters/{seq:int}/replay", self.replay, methods=["POST"]),
        ]

    async def list_letters(self, request: Request) -> Response:
        """The tenant's dead letters (``?agent=``, ``?limit=`` up to 200, ``?after=`` a sequence)."""
        admitted = await self._guard.admit(request)
        limit = int_param(request, "limit", 50, low=1, high=200)
        after = int_param(request, "after", 0, low=0)
        parked = await self._mesh.dead_letters.list(
            tenant=admitted.tenant, agent=request.query_params.get("agent"), limit=limit + 1, after=after
        )
        items = [
            ParkedTask(
                seq=p.seq,
                agent=p.letter.agent,
                skill=p.letter.request.skill if p.letter.request else None,
                task_id=p.letter.request.task_id if p.letter.request else None,
                context_id=p.letter.request.message.context_id if p.letter.request else None,
                reason=p.letter.reason,
                deliveries=p.letter.deliveries,
                failed_at=p.letter.failed_at,
                replayable=p.letter.request is not None,
                replays=p.letter.request.replays if p.letter.request else 0,
            )
            for p in parked[:limit]
        ]
        more = len(parked) > limit
        page = DeadLetterPage(items=items, next_after=items[-1].seq if more and items else None)
        return json_response(page, headers=admitted.headers)

    async def replay(self, request: Request) -> Response:
        """Queue the dead letter's task again; 404 if it is not the tenant's, 409 if it cannot run."""
        admitted = await self._guard.admit(request)
        seq: int = request.path_params["seq"]
        if not 0 < seq <= _MAX_SEQ:  # no stream sequence: the server would refuse to look
            raise Problem(404, "dead-letter-not-found", "No such dead letter", f"no dead letter {seq}")
        try:
            task = await self._mesh.dead_letters.replay(seq, self._mesh.tasks, tenant=admitted.tenant)
        except LookupError as exc:
            raise Problem(404, "dead-letter-not-found", "No such dead letter", str(exc)) from None
        except ValueError as exc:
            raise Problem(409, "not-replayable", "This dead letter cannot be replayed", str(exc)) from None
        return json_response(Replayed(seq=seq, task=task), headers=admitted.headers)
