"""The errors of the agent runtime: one root, each carrying the data that explains it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bus.errors import ErrorCode, RemoteError

if TYPE_CHECKING:
    from bus.a2a import Message

__all__ = [
    "AgentDefinitionError",
    "AgentError",
    "AgentLoadError",
    "HopLimitExceeded",
    "InputRequired",
    "InvalidInput",
    "InvalidPageToken",
    "LLMError",
    "LocalModelError",
    "McpToolError",
    "ModelUnavailable",
    "StateConflict",
    "StructuredOutputError",
    "SubmitUnconfirmed",
    "TaskNotFound",
    "TaskNotResumable",
    "ToolError",
]


class AgentError(Exception):
    """Root of every error raised by :mod:`agents`."""


class AgentDefinitionError(AgentError, TypeError):
    """An agent or skill is declared wrongly (caught when the module is imported)."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class AgentLoadError(AgentError):
    """``hivewire agent run MODULE:ATTR`` could not find an agent there."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"cannot load agent {target!r}: {reason}")


class InvalidInput(AgentError, RemoteError):
    """A message does not carry what a skill takes; callers receive it as ``bad_request``."""

    def __init__(self, skill: str, reason: str) -> None:
        self.skill = skill
        self.reason = reason
        RemoteError.__init__(self, ErrorCode.BAD_REQUEST, f"invalid input for skill {skill!r}: {reason}")


class InputRequired(AgentError, RemoteError):
    """Raised by a skill that needs more from the user before it can go on.

    Run as a durable task, the task then waits in ``input-required`` (with
    ``auth=True``: ``auth-required``), ``question`` as its status message, until
    a message to the task continues it: the skill runs again with that message,
    the task's earlier messages in ``ctx.task_history``. Called interactively,
    the caller gets this error back (code ``input_required``/``auth_required``).
    """

    def __init__(self, question: str, *, auth: bool = False) -> None:
        self.question = question
        self.auth = auth
        code = ErrorCode.AUTH_REQUIRED if auth else ErrorCode.INPUT_REQUIRED
        RemoteError.__init__(self, code, question)


class HopLimitExceeded(AgentError, RemoteError):
    """A chain of agent calls went deeper than the hop limit: most likely a loop.

    It is a :class:`~bus.errors.RemoteError`, so it travels back through every
    agent of the chain with the same code to the caller who started the turn.
    """

    def __init__(self, hops: int, limit: int, *, target: str = "") -> None:
        self.hops = hops
        self.limit = limit
        to = f" calling {target}" if target else ""
        RemoteError.__init__(
            self,
            ErrorCode.HOP_LIMIT_EXCEEDED,
            f"{hops} agent hops{to} exceed the limit of {limit}; is there a loop between agents?",
        )


class StateConflict(AgentError):
    """Shared state changed since it was read (optimistic concurrency)."""

    def __init__(self, key: str, expected_revision: int | None) -> None:
        self.key = key
        self.expected_revision = expected_revision
        super().__init__(f"state {key!r} changed since revision {expected_revision}")


class TaskNotFound(AgentError):
    """No durable task with this id exists for this tenant (or it has expired)."""

    def __init__(self, tenant: str, task_id: str) -> None:
        self.tenant = tenant
        self.task_id = task_id
        super().__init__(f"no task {task_id!r} for tenant {tenant!r}")


class SubmitUnconfirmed(AgentError):
    """A task was submitted, but NATS did not confirm it was queued (it is away or recovering).

    The task may still run: a publish waiting in the connection's buffer goes
    out once the connection is back. ``task_id`` is its id either way, to look
    it up later; submitting ``message`` again (the same message id) is safe,
    as it is the same task and JetStream keeps one copy.
    """

    def __init__(self, tenant: str, task_id: str, message: Message, reason: str) -> None:
        self.tenant = tenant
        self.task_id = task_id
        self.message = message
        self.reason = reason
        super().__init__(
            f"task {task_id!r} of tenant {tenant!r} was not confirmed as queued ({reason}); "
            "it may still run: look it up by its id, or submit the same message again"
        )


class InvalidPageToken(AgentError, ValueError):
    """A task listing's page token is not one this listing gave out (or was made for other filters)."""

    def __init__(self, token: str, reason: str) -> None:
        self.token = token
        self.reason = reason
        super().__init__(f"invalid page token: {reason}")


class TaskNotResumable(AgentError):
    """A message to a task cannot continue it: the task ended, or it is not waiting for input."""

    def __init__(self, task_id: str, state: str, reason: str) -> None:
        self.task_id = task_id
        self.state = state
        self.reason = reason
        super().__init__(f"task {task_id!r} cannot take this message: {reason}")


class ToolError(AgentError):
    """A tool could not do what it was asked (an unknown table, a bad expression...).

    Raised in a tool, it becomes the tool's result for the model ("error: ..."),
    so the model can correct its call; it is never cached.
    """

    def __init__(self, tool: str, reason: str) -> None:
        self.tool = tool
        self.reason = reason
        super().__init__(f"tool {tool!r}: {reason}")


class LLMError(AgentError):
    """A model call failed in a way another attempt would not fix (or offline mode cannot do it)."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        super().__init__(f"model {model!r}: {reason}")


class ModelUnavailable(LLMError, RemoteError):
    """Every attempt on the model and its fallback failed (rate limits, server errors, timeouts).

    Raised in a skill, it reaches the caller as ``unavailable``: try again later.
    """

    def __init__(self, models: list[str], attempts: int, last_error: str) -> None:
        self.models = models
        self.attempts = attempts
        self.last_error = last_error
        self.model = models[0]
        self.reason = f"{attempts} attempts on {', '.join(models)} failed; last: {last_error}"
        RemoteError.__init__(self, ErrorCode.UNAVAILABLE, f"model {self.model!r}: {self.reason}")


class StructuredOutputError(LLMError):
    """The model's answer is not valid JSON of the requested type."""

    def __init__(self, model: str, expected: str, reason: str, text: str) -> None:
        self.expected = expected
        self.text = text
        LLMError.__init__(self, model, f"answer is not a valid {expected}: {reason}")


class LocalModelError(AgentError):
    """A local model cannot be run: no such file, not a GGUF file, or llama.cpp is not installed."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        super().__init__(f"local model {model!r}: {reason}")


class McpToolError(ToolError):
    """An MCP tool call failed: the server could not be reached, died, took too long, or the tool
    itself reported an error.

    Attributes:
        server: the MCP server's name (as the agent declares it).
        kind: ``unavailable`` (could not connect or start), ``closed`` (the connection or the
            process ended during the call), ``timeout`` (the caller's deadline passed),
            ``protocol`` (the server answered with a JSON-RPC error) or ``tool`` (the tool's
            own error result).
    """

    def __init__(self, server: str, tool: str, kind: str, reason: str) -> None:
        self.server = server
        self.kind = kind
        super().__init__(f"{server}.{tool}" if tool else server, reason)
