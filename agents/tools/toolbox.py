"""Tools an agent runs for a model: typed arguments, several calls at once, results cached.

A :class:`FunctionTool` pairs the model-facing declaration (name, description,
a msgspec type for the arguments) with the coroutine that does the work and,
for a tool whose result depends only on its input and the data it reads, a
``fingerprint`` of that data. A :class:`Toolbox` runs the calls a model asks
for, all at once, each through the process's tool-result cache when the tool
has a fingerprint (:mod:`agents.tools.cache`). A call the toolbox cannot run
(an unknown tool, arguments that do not validate, a :class:`ToolError`)
becomes an error result the model reads, never an exception.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec
from opentelemetry import trace

from agents.errors import ToolError
from agents.llm.messages import Tool, ToolCall
from bus.a2a import new_id

if TYPE_CHECKING:
    from agents.context import Context

__all__ = ["FunctionTool", "ToolResult", "Toolbox"]

A = TypeVar("A")
R = TypeVar("R")

_tracer = trace.get_tracer("hivewire.tools")


@dataclass(frozen=True, slots=True)
class FunctionTool(Generic[A, R]):
    """A tool a model may call, and how to run it.

    Attributes:
        name: what the model calls it (letters, digits, ``_`` and ``-``).
        description: when to use it; the model reads this.
        parameters: a msgspec type (usually a ``Struct``) the arguments decode to.
        result_type: what ``run`` returns (a msgspec-encodable type); results travel as JSON.
        run: does the work: ``await run(ctx, arguments)``.
        fingerprint: ``await fingerprint(ctx, arguments)``: a hash of the data the call
            reads (a file's content hash...); ``None`` for a tool whose results must not be
            cached (one with side effects, or one that reads a clock).
        render: the result as the model reads it; JSON by default.
        schema: the arguments' JSON schema when ``parameters`` cannot say it (a tool described
            by an MCP server: ``parameters`` is then ``dict[str, Any]`` and the server validates).
    """

    name: str
    description: str
    parameters: type[A]
    result_type: type[R]
    run: Callable[[Context, A], Awaitable[R]]
    fingerprint: Callable[[Context, A], Awaitable[str]] | None = None
    render: Callable[[R], str] | None = None
    schema: dict[str, Any] | None = None

    @property
    def declaration(self) -> Tool:
        """The tool as offered to the model."""
        return Tool(
            name=self.name, description=self.description, parameters=self.parameters, schema=self.schema
        )


@dataclass(frozen=True, slots=True)
class ToolResult(Generic[R]):
    """One call's outcome.

    Attributes:
        call: the call the model made.
        value: what the tool returned (``None`` after an error).
        text: what goes back to the model: the rendered value, or ``"error: ..."``.
        error: why the call failed (empty when it did not).
        cached: the cache layer that answered (``"local"``, ``"redis"``), or ``""`` if the tool ran.
        seconds: how long the call took, cache look-up included.
    """

    call: ToolCall
    value: R | None
    text: str
    error: str = ""
    cached: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error


class Toolbox:
    """The tools one agent offers a model, by name."""

    def __init__(self, tools: Iterable[FunctionTool[Any, Any]]) -> None:
        self._tools: dict[str, FunctionTool[Any, Any]] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools are named {tool.name!r}")
            self._tools[tool.name] = tool
        self._encoder = msgspec.json.Encoder(order="deterministic")
        self._decoders = {name: msgspec.json.Decoder(tool.result_type) for name, tool in self._tools.items()}

    @property
    def declarations(self) -> tuple[Tool, ...]:
        """What to pass as ``tools=`` to a model call."""
        return tuple(tool.declaration for tool in self._tools.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    async def run_all(
        self, ctx: Context, calls: Sequence[ToolCall], *, cache: bool = True
    ) -> list[ToolResult[Any]]:
        """Run ``calls`` at once (a model often asks for several); results in the calls' order."""
        if len(calls) == 1:
            return [await self.run(ctx, calls[0], cache=cache)]
        return list(await asyncio.gather(*(self.run(ctx, call, cache=cache) for call in calls)))

    def call(self, name: str, arguments: object) -> ToolCall:
        """A call of tool ``name`` with ``arguments``, as a model would make it (to run without one)."""
        return ToolCall(
            id=f"call_{new_id()[:12]}", name=name, arguments=self._encoder.encode(arguments).decode()
        )

    async def run(self, ctx: Context, call: ToolCall, *, cache: bool = True) -> ToolResult[Any]:
        """Run one call, from the tool-result cache when the tool has a fingerprint (and ``cache``)."""
        started = time.perf_counter()
        tool = self._tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self._tools))
            return _failed(call, f"there is no tool {call.name!r}; the tools are {known}", started)
        with _tracer.start_as_current_span(
            f"execute_tool {tool.name}",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool.name,
                "gen_ai.tool.call.id": call.id,
                "hivewire.tenant": ctx.tenant,
            },
        ) as span:
            try:
                arguments = msgspec.json.decode(call.arguments or "{}", type=tool.parameters)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                span.set_attribute("error.type", "invalid_arguments")
                return _failed(call, f"invalid arguments: {exc}", started)
            try:
                return await self._run(ctx, tool, call, arguments, cache, started, span)
            except ToolError as exc:
                span.set_attribute("error.type", type(exc).__name__)
                return _failed(call, exc.reason, started)

    async def _run(
        self,
        ctx: Context,
        tool: FunctionTool[Any, Any],
        call: ToolCall,
        arguments: object,
        cache: bool,
        started: float,
        span: trace.Span,
    ) -> ToolResult[Any]:
        key = ""
        if cache and tool.fingerprint is not None:
            key = ctx.tool_cache.key(tool.name, arguments, await tool.fingerprint(ctx, arguments))
            found = await ctx.tool_cache.get(ctx.tenant, tool.name, key)
            span.set_attribute("hivewire.tools.cache_hit", found is not None)
            if found is not None:
                data, layer = found
                value = self._decoders[tool.name].decode(data)
                text = self._render(tool, value, data)
                return ToolResult(call, value, text, cached=layer, seconds=_since(started))
        value = await tool.run(ctx, arguments)
        data = self._encoder.encode(value)
        if key:
            await ctx.tool_cache.put(ctx.tenant, tool.name, key, data)
        return ToolResult(call, value, self._render(tool, value, data), seconds=_since(started))

    @staticmethod
    def _render(tool: FunctionTool[Any, Any], value: object, data: bytes) -> str:
        return tool.render(value) if tool.render is not None else data.decode()


def _failed(call: ToolCall, reason: str, started: float) -> ToolResult[Any]:
    return ToolResult(call, None, f"error: {reason}", error=reason, seconds=_since(started))


def _since(started: float) -> float:
    return time.perf_counter() - started
