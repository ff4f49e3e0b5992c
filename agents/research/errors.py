"""Why a research run stopped early: its budget or its deadline (the run then reports what it has)."""

from __future__ import annotations

from agents.errors import AgentError

__all__ = ["BudgetExhausted", "DeadlineReached", "ResearchError", "RunStopped"]


class ResearchError(AgentError):
    """Root of the research app's errors."""


class RunStopped(ResearchError):
    """The run may not make this model call; ``reason`` is ``"budget"`` or ``"deadline"``."""

    reason = ""


class BudgetExhausted(RunStopped):
    """A model call would take the run past its token or cost budget."""

    reason = "budget"

    def __init__(self, what: str, limit: float, spent: float, wanted: float) -> None:
        self.what = what
        self.limit = limit
        self.spent = spent
        self.wanted = wanted
        super().__init__(
            f"the run's {what} budget ({limit:g}) has {limit - spent:g} left; a call needs {wanted:g}"
        )


class DeadlineReached(RunStopped):
    """The run's deadline passed (or would pass during the call)."""

    reason = "deadline"

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"the run's deadline passed during {what}")
