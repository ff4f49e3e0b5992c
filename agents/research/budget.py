"""A run's budget and deadline, applied to every model call any agent makes for the run.

The run's spend lives in the conversation's shared state (``research-<run>``,
NATS key-value), which every agent of the run sees, whichever replica or
process it runs in. Before a model call the agent *holds* what the call would
cost at most (its prompt's estimated tokens plus the model's ``max_tokens``,
priced); a hold that would take spent plus held past the budget is refused
with :class:`BudgetExhausted`, so parallel analysts cannot overshoot together.
After the call the hold is replaced by what the call really spent. Every
update is a compare-and-set, retried on conflict.

The deadline is wall-clock time: model calls are cut off when it passes
(:class:`DeadlineReached`), so an agent stops in time and reports what it has.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar

import msgspec

from agents.context import Context
from agents.llm.messages import ChatMessage, Completion, Passage, Tool, Usage
from agents.research.errors import BudgetExhausted, DeadlineReached
from agents.research.messages import Budget

__all__ = ["RunGuard", "Spend"]

T = TypeVar("T")


class Spend(msgspec.Struct, frozen=True, kw_only=True):
    """What a run has spent, and what its calls in flight hold."""

    tokens: int = 0
    cost: float = 0.0
    held_tokens: int = 0
    held_cost: float = 0.0


class RunGuard:
    """One agent's view of a run's limits: hold, call, settle; stop at the deadline."""

    def __init__(
        self, ctx: Context, *, run: str, budget: Budget, deadline: float, cache: bool = True
    ) -> None:
        """Args:
        run: the run's id (its ledger's key in the conversation's state).
        budget: the run's limits (no ledger at all when it has none).
        deadline: wall-clock seconds after which no model call may still run.
        cache: pass model calls through the response cache (tenant-wide: research is deterministic).
        """
        self._ctx = ctx
        self._key = f"research-{run[:32]}"
        self.budget = budget
        self.deadline = deadline
        self._cache: bool | Literal["tenant"] = "tenant" if cache else False

    def remaining(self) -> float:
        """Seconds until the deadline (negative once it passed)."""
        return self.deadline - time.time()

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        use: str = "default",
        tools: Sequence[Tool] = (),
        tool_choice: str | None = None,
        passages: Sequence[Passage] = (),
    ) -> Completion:
        """``ctx.llm.complete`` within the run's budget and deadline.

        Raises:
            BudgetExhausted: the call could take the run past its budget (it is not made).
            DeadlineReached: the deadline passed before the answer came.
        """
        llm = self._ctx.llm
        ceiling = llm.ceiling(messages, use=use, passages=passages, tools=tools)
        return await self._within(
            ceiling,
            lambda: llm.complete(
                messages, use=use, tools=tools, tool_choice=tool_choice, passages=passages, cache=self._cache
            ),
            "a model call",
        )

    async def stream(
        self, messages: Sequence[ChatMessage], *, use: str = "default", on_token: Callable[[str], None]
    ) -> Completion:
        """Stream an answer to the conversation within the budget and deadline; ``on_token`` sees each token.

        Raises:
            BudgetExhausted, DeadlineReached: as :meth:`complete` (the tokens given out stay given).
        """
        llm = self._ctx.llm

        async def streamed() -> Completion:
            stream = await llm.stream(messages, use=use, cache=self._cache)
            async for token in stream:
                on_token(token)
            assert stream.completion is not None
            return stream.completion

        return await self._within(llm.ceiling(messages, use=use), streamed, "the report")

    async def structured(
        self, messages: Sequence[ChatMessage], out_type: type[T], *, use: str = "default"
    ) -> T:
        """``ctx.llm.structured`` within the budget and deadline (raises as :meth:`complete`)."""
        llm = self._ctx.llm
        return await self._within(
            llm.ceiling(messages, use=use),
            lambda: llm.structured(messages, out_type, use=use, cache=self._cache),
            "a model call",
        )

    async def spent(self) -> Spend:
        """The run's spend so far (nothing is recorded for a run without a budget)."""
        found = await self._ctx.state.get(self._key, Spend)
        return found.value if found is not None else Spend()

    async def _within(
        self,
        ceiling: Usage,
        call: Callable[[], Awaitable[T]],
        what: str,
    ) -> T:
        if self.remaining() <= 0:
            raise DeadlineReached(what)
        held = await self._hold(ceiling)
        # The turn's spend grows by what the call really costs (nothing for a cached answer);
        # an agent makes its run's model calls one at a time, so the difference is this call's.
        before = self._spend_total()
        try:
            result = await asyncio.wait_for(call(), self.remaining())
        except TimeoutError:
            raise DeadlineReached(what) from None
        finally:
            if held is not None:
                await self._settle(held, self._spend_total() - before)
        return result

    def _spend_total(self) -> Usage:
        return sum(self._ctx.llm.spend.values(), Usage())

    async def _hold(self, ceiling: Usage) -> Usage | None:
        if not self.budget.limited:
            return None
        tokens = ceiling.input_tokens + ceiling.output_tokens
        budget = self.budget

        def hold(current: Spend | None) -> Spend:
            spend = current or Spend()
            if budget.max_tokens and spend.tokens + spend.held_tokens + tokens > budget.max_tokens:
                raise BudgetExhausted("token", budget.max_tokens, spend.tokens + spend.held_tokens, tokens)
            if budget.max_cost and spend.cost + spend.held_cost + ceiling.cost > budget.max_cost:
                raise BudgetExhausted("cost", budget.max_cost, spend.cost + spend.held_cost, ceiling.cost)
            return msgspec.structs.replace(
                spend, held_tokens=spend.held_tokens + tokens, held_cost=spend.held_cost + ceiling.cost
            )

        await self._ctx.state.update(self._key, Spend, hold)
        return ceiling

    async def _settle(self, held: Usage, used: Usage) -> None:
        held_tokens = held.input_tokens + held.output_tokens

        def settle(current: Spend | None) -> Spend:
            spend = current or Spend()
            return Spend(
                tokens=spend.tokens + used.input_tokens + used.output_tokens,
                cost=spend.cost + used.cost,
                held_tokens=max(0, spend.held_tokens - held_tokens),
                held_cost=max(0.0, spend.held_cost - held.cost),
            )

        await self._ctx.state.update(self._key, Spend, settle)
