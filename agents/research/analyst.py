"""The analyst agent: answers one sub-question of a research run with its tools, as a durable task.

With a model, the analyst lets the model call the tools (several at once),
sends back their results, and asks again, for at most
``HIVEWIRE_RESEARCH_ANALYST_ROUNDS`` model calls; the last one is told to
answer. Offline, or once the run's budget cannot pay for another call, it
answers extractively: the sub-question's data table summed up in a sentence
or two (growth, leading shares, price change) and the corpus sentences that
best answer it, each cited. Replicas share the work: each sub-question is a
durable task, redelivered to another replica if this one dies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents import Agent, AgentSettings, ChatMessage, Context, LLMError, Model, ToolError
from agents.llm.messages import Passage, ToolCall
from agents.llm.offline import extract
from agents.research.budget import RunGuard
from agents.research.calculator import evaluate
from agents.research.errors import DeadlineReached, RunStopped
from agents.research.messages import Assignment, Finding, Question, Source, Stop, ToolUse
from agents.research.plan import about, table_of, topic_of
from agents.research.settings import ResearchSettings
from agents.research.tables import TableQuery, TableRows, Tables
from agents.research.tools import CorpusHits, CorpusQuery, research_tools
from agents.tools import Toolbox, ToolResult

__all__ = ["analyst"]

log = logging.getLogger(__name__)

SYSTEM = (
    "You are a market research analyst. Answer the question from the research corpus and the data tables "
    "only, using the tools: search_corpus for qualitative facts, query_table for figures (filter by market "
    "and region), calculate for growth rates and shares. Call the tools you need, several at once when they "
    "are independent; then answer in three to six sentences with concrete figures. Cite every fact with its "
    "source's mark in brackets, e.g. [heat-pumps-nordics.md] or [market_size.csv]. If the sources do not "
    "answer the question, say so plainly."
)
_ANSWER_NOW = "Answer the question now from the tool results above; do not call more tools."


@dataclass(frozen=True, slots=True)
class _Resources:
    settings: ResearchSettings
    tables: Tables
    instance: str


@dataclass
class _Record:
    """The tools of one sub-question, and what they were asked and answered."""

    tools: Toolbox
    cache: bool
    uses: list[ToolUse] = field(default_factory=list)
    results: list[ToolResult[Any]] = field(default_factory=list)

    async def run(self, ctx: Context, calls: Sequence[ToolCall], guard: RunGuard) -> list[ToolResult[Any]]:
        try:
            results = await asyncio.wait_for(
                self.tools.run_all(ctx, calls, cache=self.cache), max(0.0, guard.remaining())
            )
        except TimeoutError:
            raise DeadlineReached("the tool calls") from None
        self.results.extend(results)
        self.uses.extend(
            ToolUse(tool=r.call.name, cached=r.cached, error=r.error, cacheable=r.call.name != "calculate")
            for r in results
        )
        return results

    def sources(self) -> tuple[Source, ...]:
        """The sources of every successful result (what the model read)."""
        found: dict[str, Source] = {}
        for result in self.results:
            if isinstance(result.value, CorpusHits):
                for p in result.value.passages:
                    found.setdefault(p.source, Source(key=p.source, title=p.title, kind="corpus"))
            elif isinstance(result.value, TableRows) and result.value.matched:
                found.setdefault(result.value.table, Source(key=result.value.table, kind="table"))
        return tuple(found.values())


analyst = Agent(
    "analyst",
    description="Answers one research sub-question with the corpus, the data tables and a calculator "
    "(a durable task of a research run).",
    version="0.1.0",
    models={"default": Model(name="gpt-4o-mini", temperature=0.0, max_tokens=600)},
)


@analyst.lifespan
async def _open(settings: AgentSettings) -> AsyncIterator[_Resources]:
    own = ResearchSettings()
    yield _Resources(own, Tables(own.research_data_dir), f"{socket.gethostname()}-{os.getpid()}")


@analyst.skill(tags=("research",))
async def investigate(ctx: Context, assignment: Assignment) -> Finding:
    """Answer one sub-question, citing the corpus documents and tables it used."""
    resources = ctx.resource(_Resources)
    started = time.time()
    guard = RunGuard(
        ctx,
        run=assignment.run,
        budget=assignment.budget,
        deadline=assignment.deadline,
        cache=assignment.cache,
    )
    record = _Record(research_tools(resources.tables, resources.settings.research_kb), cache=assignment.cache)
    question = assignment.question
    text, stopped, offline = "", "", True
    sources: tuple[Source, ...] = ()
    if guard.remaining() <= 0:
        stopped = "deadline"
    elif ctx.llm.offline:
        text, sources = await _extractive(ctx, record, question, guard)
    else:
        try:
            text = await _with_model(
                ctx, guard, record, assignment, resources.settings.research_analyst_rounds
            )
            sources, offline = record.sources(), False
        except RunStopped as stop:
            stopped = stop.reason
        except LLMError as exc:  # the model is down or refuses: the sources still answer
            log.warning("analyst: the model failed (%s); answering from the sources", exc)
        if not text and guard.remaining() > 0.5:
            # With what it has: no model, but the sources still answer.
            text, sources = await _extractive(ctx, record, question, guard)
    await ctx.emit_status(f"answered: {question.text}" if text else f"no answer ({stopped}): {question.text}")
    return Finding(
        index=question.index,
        question=question.text,
        text=text,
        sources=sources,
        tools=tuple(record.uses),
        offline=offline,
        stopped=_stop(stopped),
        started=started,
        ended=time.time(),
        instance=resources.instance,
    )


async def _with_model(
    ctx: Context, guard: RunGuard, record: _Record, assignment: Assignment, rounds: int
) -> str:
    chat = [
        ChatMessage.system(SYSTEM),
        ChatMessage.user(f"Brief: {assignment.brief}\nQuestion: {assignment.question.text}"),
    ]
    for round_ in range(rounds):
        last = round_ == rounds - 1
        if last and round_ > 0:
            chat.append(ChatMessage.user(_ANSWER_NOW))
        answer = await guard.complete(
            chat, tools=record.tools.declarations, tool_choice="none" if last else None
        )
        if not answer.tool_calls or last:
            return answer.text
        chat.append(answer.message)
        results = await record.run(ctx, answer.tool_calls, guard)
        chat.extend(ChatMessage.tool(result.call, result.text) for result in results)
    return ""


async def _extractive(
    ctx: Context, record: _Record, question: Question, guard: RunGuard
) -> tuple[str, tuple[Source, ...]]:
    """The answer without a model: the table's figures in a sentence, then the corpus's best sentences."""
    topic = question.topic or topic_of(question.text)
    calls = [record.tools.call("search_corpus", CorpusQuery(query=question.text, k=4))]
    table = table_of(topic)
    if table:
        where = {"market": question.market, "region": question.region}
        calls.append(record.tools.call("query_table", TableQuery(table=table, where=where)))
    try:
        results = await record.run(ctx, calls, guard)
    except DeadlineReached:
        return "", ()
    pieces: list[str] = []
    sources: dict[str, Source] = {}
    for result in sorted(results, key=lambda r: not isinstance(r.value, TableRows)):  # figures first
        if isinstance(result.value, TableRows) and result.value.matched:
            figures = _figures(topic, result.value)
            if figures:
                pieces.append(_cited(figures, result.value.table))
                sources[result.value.table] = Source(key=result.value.table, kind="table")
        elif isinstance(result.value, CorpusHits):
            # The section about the question's topic leads, whatever its similarity score.
            hits = sorted(result.value.passages, key=lambda p: not about(topic, p.heading))
            passages = [Passage(text=p.text, source=p.source, title=p.title) for p in hits]
            for index, unit in extract(_focus(question), passages, max_units=3):
                hit = hits[index]
                pieces.append(_cited(unit, hit.source))
                sources.setdefault(hit.source, Source(key=hit.source, title=hit.title))
    return " ".join(pieces), tuple(sources.values())


def _focus(question: Question) -> str:
    """The question without its market and region: every passage found shares those words."""
    text = question.text
    for words in (question.market, question.region):
        if words:
            text = re.sub(re.escape(words), " ", text, flags=re.IGNORECASE)
    return text


def _cited(sentence: str, key: str) -> str:
    """``sentence`` citing ``key`` before its closing punctuation: "... in 2024 [market_size.csv]."."""
    body = sentence.rstrip()
    if body.endswith((".", "!", "?")):
        return f"{body[:-1]} [{key}]{body[-1]}"
    return f"{body} [{key}]"


def _figures(topic: str, rows: TableRows) -> str:
    """The gist of a table's rows for a topic, in a sentence ("" when the table lacks the columns)."""
    column = {name.lower(): n for n, name in enumerate(rows.columns)}

    def values(name: str) -> list[str]:
        return [row[column[name]] for row in rows.rows]

    try:
        if topic == "size" and {"year", "revenue_eur_m"} <= column.keys():
            years, revenue = values("year"), [float(v) for v in values("revenue_eur_m")]
            growth = evaluate(f"cagr({revenue[0]}, {revenue[-1]}, {int(years[-1]) - int(years[0])}) * 100")
            text = (
                f"Revenue was EUR {revenue[-1]:,.0f} million in {years[-1]}, against EUR {revenue[0]:,.0f} "
                f"million in {years[0]} ({growth:+.1f}% a year)"
            )
            peak = max(range(len(revenue)), key=revenue.__getitem__)
            if peak != len(revenue) - 1:
                text += f", after a peak of EUR {revenue[peak]:,.0f} million in {years[peak]}"
            if {"volume", "volume_unit"} <= column.keys():
                volume, unit = float(values("volume")[-1]), values("volume_unit")[-1]
                text += f"; volume in {years[-1]} was {volume:,.0f} {unit}"
            return text + "."
        if topic == "competition" and {"company", "share_pct"} <= column.keys():
            named = zip(values("company"), values("share_pct"), strict=True)
            shares = sorted(((float(s), c) for c, s in named if c.lower() != "others"), reverse=True)[:3]
            listed = ", ".join(f"{c} ({s:.0f}%)" for s, c in shares)
            total = sum(s for s, _ in shares)
            return f"The largest competitors are {listed}; together they hold {total:.0f}% of sales."
        if topic == "pricing" and {"year", "avg_price_eur"} <= column.keys():
            years, prices = values("year"), [float(v) for v in values("avg_price_eur")]
            unit = f" {values('price_unit')[-1]}" if "price_unit" in column else ""
            change = evaluate(f"change({prices[0]}, {prices[-1]}) * 100")
            return (
                f"The average price was EUR {_amount(prices[-1])}{unit} in {years[-1]}, "
                f"{change:+.1f}% against {years[0]} (EUR {_amount(prices[0])})."
            )
    except (ValueError, IndexError, ArithmeticError, ToolError):
        return ""
    return ""


def _amount(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


def _stop(reason: str) -> Stop:
    return "budget" if reason == "budget" else "deadline" if reason == "deadline" else ""
