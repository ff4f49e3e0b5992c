"""The planner agent: the research app's entry point, from a brief to a cited report.

A run: split the brief into sub-questions (the model's plan, or the market
framework offline); submit each to ``analyst`` as a durable task, all at
once, so the analyst replicas answer them in parallel; wait for the findings
until the run's deadline (minus the writer's share), cancelling what is
late; have ``writer`` stream the report; add a footer with the run's
numbers. Every step runs under the run's budget and deadline, which travel in
each sub-task; a run that reaches either stops cleanly with what it has.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec

from agents import Agent, AgentSettings, ChatMessage, Context, InvalidInput, LLMError, Model, ToolError
from agents.calls import read_reply
from agents.llm.messages import Usage
from agents.research.budget import RunGuard
from agents.research.errors import RunStopped
from agents.research.messages import (
    RESEARCH_KEY,
    Assignment,
    Budget,
    Finding,
    Question,
    Report,
    ReportRequest,
    ResearchRequest,
    RunSummary,
    Slot,
)
from agents.research.monitor import RunMetrics, SlowRunAlert
from agents.research.plan import Plan, framework, parse_brief, topic_of
from agents.research.report import footer
from agents.research.settings import ResearchSettings
from agents.research.tables import TableQuery, Tables
from agents.usage import spend_in
from bus.a2a import Message, Part, Role, Task, TaskState, new_id
from bus.errors import MalformedPayload, RequestTimeout

__all__ = ["planner"]

log = logging.getLogger(__name__)

PLAN_SYSTEM = (
    "You plan market research. Split the brief into at most {count} specific, non-overlapping sub-questions "
    "that an analyst can answer from a corpus of market reports and from data tables ({tables}). Cover "
    "the market's size and growth, demand drivers, customers, competition, prices, channels, regulation "
    'and risks as far as the brief calls for them. Reply with JSON: {{"questions": ["...", "..."]}}.'
)
# Time kept back from the caller's deadline to send the reply, and given analysts past theirs to report.
_REPLY_MARGIN = 1.0
_GRACE = 1.0


@dataclass(frozen=True, slots=True)
class _Resources:
    settings: ResearchSettings
    tables: Tables
    metrics: RunMetrics


planner = Agent(
    "planner",
    description="Researches a brief ('Assess the market for X in region Y'): splits it into sub-questions, "
    "has analysts answer them in parallel with tools, and streams a cited report.",
    version="0.1.0",
    models={"plan": Model(name="gpt-4o-mini", temperature=0.0, max_tokens=400)},
)


@planner.lifespan
async def _open(settings: AgentSettings) -> AsyncIterator[_Resources]:
    own = ResearchSettings()
    yield _Resources(own, Tables(own.research_data_dir), RunMetrics())


@planner.skill(examples=("Assess the market for heat pumps in the Nordics",))
async def chat(ctx: Context, brief: str) -> Message:
    """Research a brief with the default limits; the report streams to the conversation."""
    if not brief.strip():
        raise InvalidInput("chat", "the brief is empty")
    return await _research(ctx, ResearchRequest(brief=brief))


@planner.skill
async def research(ctx: Context, request: ResearchRequest) -> Message:
    """Research a brief with this run's own limits (budget, deadline, questions, caching)."""
    return await _research(ctx, request)


async def _research(ctx: Context, request: ResearchRequest) -> Message:
    resources = ctx.resource(_Resources)
    settings = resources.settings
    run = new_id()
    started = time.time()
    seconds = request.deadline or settings.research_deadline
    remaining = ctx.remaining()
    if remaining is not None:
        seconds = max(0.0, min(seconds, remaining - _REPLY_MARGIN))
    deadline = started + seconds
    findings_deadline = deadline - min(settings.research_writer_seconds, seconds / 2)
    budget = Budget(
        max_tokens=settings.research_max_tokens if request.max_tokens is None else request.max_tokens,
        max_cost=settings.research_max_cost if request.max_cost is None else request.max_cost,
    )
    alert = SlowRunAlert(
        ctx, run=run, threshold=request.alert_after or settings.research_slow_run, metrics=resources.metrics
    )
    try:
        guard = RunGuard(ctx, run=run, budget=budget, deadline=findings_deadline, cache=request.cache)
        await ctx.emit_status(f"planning the research: {request.brief}")
        questions, plan_stopped = await _plan(ctx, guard, request, resources)
        await ctx.emit_status(f"{len(questions)} questions for the analysts")
        tasks = await asyncio.gather(
            *(
                ctx.submit(
                    "analyst",
                    "investigate",
                    Assignment(
                        run=run,
                        brief=request.brief,
                        question=question,
                        budget=budget,
                        deadline=findings_deadline,
                        cache=request.cache,
                    ),
                )
                for question in questions
            )
        )
        findings, missing, slots = await _collect(ctx, list(tasks), questions, findings_deadline)
        await ctx.emit_status(f"{len(findings)} of {len(questions)} findings in; writing the report")
        report = await ctx.call(
            "writer",
            "write",
            ReportRequest(
                run=run,
                brief=request.brief,
                findings=tuple(findings),
                missing=tuple(missing),
                budget=budget,
                deadline=deadline,
                cache=request.cache,
            ),
            Report,
            timeout=max(1.0, deadline - time.time() + _REPLY_MARGIN),
        )
    finally:
        await alert.close()
    summary = _summary(ctx, run, request.brief, questions, findings, slots, report, plan_stopped, started)
    summary = msgspec.structs.replace(summary, slow=alert.raised)
    end = footer(summary)
    await ctx.emit_chunk(end)
    resources.metrics.finished(ctx.tenant, summary)
    return Message(
        message_id=new_id(),
        role=Role.AGENT,
        parts=(Part.text_part(report.markdown + end),),
        context_id=ctx.context_id,
        metadata={RESEARCH_KEY: msgspec.to_builtins(summary)},
    )


async def _plan(
    ctx: Context, guard: RunGuard, request: ResearchRequest, resources: _Resources
) -> tuple[list[Question], str]:
    """The run's sub-questions, and why the framework stood in for the model's plan (if it was stopped)."""
    count = request.max_questions or resources.settings.research_max_questions
    market, region = parse_brief(request.brief, *_known(resources.tables))
    fallback = framework(market, region, count)
    if ctx.llm.offline:
        return fallback, ""
    prompt = PLAN_SYSTEM.format(count=count, tables=", ".join(resources.tables.names()) or "none")
    try:
        plan = await guard.structured(
            [ChatMessage.system(prompt), ChatMessage.user(request.brief)], Plan, use="plan"
        )
    except RunStopped as stop:
        return fallback, stop.reason
    except LLMError as exc:  # a model that cannot plan: the framework's questions will do
        log.warning("planner: the model's plan failed (%s); using the research framework", exc)
        return fallback, ""
    texts = [text.strip() for text in plan.questions if text.strip()][:count]
    if not texts:
        return fallback, ""
    return [
        Question(index=n, text=text, topic=topic_of(text), market=market, region=region)
        for n, text in enumerate(texts)
    ], ""


def _known(tables: Tables) -> tuple[list[str], list[str]]:
    """The markets and regions the data tables know (for reading them out of a brief)."""
    try:
        rows = tables.query(TableQuery(table="market_size", columns=["market", "region"]))
    except ToolError:  # data without that table: briefs are read by their words alone
        return [], []
    return sorted({row[0] for row in rows.rows}), sorted({row[1] for row in rows.rows})


async def _collect(
    ctx: Context, tasks: list[Task], questions: list[Question], deadline: float
) -> tuple[list[Finding], list[Question], list[Slot]]:
    """The findings in question order, the questions left unanswered, and when each answer was made."""
    done = 0

    async def one(task: Task) -> Task | None:
        nonlocal done
        try:
            record = await ctx.wait(task.id, timeout=max(0.01, deadline - time.time() + _GRACE))
        except RequestTimeout:
            await ctx.cancel(task.id, reason="the research run's deadline passed")
            return None
        done += 1
        await ctx.emit_status(f"{done} of {len(tasks)} sub-questions done")
        return record

    records = await asyncio.gather(*(one(task) for task in tasks))
    findings: list[Finding] = []
    missing: list[Question] = []
    slots: list[Slot] = []
    for question, record in zip(questions, records, strict=True):
        finding = _finding(record)
        if record is None or finding is None:
            missing.append(question)
            continue
        # Whatever an analyst spent counts toward this turn (and the tenant's token budget).
        ctx.llm.add(spend_in((record.metadata or {}).get("usage")))
        findings.append(finding)
        deliveries = int((record.metadata or {}).get("deliveries", 1))
        slots.append(
            Slot(
                index=finding.index,
                instance=finding.instance,
                started=finding.started,
                ended=finding.ended,
                deliveries=deliveries,
            )
        )
    return findings, missing, slots


def _finding(record: Task | None) -> Finding | None:
    if record is None or record.status.state is not TaskState.COMPLETED or record.status.message is None:
        return None
    try:
        return read_reply(record.status.message, Finding)
    except MalformedPayload as exc:
        log.warning("planner: task %s did not return a finding: %s", record.id, exc)
        return None


def _summary(
    ctx: Context,
    run: str,
    brief: str,
    questions: list[Question],
    findings: list[Finding],
    slots: list[Slot],
    report: Report,
    plan_stopped: str,
    started: float,
) -> RunSummary:
    seconds = max(time.time() - started, 1e-6)
    spent = sum(ctx.llm.spend.values(), Usage())
    tokens = spent.input_tokens + spent.output_tokens
    uses = [use for finding in findings for use in finding.tools if use.cacheable and not use.error]
    stops = {plan_stopped, report.stopped, *(f.stopped for f in findings)}
    if len(findings) < len(questions):
        stops.add("deadline")
    return RunSummary(
        run=run,
        brief=brief,
        questions=len(questions),
        answered=sum(1 for f in findings if f.text),
        seconds=round(seconds, 3),
        input_tokens=spent.input_tokens,
        output_tokens=spent.output_tokens,
        cost=spent.cost,
        tokens_per_second=round(tokens / seconds, 1),
        output_tokens_per_second=round(spent.output_tokens / seconds, 1),
        tool_calls=len(uses),
        tool_cache_hits=sum(1 for use in uses if use.cached),
        offline=report.offline,
        stopped="budget" if "budget" in stops else "deadline" if "deadline" in stops else "",
        retried=sum(1 for slot in slots if slot.deliveries > 1),
        analysts=len({slot.instance for slot in slots}),
        timeline=tuple(sorted(slots, key=lambda s: s.index)),
    )
