"""Agent cards: what an agent tells the mesh (and A2A clients) about itself.

The structs follow the A2A protocol's v1.0 ``AgentCard`` JSON names. A card on
the bus has no ``supportedInterfaces``: an agent is reached through subjects,
and the gateway adds its own URL when it serves the card over HTTP. Each
skill's JSON schemas travel in the Hivewire extension's ``params``, so standard
clients can read them without knowing Hivewire.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "SKILL_SCHEMAS_EXTENSION",
    "AgentCapabilities",
    "AgentCard",
    "AgentExtension",
    "AgentInterface",
    "AgentProvider",
    "AgentSkill",
    "SkillSchema",
]

# Identifies the extension that carries each skill's input/output schemas.
SKILL_SCHEMAS_EXTENSION = "https://hivewire.dev/a2a/ext/skill-schemas/v1"


class _Card(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    pass


class AgentInterface(_Card, frozen=True):
    """A URL and protocol binding where the agent can be reached."""

    # Required (never omitted): the official a2a-sdk client finds no transport without them.
    url: str
    protocol_binding: str
    protocol_version: str
    tenant: str | None = None


class AgentProvider(_Card, frozen=True):
    """Who runs the agent."""

    organization: str
    url: str = ""


class AgentExtension(_Card, frozen=True):
    """A protocol extension the agent supports."""

    uri: str
    description: str | None = None
    required: bool = False
    params: dict[str, Any] | None = None


class AgentCapabilities(_Card, frozen=True):
    """Optional protocol features the agent supports."""

    # Optional in the protocol; None leaves them out (unsaid is false), a value is always written.
    streaming: bool | None = None
    push_notifications: bool | None = None
    extensions: tuple[AgentExtension, ...] = ()
    extended_agent_card: bool | None = None


class AgentSkill(_Card, frozen=True):
    """One thing the agent can do."""

    id: str
    name: str
    description: str
    tags: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    input_modes: tuple[str, ...] = ()
    output_modes: tuple[str, ...] = ()


class SkillSchema(_Card, frozen=True):
    """How a skill is called on the bus: streaming or not, and the shapes it takes and returns."""

    streaming: bool = False
    input: dict[str, Any] = msgspec.field(default_factory=dict)
    output: dict[str, Any] = msgspec.field(default_factory=dict)


class AgentCard(_Card, frozen=True):
    """The A2A agent card of one mesh agent."""

    # Required by the protocol, so they have no defaults (and are never omitted).
    name: str
    description: str
    version: str
    skills: tuple[AgentSkill, ...]
    capabilities: AgentCapabilities
    default_input_modes: tuple[str, ...]
    default_output_modes: tuple[str, ...]
    supported_interfaces: tuple[AgentInterface, ...] = ()
    provider: AgentProvider | None = None
    documentation_url: str | None = None
    # In the protocol's JSON form, e.g. {"apiKey": {"httpAuthSecurityScheme": {"scheme": "Bearer"}}}.
    security_schemes: dict[str, Any] | None = None
    security_requirements: tuple[dict[str, Any], ...] = ()

    def skill_schemas(self) -> dict[str, SkillSchema]:
        """The bus-level schema of each skill, read from the Hivewire extension."""
        for extension in self.capabilities.extensions:
            if extension.uri == SKILL_SCHEMAS_EXTENSION and extension.params:
                return msgspec.convert(extension.params, dict[str, SkillSchema])
        return {}

    def skill(self, skill_id: str) -> AgentSkill | None:
        """The skill with this id, if the agent has it."""
        return next((skill for skill in self.skills if skill.id == skill_id), None)
