"""The answer agent: a reply grounded in the passages triage found, streamed, citing its sources.

The prompt is written for small local models as much as for large ones: the
passages come numbered, the instruction to cite them follows them, and every
``[n]`` the model writes is checked as it streams (an invented one is dropped;
``[n]`` is the n-th of triage's ``citations``). With nothing relevant found, no
model is asked: the reply says the knowledge base does not cover the question,
rather than let a model invent an answer. When the knowledge base could not be
searched at all (its agent away or late), the reply says that instead: "not in
the knowledge base" would be a claim nobody checked.
"""

from __future__ import annotations

import msgspec

from agents import Agent, ChatMessage, Context, Model
from agents.desk.citations import Citations
from agents.llm.messages import Passage

__all__ = ["NOT_FOUND", "NOT_SEARCHED", "AnswerRequest", "answer"]

_SYSTEM = (
    "You are the support assistant of Orbitly. Answer the customer's question briefly and concretely, "
    "from the numbered passages only. Never invent policies, prices or steps. If the passages do not "
    "answer it, say so plainly and offer to hand the conversation to a human."
)
_EMPATHY = "The customer is upset: acknowledge it in one short sentence before answering."
NOT_FOUND = (
    "I couldn't find this in the knowledge base, so I won't guess. "
    "A person from our support team can help with it."
)
NOT_SEARCHED = (
    "I can't reach the knowledge base right now, so I won't guess. "
    "Please ask again in a moment, or a person from our support team can help."
)


class AnswerRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A question with what triage learned about it."""

    question: str
    passages: tuple[Passage, ...] = ()
    intent: str = "unknown"
    sentiment: str = "neutral"
    # False when the search failed or was late: no passages then says nothing of the knowledge base.
    searched: bool = True


answer = Agent(
    "answer",
    description="Writes the support desk's replies from knowledge-base passages, streaming and citing them.",
    version="0.1.0",
    models={"default": Model(name="gpt-4o-mini", temperature=0.2, max_tokens=500)},
)


@answer.skill
async def respond(ctx: Context, request: AnswerRequest) -> str:
    """Answer from the passages, streaming tokens to the conversation; the full reply is returned."""
    if not request.searched:
        await ctx.emit_chunk(NOT_SEARCHED)
        return NOT_SEARCHED
    if not request.passages and not ctx.llm.offline:
        await ctx.emit_chunk(NOT_FOUND)
        return NOT_FOUND
    history = await ctx.history.load(ctx.tenant, ctx.context_id)
    system = _SYSTEM + (" " + _EMPATHY if request.sentiment == "negative" else "")
    stream = await ctx.llm.stream(
        [ChatMessage.system(system), *history, ChatMessage.user(request.question)],
        passages=request.passages,
        publish=False,
    )
    citations = Citations(len(request.passages))
    pieces: list[str] = []
    async for token in stream:
        if text := citations.feed(token):
            pieces.append(text)
            await ctx.emit_chunk(text)
    if text := citations.flush():
        pieces.append(text)
        await ctx.emit_chunk(text)
    return "".join(pieces).strip()
