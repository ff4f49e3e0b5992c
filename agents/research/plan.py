"""Splitting a brief into sub-questions: the market-assessment framework, and the model's plan.

A market assessment asks the same eight things of any market and region:
size and growth, demand drivers, customer segments, competition, pricing,
channels, regulation, risks. Offline (and when the run's budget cannot pay
for a model's plan) the planner fills that framework in with the market and
region it recognises in the brief; with a model it asks for a plan tailored
to the brief and reads each question's topic from its words.
"""

from __future__ import annotations

import re

import msgspec

from agents.research.messages import Question

__all__ = ["TOPICS", "Plan", "about", "framework", "parse_brief", "table_of", "topic_of"]

# The framework's topics, each with its question and the data table that answers part of it.
TOPICS: dict[str, tuple[str, str]] = {
    "size": ("How large is the {market} market in {region}, and how fast has it grown?", "market_size"),
    "drivers": ("What drives demand for {market} in {region}?", ""),
    "segments": ("Which customer segments buy {market} in {region}?", ""),
    "competition": (
        "Who are the main competitors for {market} in {region}, and how concentrated is the market?",
        "competitors",
    ),
    "pricing": ("What do {market} cost in {region}, and how have prices moved?", "prices"),
    "channels": ("Through which channels are {market} sold in {region}?", ""),
    "regulation": ("Which regulations and incentives affect {market} in {region}?", ""),
    "risks": ("What risks and barriers would a new entrant in {market} in {region} face?", ""),
}

# Words that tell a question's topic, checked in this order.
_TOPIC_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("competition", ("competitor", "competition", "market share", "concentrat", "players", "leader")),
    ("pricing", ("price", "pricing", "cost", "expensive")),
    ("size", ("large", "size", "revenue", "grow", "volume", "how big", "overview")),
    ("regulation", ("regulat", "incentive", "subsid", "policy", "law", "grant")),
    ("channels", ("channel", "distribut", "retail", "sold", "dealer", "installer")),
    ("segments", ("segment", "customer", "buyer", "who buys")),
    ("risks", ("risk", "barrier", "threat", "entrant", "challenge")),
    ("drivers", ("driver", "drive", "demand", "why")),
)

_BRIEF = re.compile(
    r"market for (?P<market>.+?) in (?:the )?(?:region )?(?P<region>[^.?!,;]+)", re.IGNORECASE
)


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """The sub-questions a model proposes for a brief."""

    questions: list[str]


def _folded(text: str) -> str:
    """Lower case, letters and digits only, plurals dropped: "E-Bikes" and "e-bike" meet."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "".join(word[:-1] if len(word) > 3 and word.endswith("s") else word for word in words)


def parse_brief(brief: str, markets: list[str], regions: list[str]) -> tuple[str, str]:
    """The market and region a brief is about: known ones found in it first, else its own words."""
    folded = _folded(brief)
    market = next((m for m in sorted(markets, key=len, reverse=True) if _folded(m) in folded), "")
    region = next((r for r in sorted(regions, key=len, reverse=True) if _folded(r) in folded), "")
    found = _BRIEF.search(brief)
    if found is not None:
        market = market or found.group("market").strip()
        region = region or found.group("region").strip()
    return market or "the market", region or "the region"


def framework(market: str, region: str, count: int) -> list[Question]:
    """The framework's first ``count`` questions for ``market`` in ``region``."""
    return [
        Question(
            index=n, text=text.format(market=market, region=region), topic=topic, market=market, region=region
        )
        for n, (topic, (text, _)) in enumerate(list(TOPICS.items())[:count])
    ]


def topic_of(question: str) -> str:
    """The framework topic a question's words point to ("" when none does)."""
    lowered = question.lower()
    return next((topic for topic, words in _TOPIC_WORDS if any(w in lowered for w in words)), "")


def about(topic: str, heading: str) -> bool:
    """Whether a passage's heading is about ``topic`` (its words name the topic)."""
    lowered = heading.lower()
    return any(w in lowered for t, words in _TOPIC_WORDS if t == topic for w in words)


def table_of(topic: str) -> str:
    """The data table that answers part of a topic's question ("" when none does)."""
    return TOPICS.get(topic, ("", ""))[1]
