"""The writer agent: merges a run's findings into one cited Markdown report, streamed to the conversation.

With a model the report is written from the findings alone (their citations
renumbered across the report) and streamed token by token; the numbered list
of sources is appended by the writer itself. Offline, or when the run's
budget cannot pay for the report, the findings are set out under their
questions as the analysts wrote them, labelled as such. A report cut short by
the deadline says so.
"""

from __future__ import annotations

import logging

from agents import Agent, ChatMessage, Context, LLMError, Model
from agents.research.budget import RunGuard
from agents.research.errors import RunStopped
from agents.research.messages import Finding, Report, ReportRequest, Source
from agents.research.report import assemble, number_sources, sources_section, unanswered_section

__all__ = ["writer"]

log = logging.getLogger(__name__)

SYSTEM = (
    "You write market-research reports in Markdown. Write the report the brief asks for from the numbered "
    "findings only: a title, an executive summary of three to five bullet points, then a section per theme "
    "with the figures exactly as the findings give them. Cite every fact with the findings' own source "
    "numbers in brackets, e.g. [2]; never invent a figure, a source or a number. Do not add a list of "
    "sources: it is appended to the report."
)

writer = Agent(
    "writer",
    description="Merges a research run's findings into a cited Markdown report, streamed as it is written.",
    version="0.1.0",
    models={"default": Model(name="gpt-4o-mini", temperature=0.2, max_tokens=1500)},
)


@writer.skill(tags=("research",))
async def write(ctx: Context, request: ReportRequest) -> Report:
    """Write the report from the findings; it streams to the conversation as it is written."""
    sources, findings = number_sources(request.findings)
    tail = unanswered_section(request.missing, findings) + sources_section(sources)
    answered = [f for f in findings if f.text]
    if ctx.llm.offline or not answered:
        text = assemble(request.brief, findings)
        return await _emit(ctx, text + tail, sources, offline=ctx.llm.offline)
    guard = RunGuard(
        ctx, run=request.run, budget=request.budget, deadline=request.deadline, cache=request.cache
    )
    tokens: list[str] = []
    try:
        await guard.stream(_prompt(request.brief, answered, sources), on_token=tokens.append)
    except (RunStopped, LLMError) as exc:
        stopped = exc.reason if isinstance(exc, RunStopped) else ""
        why = f"the run's {stopped} ran out" if stopped else "the model failed"
        if isinstance(exc, LLMError):
            log.warning("writer: the model failed (%s); the findings go out as written", exc)
        if not tokens:
            note = (
                f"*{why.capitalize()} before the report could be written: each finding below is the "
                "analyst's own, as written, with its sources.*"
            )
            return await _emit(
                ctx, assemble(request.brief, findings, note=note) + tail, sources, stopped=stopped
            )
        cut = f"\n\n*(The report stops here: {why}.)*"
        return await _emit(ctx, cut + tail, sources, written="".join(tokens), stopped=stopped)
    return await _emit(ctx, tail, sources, written="".join(tokens))


def _prompt(brief: str, findings: list[Finding], sources: list[Source]) -> list[ChatMessage]:
    body = [f"Brief: {brief}", "", "Findings:"]
    for n, finding in enumerate(findings, 1):
        body += ["", f"### {n}. {finding.question}", finding.text]
    body += ["", "Sources:", *(f"[{n}] {s.title or s.key}" for n, s in enumerate(sources, 1))]
    return [ChatMessage.system(SYSTEM), ChatMessage.user("\n".join(body))]


async def _emit(
    ctx: Context,
    text: str,
    sources: list[Source],
    *,
    written: str = "",
    offline: bool = False,
    stopped: str = "",
) -> Report:
    """Stream ``text`` to the conversation (a paragraph at a time) after what was ``written``; the report."""
    pieces = text.split("\n\n")
    for n, piece in enumerate(pieces):
        chunk = piece if n == len(pieces) - 1 else piece + "\n\n"
        if chunk:  # the chunks add up to ``text`` exactly, as streamed tokens add up to a reply
            await ctx.emit_chunk(chunk)
    return Report(
        markdown=written + text,
        sources=tuple(sources),
        offline=offline,
        stopped="budget" if stopped == "budget" else "deadline" if stopped == "deadline" else "",
    )
