"""What the research agents send each other: request, sub-questions, findings, report, summary."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "RESEARCH_KEY",
    "Assignment",
    "Budget",
    "Finding",
    "Question",
    "Report",
    "ReportRequest",
    "ResearchRequest",
    "RunSummary",
    "Slot",
    "Source",
    "ToolUse",
]

# Where the planner's reply carries the run's summary (a RunSummary).
RESEARCH_KEY = "hivewire.research"

Stop = Literal["", "budget", "deadline"]


class ResearchRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A brief, with limits for this run (the planner's settings fill in what is left out).

    Attributes:
        brief: what to research, e.g. "Assess the market for heat pumps in the Nordics".
        max_questions: sub-questions at most.
        max_tokens, max_cost: the run's model budget (0: no limit).
        deadline: seconds the run may take.
        alert_after: seconds after which the run raises a slow-run alert.
        cache: use the tool-result and response caches (``False`` runs every call, for baselines).
    """

    brief: str
    max_questions: int | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    deadline: float | None = None
    alert_after: float | None = None
    cache: bool = True

    def __post_init__(self) -> None:
        if not self.brief.strip():
            raise ValueError("the brief is empty")
        if self.max_questions is not None and not 1 <= self.max_questions <= 32:
            raise ValueError("maxQuestions must be between 1 and 32")
        for name, value in (("deadline", self.deadline), ("alertAfter", self.alert_after)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive")


class Budget(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A run's model budget; 0 means no limit."""

    max_tokens: int = 0
    max_cost: float = 0.0

    @property
    def limited(self) -> bool:
        return self.max_tokens > 0 or self.max_cost > 0


class Question(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One sub-question of a brief; ``topic`` names the framework section it covers (if known)."""

    index: int
    text: str
    topic: str = ""
    market: str = ""
    region: str = ""


class Assignment(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An analyst's durable task: one sub-question, under the run's budget and deadline.

    ``deadline`` is wall-clock time (seconds since the epoch), not a remaining
    time: a task may wait in the queue, or be redelivered to another replica
    after a crash, and must still stop when the run does.
    """

    run: str
    brief: str
    question: Question
    budget: Budget = msgspec.field(default_factory=Budget)
    deadline: float
    cache: bool = True


class Source(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Where a finding's facts come from: a corpus document or a data table."""

    key: str
    title: str = ""
    kind: Literal["corpus", "table"] = "corpus"


class ToolUse(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One tool call an analyst made: ``cached`` names the cache layer that answered, if any."""

    tool: str
    cached: str = ""
    error: str = ""
    cacheable: bool = True


class Finding(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An analyst's answer to one sub-question, citing its sources by key (``[market_size.csv]``)."""

    index: int
    question: str
    text: str
    sources: tuple[Source, ...] = ()
    tools: tuple[ToolUse, ...] = ()
    offline: bool = False
    stopped: Stop = ""
    started: float = 0.0
    ended: float = 0.0
    instance: str = ""


class ReportRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The findings to merge into a report, and the questions left unanswered."""

    run: str
    brief: str
    findings: tuple[Finding, ...]
    missing: tuple[Question, ...] = ()
    budget: Budget = msgspec.field(default_factory=Budget)
    deadline: float
    cache: bool = True


class Report(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The writer's report (already streamed to the conversation)."""

    markdown: str
    sources: tuple[Source, ...] = ()
    offline: bool = False
    stopped: Stop = ""


class Slot(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """When and where one sub-question was worked on (its last, successful attempt)."""

    index: int
    instance: str
    started: float
    ended: float
    deliveries: int = 1


class RunSummary(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A run in numbers: the report's footer, the reply's ``hivewire.research`` metadata.

    Attributes:
        questions, answered: sub-questions asked, and answered in time.
        seconds: wall time of the run.
        input_tokens, output_tokens, cost: model spend of every agent of the run.
        tokens_per_second: all tokens over the wall time; ``output_tokens_per_second`` likewise.
        tool_calls, tool_cache_hits: cacheable tool calls, and those the cache answered.
        stopped: ``budget`` or ``deadline`` when the run stopped early.
        slow: the run passed its slow-run threshold (an alert was raised).
        retried: sub-questions that needed another delivery (a replica was lost, or failed).
        timeline: when and where each answered sub-question ran.
    """

    run: str
    brief: str
    questions: int
    answered: int
    seconds: float
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    tokens_per_second: float = 0.0
    output_tokens_per_second: float = 0.0
    tool_calls: int = 0
    tool_cache_hits: int = 0
    offline: bool = False
    stopped: Stop = ""
    slow: bool = False
    retried: int = 0
    analysts: int = 0
    timeline: tuple[Slot, ...] = ()

    @property
    def hit_ratio(self) -> float:
        return self.tool_cache_hits / self.tool_calls if self.tool_calls else 0.0
