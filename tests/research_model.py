"""A scripted research model for the test server: plans briefs, calls the analyst's tools, writes.

It reads each request as the research agents write it (``agents/research``) and
answers as a capable model would, from the request alone: the planner gets the
market framework's questions as JSON; an analyst's first call gets calls of
``search_corpus`` and (for a question with a data table) ``query_table``, its
next the tools' results quoted with their sources cited; the writer gets a
short report citing the findings' sources. Deterministic, so caches and
latencies (which the test server derives from the request) repeat exactly.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agents.research.plan import framework, parse_brief, table_of, topic_of
from tests.openai_server import Answer

__all__ = ["MARKETS", "REGIONS", "research_model"]

MARKETS = ["heat pumps", "e-bikes", "plant-based dairy"]
REGIONS = ["Nordics", "DACH", "Iberia"]
_CITATION = re.compile(r"\[\d+\]")


def research_model(body: dict[str, Any]) -> Answer | None:
    """The answer to one chat-completions request of a research agent (``None``: not one of theirs)."""
    messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
    system = next((str(m.get("content")) for m in messages if m.get("role") == "system"), "")
    users = [str(m.get("content")) for m in messages if m.get("role") == "user"]
    if system.startswith("You plan market research"):
        count = int(re.search(r"at most (\d+)", system).group(1))  # type: ignore[union-attr]
        market, region = parse_brief(users[-1], MARKETS, REGIONS)
        return Answer(text=json.dumps({"questions": [q.text for q in framework(market, region, count)]}))
    if system.startswith("You are a market research analyst"):
        results = [str(m.get("content")) for m in messages if m.get("role") == "tool"]
        if not results and body.get("tools") and body.get("tool_choice") != "none":
            return Answer(tool_calls=_tool_calls(users[0]))
        return Answer(text=" ".join(_quote(result) for result in results) or "The sources do not say.")
    if system.startswith("You write market-research reports"):
        return Answer(text=_report(users[-1]))
    return None


def _tool_calls(prompt: str) -> tuple[tuple[str, str], ...]:
    brief, _, question = prompt.partition("\nQuestion: ")
    calls = [("search_corpus", json.dumps({"query": question, "k": 3}))]
    table = table_of(topic_of(question))
    if table:
        market, region = parse_brief(brief, MARKETS, REGIONS)
        where = {"market": market, "region": region}
        calls.append(("query_table", json.dumps({"table": table, "where": where})))
    return tuple(calls)


def _quote(result: str) -> str:
    """A tool's result in a sentence, citing the source its first line names."""
    first, _, rest = result.partition("\n")
    key = re.match(r"\[([^\]]+)\]", first)
    if key is None:
        return ""
    text = rest.split("\n")[0].strip() if rest else first
    return f"{text[:160].rstrip('.')} [{key.group(1)}]."


def _report(prompt: str) -> str:
    lines = ["# Market report", ""]
    for block in prompt.split("\n### ")[1:]:
        question, _, text = block.partition("\n")
        cited = _CITATION.findall(text)
        lines.append(f"- {question.split('. ', 1)[-1]} {cited[0] if cited else ''}".rstrip())
    return "\n".join(lines)
