"""The report's Markdown: sources numbered across findings, the offline report, the footer.

Analysts cite by source key (``[heat-pumps-nordics.md]``, ``[market_size.csv]``);
the report numbers every source once, in order of first use, and rewrites the
findings' citations to those numbers before the writer (or offline mode)
merges them. The list of sources is built here from what the analysts read,
never by a model, so a report cannot cite a source nobody opened.
"""

from __future__ import annotations

import re

import msgspec

from agents.research.messages import Finding, Question, RunSummary, Source

__all__ = ["OFFLINE_NOTE", "assemble", "footer", "number_sources", "sources_section", "unanswered_section"]

OFFLINE_NOTE = (
    "*Offline mode: no language model is configured. Each finding below is the research corpus's own "
    "sentences and the data tables' figures, as written, with their sources.*"
)
_CITATION = re.compile(r"\[([^\[\]\n]{1,200})\]")


def _aliases(key: str) -> set[str]:
    bare = key.rsplit(".", 1)[0] if "." in key else key
    return {key.lower(), bare.lower()}


def number_sources(findings: tuple[Finding, ...]) -> tuple[list[Source], list[Finding]]:
    """Every source once, in order of first use, and the findings with citations as ``[n]``."""
    sources: list[Source] = []
    number: dict[str, int] = {}
    for finding in findings:
        for source in finding.sources:
            if source.key.lower() not in number:
                sources.append(source)
                for alias in _aliases(source.key):
                    number.setdefault(alias, len(sources))

    def renumber(match: re.Match[str]) -> str:
        keys = [k.strip().removeprefix("source:").strip() for k in re.split(r"[,;]", match.group(1))]
        found = [number.get(k.lower()) for k in keys]
        if not all(found):
            return match.group(0)  # not (only) a source key: leave it as written
        return "[" + ", ".join(str(n) for n in dict.fromkeys(found)) + "]"

    return sources, [msgspec.structs.replace(f, text=_CITATION.sub(renumber, f.text)) for f in findings]


def sources_section(sources: list[Source]) -> str:
    """The report's numbered list of sources."""
    if not sources:
        return "\n\n## Sources\n\nNone: no source answered any question."
    lines = [
        f"[{n}] {s.title} ({s.key})" if s.title and s.kind == "corpus" else f"[{n}] {s.key} (data table)"
        for n, s in enumerate(sources, 1)
    ]
    return "\n\n## Sources\n\n" + "\n".join(lines)


def unanswered_section(missing: tuple[Question, ...], findings: list[Finding]) -> str:
    """The questions the report has no answer to (none: empty)."""
    lines = [f"- {q.text}" for q in missing]
    lines += [
        f"- {f.question} (stopped: the run's {f.stopped})" for f in findings if f.stopped and not f.text
    ]
    return "\n\n## Not answered\n\n" + "\n".join(lines) if lines else ""


def assemble(brief: str, findings: list[Finding], *, note: str = OFFLINE_NOTE) -> str:
    """The report without a model: the findings as the analysts wrote them, under their questions."""
    parts = [f"# Research report: {brief.strip()}", note]
    for n, finding in enumerate((f for f in findings if f.text), 1):
        parts.append(f"## {n}. {finding.question}\n\n{finding.text}")
    return "\n\n".join(parts)


def footer(summary: RunSummary) -> str:
    """One line about the run: answers, analysts, time, the tool cache, tokens and cost, why it stopped."""
    pieces = [
        f"{summary.answered} of {summary.questions} questions answered by "
        f"{summary.analysts} analyst{'s' if summary.analysts != 1 else ''} in {summary.seconds:.1f} s"
    ]
    if summary.tool_calls:
        pieces.append(
            f"tool cache: {summary.tool_cache_hits} of {summary.tool_calls} calls ({summary.hit_ratio:.0%})"
        )
    tokens = summary.input_tokens + summary.output_tokens
    if tokens:
        pieces.append(
            f"{tokens:,} tokens ({summary.tokens_per_second:,.0f} tokens/s, "
            f"{summary.output_tokens_per_second:,.0f} output tokens/s)"
        )
    elif summary.offline:
        pieces.append("no model tokens (offline mode)")
    else:
        pieces.append("no model tokens (all answers cached)")
    if summary.cost:
        pieces.append(f"cost {summary.cost:.4f}")
    if summary.retried:
        pieces.append(f"{summary.retried} sub-question{'s' if summary.retried != 1 else ''} retried")
    if summary.stopped:
        pieces.append(f"stopped early: the run's {summary.stopped}")
    if summary.slow:
        pieces.append("slow run (alert raised)")
    return f"\n\n---\n*Research run {summary.run[:8]}: " + " · ".join(pieces) + ".*\n"
