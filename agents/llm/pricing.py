"""What tokens cost: a price table per model, in currency units per million tokens."""

from __future__ import annotations

import msgspec

from agents.llm.messages import Usage

__all__ = ["Price", "PriceTable"]


class Price(msgspec.Struct, frozen=True, kw_only=True):
    """Price per million input and output tokens."""

    input: float = 0.0
    output: float = 0.0


class PriceTable:
    """Looks up a model's price; unknown models cost nothing (and are counted in tokens anyway)."""

    def __init__(self, prices: dict[str, Price]) -> None:
        self._prices = dict(prices)

    def usage(self, model: str, input_tokens: int, output_tokens: int) -> Usage:
        """The usage of one call, with its cost."""
        price = self._prices.get(model, Price())
        cost = (input_tokens * price.input + output_tokens * price.output) / 1_000_000
        return Usage(input_tokens=input_tokens, output_tokens=output_tokens, cost=cost)
