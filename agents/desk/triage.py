"""The triage agent: the support desk's entry point (the gateway's default agent).

Each turn runs three things at once, each under its own deadline: intent and
sentiment classification (a small model; embedding similarity through the
knowledge agent in offline mode, or when the model fails or is late) and the
knowledge search. Whatever arrives in time goes to the answer agent, which
streams the reply to the conversation. A negative turn that the knowledge base
cannot resolve is flagged for a human.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from opentelemetry import metrics

from agents import Agent, ChatMessage, Context, LLMError, Model, StructuredOutputError
from agents.desk.answer import AnswerRequest
from agents.desk.labels import INTENTS, SENTIMENTS, IntentLabel, SentimentLabel, describe
from agents.handoff import HANDOFF_KEY, Handoff
from agents.llm.messages import Passage
from bus.a2a import Message, Part, Role, new_id
from knowledge.messages import ClassifyReply, ClassifyRequest, SearchReply, SearchRequest

__all__ = [
    "DESK_KEY",
    "DeskOutcome",
    "handoff_reason",
    "read_intent",
    "read_offline",
    "read_sentiment",
    "triage",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Where a reply carries the desk's reading of the turn.
DESK_KEY = "hivewire.desk"

# Classification runs beside the search, so its budget is the search's; the model has most of it,
# and classification by example (a few milliseconds) what is left.
CLASSIFY_TIMEOUT = 3.0
MODEL_BUDGET = 2.0
SEARCH_TIMEOUT = 3.0
ANSWER_TIMEOUT = 45.0
# Passages at least this similar (cosine) to the question go to the answer agent;
# the knowledge base counts as having the answer when the best one reaches RESOLVES.
# (On the sample base, the passage that answers a question scores 0.5-0.6 typically
# and 0.3 at worst; off-topic questions score 0.1-0.2.)
RELEVANT = 0.25
RESOLVES = 0.40
# Offline readings of the classifier's similarities (cosine), tuned on half of the labelled
# questions in tests/data/desk_questions.json (bench/desk_classifier.py measures both halves).
# A sentiment other than neutral needs examples at least SENTIMENT_FLOOR similar and a lead of
# CLEAR_LEAD over the next: "negative" can hand a turn to a person, and should rest neither on a
# hair's difference nor on a question that resembles no example at all ("What is the capital of
# France?" is 0.09 negative, 0.05 neutral). An intent needs INTENT_FLOOR and INTENT_LEAD, or it
# is "unknown".
CLEAR_LEAD = 0.05
SENTIMENT_FLOOR = 0.25
INTENT_FLOOR = 0.10
INTENT_LEAD = 0.02
PASSAGES = 4


class DeskOutcome(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The desk's reading of a turn, in the reply's metadata under ``hivewire.desk``."""

    intent: str
    sentiment: str
    handoff: bool
    reason: str = ""
    sources: tuple[str, ...] = ()
    searched: bool = True
    # The source of each passage the answer was given, in order: a citation [n] is citations[n-1].
    citations: tuple[str, ...] = ()


triage = Agent(
    "triage",
    description="The support desk's front door: classifies each question, searches the knowledge base "
    "and has the answer agent reply; flags unhappy, unresolved turns for a human.",
    version="0.1.0",
    models={"classify": Model(name="gpt-4o-mini", temperature=0.0, max_tokens=20)},
)


@triage.skill(examples=("How do I reset my password?", "I was charged twice and I'm furious"))
async def chat(ctx: Context, question: str) -> Message:
    """Answer a customer's question, grounded in the knowledge base, with a hand-off flag."""
    await ctx.emit_status("looking into it")
    intent, sentiment, found = await asyncio.gather(
        _within(
            _classify(ctx, question, INTENTS, IntentLabel, "intent", "unknown", read_intent),
            CLASSIFY_TIMEOUT,
            "unknown",
            "intent",
        ),
        _within(
            _classify(ctx, question, SENTIMENTS, SentimentLabel, "sentiment", "neutral", read_sentiment),
            CLASSIFY_TIMEOUT,
            "neutral",
            "sentiment",
        ),
        _within(_search(ctx, question), SEARCH_TIMEOUT, None, "search"),
    )
    passages = tuple(p for p in (found.passages if found else ()) if p.score >= RELEVANT)
    await ctx.emit_status(f"intent: {intent}, sentiment: {sentiment}")
    searched = found is not None
    reason = handoff_reason(
        intent, sentiment, resolvable=any(p.score >= RESOLVES for p in passages), searched=searched
    )
    handoff = bool(reason)
    _desk_metrics(ctx.meter).count(intent, sentiment, reason)
    if handoff:
        await ctx.emit_status("flagged for a human agent: " + reason)
        await ctx.state.put(HANDOFF_KEY, Handoff(reason=reason, question=question, at=time.time()))
    text = await ctx.call(
        "answer",
        "respond",
        AnswerRequest(
            question=question,
            passages=tuple(
                Passage(text=p.text, source=p.source, title=p.heading or p.title, score=p.score)
                for p in passages
            ),
            intent=intent,
            sentiment=sentiment,
            searched=searched,
        ),
        str,
        timeout=ANSWER_TIMEOUT,
    )
    if handoff:
        text += "\n\nI've passed this conversation to a person on our support team; they will follow up here."
    outcome = DeskOutcome(
        intent=intent,
        sentiment=sentiment,
        handoff=handoff,
        reason=reason,
        sources=tuple(dict.fromkeys(p.source for p in passages)),
        searched=found is not None and not found.timed_out,
        citations=tuple(p.source for p in passages),
    )
    return Message(
        message_id=new_id(),
        role=Role.AGENT,
        parts=(Part.text_part(text),),
        context_id=ctx.context_id,
        metadata={DESK_KEY: msgspec.to_builtins(outcome)},
    )


class _DeskMetrics:
    """How the desk reads its turns: intents, sentiments and hand-offs, counted."""

    def __init__(self, meter: metrics.Meter) -> None:
        self._turns = meter.create_counter(
            "hivewire.desk.turns",
            unit="{turn}",
            description="Turns the desk classified, by intent and sentiment.",
        )
        self._handoffs = meter.create_counter(
            "hivewire.desk.handoffs",
            unit="{turn}",
            description="Turns the desk flagged for a person, by reason.",
        )

    def count(self, intent: str, sentiment: str, handoff: str) -> None:
        self._turns.add(1, {"intent": intent, "sentiment": sentiment})
        if handoff:
            self._handoffs.add(1, {"reason": handoff})


@functools.cache
def _desk_metrics(meter: metrics.Meter) -> _DeskMetrics:
    # Instruments are made once per meter (a process has one), not once per turn.
    return _DeskMetrics(meter)


def handoff_reason(intent: str, sentiment: str, *, resolvable: bool, searched: bool = True) -> str:
    """Why a turn goes to a person (empty: it does not): a negative turn that the knowledge base
    cannot answer (or that could not be searched), or an unhappy cancellation."""
    if sentiment != "negative":
        return ""
    if not searched:
        return "negative and the knowledge base could not be searched"
    if not resolvable:
        return "negative and the knowledge base has no answer"
    return "an unhappy cancellation" if intent == "cancellation" else ""


def read_offline(scores: dict[str, float], *, default: str, lead: float = 0.0, floor: float = 0.0) -> str:
    """The label an offline classification (each label's similarity to the question) is read as.

    The best label, unless it is ``default`` already, scores under ``floor`` (nothing is close),
    or is not ``lead`` more similar than the runner-up (too close to call by similarity alone):
    then ``default``.
    """
    best = max(scores, key=lambda label: scores[label])
    runner_up = max((score for label, score in scores.items() if label != best), default=0.0)
    if best != default and (scores[best] < floor or scores[best] - runner_up < lead):
        return default
    return best


def read_intent(scores: dict[str, float]) -> str:
    """The intent the desk reads in an offline classification (``unknown`` when nothing is close)."""
    return read_offline(scores, default="unknown", lead=INTENT_LEAD, floor=INTENT_FLOOR)


def read_sentiment(scores: dict[str, float]) -> str:
    """The sentiment the desk reads in an offline classification (``neutral`` unless clearly not)."""
    return read_offline(scores, default="neutral", lead=CLEAR_LEAD, floor=SENTIMENT_FLOOR)


async def _classify(
    ctx: Context,
    question: str,
    labels: dict[str, list[str]],
    answer: type[IntentLabel | SentimentLabel],
    what: str,
    default: str,
    read: Callable[[dict[str, float]], str],
) -> str:
    """The label for ``question``: the model's (``default`` when it answers something else), or,
    offline or when the model fails or is late, the one ``read`` finds in the similarities to the
    labels' examples."""
    if not ctx.llm.offline:
        try:
            return await asyncio.wait_for(
                _by_model(ctx, question, labels, answer, what, default), MODEL_BUDGET
            )
        except (TimeoutError, LLMError) as exc:
            # A local model on a busy CPU can be late; the examples still give a fair answer.
            log.warning("triage: the model did not classify the %s (%s); by example instead", what, exc)
    reply = await ctx.call(
        "knowledge", "classify", ClassifyRequest(text=question, labels=labels), ClassifyReply
    )
    return read(reply.scores)


async def _by_model(
    ctx: Context,
    question: str,
    labels: dict[str, list[str]],
    answer: type[IntentLabel | SentimentLabel],
    what: str,
    default: str,
) -> str:
    prompt = (
        f"Classify the {what} of the customer's message as exactly one of these labels:\n{describe(labels)}\n"
        'Reply with JSON: {"label": "<label>"}.'
    )
    try:
        found = await ctx.llm.structured(
            [ChatMessage.system(prompt), ChatMessage.user(question)], answer, use="classify", cache="tenant"
        )
    except StructuredOutputError:
        return default  # another label: an endpoint that does not enforce the schema let it through
    return found.label


async def _search(ctx: Context, question: str) -> SearchReply:
    return await ctx.call("knowledge", "search", SearchRequest(query=question, k=PASSAGES), SearchReply)


async def _within(work: Awaitable[T], seconds: float, default: T, what: str) -> T:
    """``work``'s result, or ``default`` if it fails or takes longer than ``seconds``."""
    try:
        return await asyncio.wait_for(work, seconds)
    except Exception as exc:  # noqa: BLE001 - a missing signal degrades the answer, never fails the turn
        log.warning("triage: %s unavailable (%s: %s)", what, type(exc).__name__, exc)
        return default
