"""The answer's ``[n]`` citations, checked as the tokens stream: kept when they name a passage the
answer was given, dropped when invented (small models number passages that do not exist)."""

from __future__ import annotations

import re

__all__ = ["Citations"]

# "[2]", "[1, 3]", with the space before it (dropped with an invented citation).
_CITATION = re.compile(r"(\s*)\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# A "[" this close to the end may be a citation still arriving: held back until it closes.
_LONGEST = 16


class Citations:
    """Filters streamed text: ``feed`` each token, then ``flush``; :attr:`cited` lists the passages cited.

    Args:
        passages: how many passages the answer was given (valid citations are 1 to this).
    """

    def __init__(self, passages: int) -> None:
        self._passages = passages
        self._held = ""
        self.cited: list[int] = []
        self.dropped = 0

    def feed(self, token: str) -> str:
        """The text that can be given out now (a citation in progress is held back)."""
        text = self._held + token
        start = text.rfind("[")
        if start != -1 and "]" not in text[start:] and len(text) - start <= _LONGEST:
            start = len(text[:start].rstrip())
        else:
            # Trailing spaces wait for the next token: they go if an invented citation follows.
            start = len(text.rstrip())
        self._held, text = text[start:], text[:start]
        return _CITATION.sub(self._check, text)

    def flush(self) -> str:
        """What was held back at the end of the answer."""
        text, self._held = self._held, ""
        return _CITATION.sub(self._check, text)

    def _check(self, match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.split(r"\s*,\s*", match.group(2))]
        valid = [n for n in numbers if 1 <= n <= self._passages]
        self.dropped += len(numbers) - len(valid)
        if not valid:
            return ""
        for n in valid:
            if n not in self.cited:
                self.cited.append(n)
        return match.group(1) + "[" + ", ".join(str(n) for n in valid) + "]"
