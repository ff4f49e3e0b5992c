"""The analyst's tools: search the research corpus, query a data table, calculate.

``search_corpus`` asks the knowledge agent (the tenant's research knowledge
base); its results are cached under the base's content fingerprint, read once
per toolbox (one sub-question), so a document ingested or changed since makes
the cached results unreachable. ``query_table`` reads the CSV tables; its
results are cached under the table file's content hash. ``calculate`` is
cheaper to run than to look up, so it is never cached.
"""

from __future__ import annotations

import msgspec

from agents.context import Context
from agents.errors import ToolError
from agents.research.calculator import FUNCTIONS, evaluate
from agents.research.tables import TableQuery, TableRows, Tables
from agents.tools import FunctionTool, Toolbox
from bus.errors import RequestError
from knowledge.messages import SearchReply, SearchRequest, StatsReply, StatsRequest

__all__ = ["Calculated", "Calculation", "CorpusHits", "CorpusPassage", "CorpusQuery", "research_tools"]

SEARCH_TIMEOUT = 10.0


class CorpusQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What to look for in the research corpus, and how many passages to return (1 to 8)."""

    query: str
    k: int = 4


class CorpusPassage(msgspec.Struct, frozen=True, kw_only=True):
    """A passage of a corpus document; ``source`` is the document, the key to cite."""

    source: str
    title: str
    heading: str
    text: str
    score: float


class CorpusHits(msgspec.Struct, frozen=True, kw_only=True):
    """The passages found, best first."""

    passages: list[CorpusPassage]

    def render(self) -> str:
        if not self.passages:
            return "no passages found"
        return "\n\n".join(
            f"[{p.source}] {p.title} > {p.heading} (similarity {p.score:.2f})\n{p.text}"
            for p in self.passages
        )


class Calculation(msgspec.Struct, frozen=True, kw_only=True):
    """An arithmetic expression, e.g. ``cagr(1480, 1840, 4) * 100``."""

    expression: str


class Calculated(msgspec.Struct, frozen=True, kw_only=True):
    """An expression and its value."""

    expression: str
    value: float


def research_tools(tables: Tables, kb: str) -> Toolbox:
    """A toolbox for one sub-question: the corpus in knowledge base ``kb``, the tables, the calculator."""
    fingerprint: list[str] = []  # the corpus's, read once for this toolbox

    async def corpus_fingerprint(ctx: Context, query: CorpusQuery) -> str:
        if not fingerprint:
            try:
                stats = await ctx.call(
                    "knowledge", "stats", StatsRequest(kb=kb), StatsReply, timeout=SEARCH_TIMEOUT
                )
            except RequestError as exc:
                raise ToolError("search_corpus", f"the knowledge agent is unavailable ({exc})") from None
            fingerprint.append(stats.fingerprint)
        return fingerprint[0]

    async def search(ctx: Context, query: CorpusQuery) -> CorpusHits:
        try:
            found = await ctx.call(
                "knowledge",
                "search",
                SearchRequest(query=query.query, k=max(1, min(query.k, 8)), kb=kb),
                SearchReply,
                timeout=SEARCH_TIMEOUT,
            )
        except RequestError as exc:
            raise ToolError("search_corpus", f"the knowledge agent is unavailable ({exc})") from None
        if found.timed_out:  # an empty answer for want of time: not a result to keep
            raise ToolError("search_corpus", "the search timed out")
        return CorpusHits(
            passages=[
                CorpusPassage(
                    source=p.source, title=p.title, heading=p.heading, text=p.text, score=round(p.score, 4)
                )
                for p in found.passages
            ]
        )

    async def table_fingerprint(ctx: Context, query: TableQuery) -> str:
        return tables.fingerprint(query.table)

    async def table(ctx: Context, query: TableQuery) -> TableRows:
        return tables.query(query)

    async def calculate(ctx: Context, calculation: Calculation) -> Calculated:
        return Calculated(expression=calculation.expression, value=evaluate(calculation.expression))

    names = ", ".join(tables.names())
    return Toolbox(
        [
            FunctionTool(
                name="search_corpus",
                description="Search the market-research corpus (reports on markets and regions). Returns "
                "passages, each marked with its source document in brackets: cite facts with that mark.",
                parameters=CorpusQuery,
                result_type=CorpusHits,
                run=search,
                fingerprint=corpus_fingerprint,
                render=CorpusHits.render,
            ),
            FunctionTool(
                name="query_table",
                description=f"Rows of a data table ({names}) whose columns equal the given values, with "
                "min, max, sum, first and last of numeric columns. Columns: market, region, year and the "
                "figures. Cite figures with the table's file name in brackets, e.g. [market_size.csv].",
                parameters=TableQuery,
                result_type=TableRows,
                run=table,
                fingerprint=table_fingerprint,
                render=TableRows.render,
            ),
            FunctionTool(
                name="calculate",
                description="Evaluate arithmetic: numbers, + - * / // % ** and the functions "
                f"{', '.join(FUNCTIONS)} (cagr(first, last, years) and change(first, last) give fractions).",
                parameters=Calculation,
                result_type=Calculated,
                run=calculate,
                render=lambda c: f"{c.expression} = {c.value:.6g}",
            ),
        ]
    )
