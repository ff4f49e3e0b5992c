"""The answer agent: a reply grounded in the passages triage found, streamed, citing its sources."""

from __future__ import annotations

import msgspec

from agents import Agent, ChatMessage, Context, Model
from agents.llm.messages import Passage

__all__ = ["AnswerRequest", "answer"]

_SYSTEM = (
    "You are the support assistant of Orbitly. Answer the customer's question from the numbered "
    "passages only, briefly and concretely, and cite each fact as [n]. If the passages do not answer "
    "it, say so plainly and offer to hand the conversation to a human; never invent policies, prices "
    "or steps."
)
_EMPATHY = "The customer is upset: acknowledge it in one short sentence before answering."


class AnswerRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A question with what triage learned about it."""

    question: str
    passages: tuple[Passage, ...] = ()
    intent: str = "unknown"
    sentiment: str = "neutral"


answer = Agent(
    "answer",
    description="Writes the support desk's replies from knowledge-base passages, streaming and citing them.",
    version="0.1.0",
    models={"default": Model(name="gpt-4o-mini", temperature=0.2, max_tokens=500)},
)


@answer.skill
async def respond(ctx: Context, request: AnswerRequest) -> str:
    """Answer from the passages, streaming tokens to the conversation; the full reply is returned."""
    history = await ctx.history.load(ctx.tenant, ctx.context_id)
    system = _SYSTEM + (" " + _EMPATHY if request.sentiment == "negative" else "")
    stream = await ctx.llm.stream(
        [ChatMessage.system(system), *history, ChatMessage.user(request.question)],
        passages=request.passages,
    )
    return "".join([token async for token in stream])
