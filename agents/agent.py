"""Declaring an agent: its name, description, version and typed skills.

An :class:`Agent` is plain data plus handlers; importing a module that
declares one has no side effects. ``hivewire agent run MODULE:ATTR`` gives it
a process, a bus connection and a place in the mesh (see :mod:`agents.runtime`).
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from agents.card import (
    SKILL_SCHEMAS_EXTENSION,
    AgentCapabilities,
    AgentCard,
    AgentExtension,
    AgentProvider,
    AgentSkill,
    SkillSchema,
)
from agents.errors import AgentDefinitionError
from agents.llm.models import Model
from agents.mcp.servers import McpServer
from agents.payloads import json_schema
from bus import subjects
from bus.a2a import Message

__all__ = ["Agent", "Skill"]

F = TypeVar("F", bound=Callable[..., Any])
# Opens the agent's process resources from its settings; yields them once.
Lifespan = Callable[[Any], AsyncIterator[Any]]

_ASYNC_ITERATORS = (
    collections.abc.AsyncIterator,
    collections.abc.AsyncGenerator,
    collections.abc.AsyncIterable,
)


@dataclass(frozen=True, slots=True)
class Skill:
    """One skill of an agent: what it takes, what it returns, and the handler that does it."""

    id: str
    name: str
    description: str
    input_type: type[Any]
    output_type: type[Any]
    streaming: bool
    handler: Callable[..., Any]
    tags: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()

    def card_entry(self) -> AgentSkill:
        """This skill as an A2A ``AgentSkill``."""
        return AgentSkill(
            id=self.id,
            name=self.name,
            description=self.description,
            # A2A requires at least one tag: the skill's id when it declares none.
            tags=self.tags or (self.id,),
            examples=self.examples,
            input_modes=(_mode(self.input_type),),
            output_modes=(_mode(self.output_type),),
        )

    def schema(self) -> SkillSchema:
        """How this skill is called on the bus."""
        return SkillSchema(
            streaming=self.streaming, input=json_schema(self.input_type), output=json_schema(self.output_type)
        )


class Agent:
    """A mesh agent: declare it at module level, then add skills with :meth:`skill`.

    Example::

        greeter = Agent("greeter", description="Greets people.")

        @greeter.skill
        async def greet(ctx: Context, name: str) -> str:
            \"\"\"Say hello.\"\"\"
            return f"Hello, {name}!"
    """

    def __init__(
        self,
        name: str,
        *,
        description: str,
        version: str = "0.1.0",
        provider: str | None = None,
        documentation_url: str | None = None,
        models: Mapping[str, Model] | None = None,
        mcp_servers: Sequence[McpServer] = (),
        tenants: Sequence[str] = (),
    ) -> None:
        """Args:
        name: the agent's name on the mesh (``[A-Za-z0-9_-]{1,64}``).
        description, version, provider, documentation_url: for the agent card.
        models: the models the agent's skills use, by use (``"default"``,
            ``"classify"``...); ``HIVEWIRE_LLM_MODELS`` can override each.
        mcp_servers: the MCP tool servers its skills use (``ctx.mcp``);
            ``HIVEWIRE_MCP_SERVERS`` can add or replace each by name.
        tenants: the tenants it serves (none: every tenant). Others neither see it
            listed nor reach it: it subscribes to their subjects only.

        Raises:
            AgentDefinitionError: ``name`` or a tenant cannot be used in a subject, or two MCP
                servers share a name.
        """
        try:
            self.name = subjects.token("agent", name)
            self.tenants = tuple(subjects.token("tenant", tenant) for tenant in tenants)
        except ValueError as exc:
            raise AgentDefinitionError(f"Agent({name!r})", str(exc)) from None
        self.mcp_servers = tuple(mcp_servers)
        names = [server.name for server in self.mcp_servers]
        if len(set(names)) != len(names):
            raise AgentDefinitionError(f"Agent({name!r})", f"two MCP servers share a name: {names}")
        self.description = description
        self.version = version
        self.provider = provider
        self.documentation_url = documentation_url
        self.models: dict[str, Model] = dict(models or {})
        self._skills: dict[str, Skill] = {}
        self.lifespan_factory: Lifespan | None = None

    @property
    def skills(self) -> Mapping[str, Skill]:
        """The skills by id, in the order they were declared."""
        return self._skills

    @typing.overload
    def skill(self, handler: F, /) -> F: ...

    @typing.overload
    def skill(
        self,
        handler: None = None,
        /,
        *,
        id: str | None = None,
        name: str | None = None,
        description: str | None = None,
        tags: tuple[str, ...] = (),
        examples: tuple[str, ...] = (),
    ) -> Callable[[F], F]: ...

    def skill(
        self,
        handler: F | None = None,
        /,
        *,
        id: str | None = None,
        name: str | None = None,
        description: str | None = None,
        tags: tuple[str, ...] = (),
        examples: tuple[str, ...] = (),
    ) -> F | Callable[[F], F]:
        """Declare a skill; use as ``@agent.skill`` or ``@agent.skill(id=..., tags=...)``.

        The handler is ``async def handler(ctx: Context, input: In) -> Out``, or an
        async generator ``-> AsyncIterator[Chunk]`` for a streaming skill. ``In``,
        ``Out`` and ``Chunk`` are ``str``, ``Message`` or any msgspec-serializable
        type (a ``msgspec.Struct`` is the usual choice); the annotations are read
        to decode inputs and to publish the skill's schemas on the agent card.

        Raises:
            AgentDefinitionError: the handler's signature or the id is unusable.
        """

        def register(fn: F) -> F:
            skill = _build(
                self.name, fn, id=id, name=name, description=description, tags=tags, examples=examples
            )
            if skill.id in self._skills:
                raise AgentDefinitionError(
                    f"{self.name}.{skill.id}", "a skill with this id is already declared"
                )
            self._skills[skill.id] = skill
            return fn

        return register if handler is None else register(handler)

    def lifespan(self, factory: Lifespan) -> Lifespan:
        """Declare what the agent's process opens at start and closes at stop (a store, a client...).

        Use on an async generator that takes the process's settings and yields
        one value; handlers reach it as ``ctx.resource(Type)``::

            @agent.lifespan
            async def open_store(settings: AgentSettings) -> AsyncIterator[Store]:
                store = Store.open(...)
                yield store
                await store.close()

        Raises:
            AgentDefinitionError: a lifespan is already declared.
        """
        if self.lifespan_factory is not None:
            raise AgentDefinitionError(self.name, "a lifespan is already declared")
        self.lifespan_factory = factory
        return factory

    def card(self) -> AgentCard:
        """The agent's A2A card, with each skill's bus schemas in the Hivewire extension."""
        return AgentCard(
            name=self.name,
            description=self.description,
            version=self.version,
            skills=tuple(skill.card_entry() for skill in self._skills.values()),
            capabilities=AgentCapabilities(
                streaming=any(skill.streaming for skill in self._skills.values()),
                extensions=(
                    AgentExtension(
                        uri=SKILL_SCHEMAS_EXTENSION,
                        description="Hivewire: how each skill is called on the bus",
                        params={skill.id: _builtins(skill.schema()) for skill in self._skills.values()},
                    ),
                ),
            ),
            default_input_modes=("text/plain", "application/json"),
            default_output_modes=("text/plain", "application/json"),
            provider=AgentProvider(organization=self.provider) if self.provider else None,
            documentation_url=self.documentation_url,
        )

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, skills={list(self._skills)})"


def _build(
    agent: str,
    fn: Callable[..., Any],
    *,
    id: str | None,
    name: str | None,
    description: str | None,
    tags: tuple[str, ...],
    examples: tuple[str, ...],
) -> Skill:
    where = f"{agent}.{getattr(fn, '__name__', repr(fn))}"
    streaming = inspect.isasyncgenfunction(fn)
    if not streaming and not inspect.iscoroutinefunction(fn):
        raise AgentDefinitionError(where, "a skill handler must be `async def` (or an async generator)")
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != 2 or any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
        raise AgentDefinitionError(where, "a skill handler takes exactly two arguments: (ctx, input)")
    try:
        hints = typing.get_type_hints(fn)
    except NameError as exc:
        raise AgentDefinitionError(where, f"cannot resolve an annotation: {exc}") from None
    input_type = hints.get(params[1].name)
    if input_type is None:
        raise AgentDefinitionError(where, f"annotate the input argument {params[1].name!r} with its type")
    if "return" not in hints:
        raise AgentDefinitionError(where, "annotate the return type")
    output_type = hints["return"]
    if streaming:
        if typing.get_origin(output_type) not in _ASYNC_ITERATORS:
            raise AgentDefinitionError(where, "a streaming skill returns AsyncIterator[Chunk]")
        output_type = typing.get_args(output_type)[0]
    skill_id: str = id or str(getattr(fn, "__name__", ""))
    try:
        subjects.token("skill", skill_id)
    except ValueError as exc:
        raise AgentDefinitionError(where, str(exc)) from None
    for kind, value_type in (("input", input_type), ("output", output_type)):
        try:
            json_schema(value_type)
        except TypeError as exc:
            raise AgentDefinitionError(where, f"the {kind} type cannot travel on the bus: {exc}") from None
    doc = inspect.getdoc(fn) or ""
    return Skill(
        id=skill_id,
        name=name or skill_id.replace("_", " "),
        description=description or doc.split("\n\n")[0].replace("\n", " ") or skill_id,
        input_type=input_type,
        output_type=output_type,
        streaming=streaming,
        handler=fn,
        tags=tags,
        examples=examples,
    )


def _mode(value_type: type[Any]) -> str:
    if value_type is str:
        return "text/plain"
    if value_type is Message:
        return "*/*"
    return "application/json"


def _builtins(schema: SkillSchema) -> dict[str, Any]:
    built: dict[str, Any] = msgspec.to_builtins(schema)
    return built
