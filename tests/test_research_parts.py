"""The research swarm's parts on their own: safe arithmetic, CSV tables and their fingerprints, reading
a brief, and sources numbered across findings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agents import ToolError
from agents.research.calculator import evaluate
from agents.research.messages import Finding, Source
from agents.research.plan import framework, parse_brief, topic_of
from agents.research.report import number_sources
from agents.research.settings import DATA
from agents.research.tables import TableQuery, Tables


def test_the_calculator_does_arithmetic_and_growth_rates() -> None:
    assert evaluate("(1840 - 1480) / 1480 * 100") == pytest.approx(24.324, abs=1e-3)
    assert evaluate("round(cagr(1480, 1840, 4) * 100, 1)") == 5.6
    assert evaluate("change(7048, 7419)") == pytest.approx(0.05264, abs=1e-5)
    assert evaluate("max(2, -3 ** 2, sqrt(16))") == 4
    assert evaluate("7 // 2 + 7 % 2") == 4


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('true')", "Call is not allowed"),
        ("__import__('os')", "unknown function '__import__'"),
        ("().__class__", "Attribute is not allowed"),
        ("x + 1", "Name is not allowed"),
        ("[1, 2][0]", "Subscript is not allowed"),
        ("(lambda: 1)()", "Call is not allowed"),
        ("True + 1", "Constant is not allowed"),
        ("round(2.5, digits=1)", "Call is not allowed"),
        ("9 ** 9 ** 9", "exponents are limited"),
        ("10.0 ** 400", "cannot compute"),
        ("1 / 0", "cannot compute"),
        ("cagr(0, 5, 2)", "positive first value"),
        ("1 +", "not an arithmetic expression"),
        ("1" * 301, "longer than 300"),
    ],
)
def test_the_calculator_refuses_anything_but_arithmetic(expression: str, reason: str) -> None:
    with pytest.raises(ToolError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        evaluate(expression)


def test_tables_are_queried_by_column_values_and_fingerprinted_by_content(tmp_path: Path) -> None:
    shutil.copytree(DATA, tmp_path, dirs_exist_ok=True)
    tables = Tables(tmp_path)
    assert tables.names() == ["competitors", "market_size", "prices"]
    rows = tables.query(
        TableQuery(table="market_size.csv", where={"Market": "HEAT PUMPS", "region": "nordics"})
    )
    assert (rows.table, rows.matched, rows.columns[:3]) == (
        "market_size.csv",
        5,
        ["market", "region", "year"],
    )
    assert (rows.stats["revenue_eur_m"].first, rows.stats["revenue_eur_m"].last) == (1480, 1840)
    assert "year" not in rows.stats  # not a figure to sum
    assert "[market_size.csv] 5 matching rows" in rows.render()
    before = tables.fingerprint("market_size")
    (tmp_path / "market_size.csv").write_text("market,region,year\nheat pumps,Nordics,2025\n")
    assert tables.fingerprint("market_size") != before
    assert tables.query(TableQuery(table="market_size")).matched == 1
    for bad, reason in (
        (TableQuery(table="../secrets"), "no table '../secrets'"),
        (TableQuery(table="sales"), "no table 'sales'; the tables are competitors, market_size, prices"),
        (TableQuery(table="prices", where={"colour": "red"}), "prices.csv has no column 'colour'"),
    ):
        with pytest.raises(ToolError, match=reason):
            tables.query(bad)


def test_a_brief_is_read_for_its_market_and_region() -> None:
    markets, regions = ["heat pumps", "e-bikes", "plant-based dairy"], ["Nordics", "DACH", "Iberia"]
    assert parse_brief("Assess the market for E-Bikes in Iberia", markets, regions) == ("e-bikes", "Iberia")
    assert parse_brief("heat pump demand across the nordic countries?", markets, regions) == (
        "heat pumps",
        "Nordics",
    )
    assert parse_brief("Assess the market for drones in the Baltics.", markets, regions) == (
        "drones",
        "Baltics",
    )
    assert parse_brief("What about tea?", markets, regions) == ("the market", "the region")
    questions = framework("e-bikes", "Iberia", 8)
    assert [q.topic for q in questions] == [
        "size", "drivers", "segments", "competition", "pricing", "channels", "regulation", "risks",
    ]  # fmt: skip
    assert [topic_of(q.text) for q in questions] == [q.topic for q in questions]


def test_sources_are_numbered_once_across_findings_and_citations_follow() -> None:
    corpus = Source(key="heat-pumps-nordics.md", title="Heat pumps in the Nordics")
    table = Source(key="market_size.csv", kind="table")
    findings = (
        Finding(index=0, question="size?", text="Grew [market_size.csv]; mature [heat-pumps-nordics.md].",
                sources=(table, corpus)),
        Finding(index=1, question="who?", text="Concentrated [heat-pumps-nordics, market_size] [see above].",
                sources=(corpus,)),
    )  # fmt: skip
    sources, numbered = number_sources(findings)
    assert [s.key for s in sources] == ["market_size.csv", "heat-pumps-nordics.md"]
    assert numbered[0].text == "Grew [1]; mature [2]."
    assert numbered[1].text == "Concentrated [2, 1] [see above]."
