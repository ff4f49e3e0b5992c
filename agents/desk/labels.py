"""What the desk tells apart: intents and sentiments, each with example phrasings.

The examples are what offline mode classifies by (embedding similarity, through
the knowledge agent); with a model, the labels and their descriptions go into
the classification prompt instead, and the answer's schema allows the labels
alone (an endpoint that enforces schemas, as llama.cpp does, cannot return another).
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["INTENTS", "SENTIMENTS", "IntentLabel", "SentimentLabel", "describe"]

INTENTS: dict[str, list[str]] = {
    "account": [
        "I forgot my password",
        "I can't log in to my account",
        "how do I set up two-factor authentication",
        "my 2FA code is rejected",
        "how do I sign in with single sign-on",
    ],
    "billing": [
        "how much does the Team plan cost",
        "I was charged twice this month",
        "where can I download my invoices",
        "I want a refund",
        "how do I change my payment method",
        "how do I add seats to my plan",
    ],
    "technical": [
        "the app won't sync my changes",
        "I get an error when I open the desktop app",
        "the service is down",
        "my data is not syncing on mobile",
        "the integration with Slack stopped working",
    ],
    "data": [
        "how do I export all my data",
        "please delete my account and my data",
        "how long do you keep deleted files",
        "is my data stored in the EU under GDPR",
        "can I import data from another tool",
    ],
    "how_to": [
        "how do I invite a teammate to my workspace",
        "how do I change someone's role",
        "how do I turn off email notifications",
        "how do I connect GitHub",
        "what are the API rate limits",
    ],
    "cancellation": [
        "I want to cancel my subscription",
        "how do I close my account",
        "I'm leaving for another product",
    ],
}

SENTIMENTS: dict[str, list[str]] = {
    "negative": [
        "this is unacceptable, I'm really angry",
        "I'm so frustrated, nothing works and nobody helps me",
        "terrible service, I want my money back right now",
        "this is the third time it broke, I'm fed up with you",
        "you charged me twice and I'm furious",
        "worst app ever, what a waste of money",
        "I've been waiting for days and I'm losing my patience",
    ],
    "neutral": [
        "how do I change my password",
        "where can I find my invoices",
        "what does the Business plan include",
        "the app shows an error when I open a file, what should I do",
        "my changes are not syncing, how can I fix that",
        "how long does it take to process a request",
        "do you offer discounts for nonprofits",
        "can a deleted project be recovered",
        "where do I find my account settings",
    ],
    "positive": [
        "thanks, that was really helpful",
        "I love the new release, great job",
        "everything works perfectly now, thank you so much",
    ],
}


class IntentLabel(msgspec.Struct, frozen=True, kw_only=True):
    """A model's reading of the question's intent (one of :data:`INTENTS`)."""

    label: Literal["account", "billing", "technical", "data", "how_to", "cancellation"]


class SentimentLabel(msgspec.Struct, frozen=True, kw_only=True):
    """A model's reading of the question's sentiment (one of :data:`SENTIMENTS`)."""

    label: Literal["negative", "neutral", "positive"]


def describe(labels: dict[str, list[str]]) -> str:
    """The labels with two examples each, for a classification prompt."""
    return "\n".join(
        f"- {label}: e.g. {examples[0]!r}, {examples[1]!r}" for label, examples in labels.items()
    )
