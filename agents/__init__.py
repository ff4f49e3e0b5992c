"""Agents: declare typed skills, run each agent as its own process, and call across the mesh.

Names are imported on first use (PEP 562), so the command line and programs
that need one part of the package do not load the rest.
"""

from typing import TYPE_CHECKING

from bus.lazy import lazy_exports

if TYPE_CHECKING:
    from agents.agent import Agent, Skill
    from agents.calls import Call, Caller, Failed, Ok, Outcome
    from agents.card import AgentCard, AgentSkill, SkillSchema
    from agents.context import Context
    from agents.deadletter import DeadLetter, DeadLetters, Parked
    from agents.errors import (
        AgentDefinitionError,
        AgentError,
        AgentLoadError,
        HopLimitExceeded,
        InputRequired,
        InvalidInput,
        InvalidPageToken,
        LLMError,
        LocalModelError,
        McpToolError,
        ModelUnavailable,
        StateConflict,
        StructuredOutputError,
        SubmitUnconfirmed,
        TaskNotFound,
        TaskNotResumable,
        ToolError,
    )
    from agents.events import ConversationEvents
    from agents.history import ConversationHistory
    from agents.infrastructure import Infrastructure, ensure
    from agents.listing import TaskPage, TaskQuery
    from agents.llm import ChatMessage, Completion, Model, Passage, Tool, ToolCall, TurnLLM, Usage
    from agents.mcp import McpResult, McpServer
    from agents.mesh import Mesh
    from agents.process import load_agent, serve_agent
    from agents.redisstore import RedisStore
    from agents.registry import Instance, LiveAgent, Load, Registry
    from agents.resources import Resources
    from agents.runtime import AgentRuntime
    from agents.settings import AgentSettings
    from agents.state import ConversationState, Versioned
    from agents.tasks import TaskRecords, TaskRequest, Tasks
    from agents.turns import Turns

_EXPORTS = {
    "Agent": "agents.agent",
    "Skill": "agents.agent",
    "Call": "agents.calls",
    "Caller": "agents.calls",
    "Failed": "agents.calls",
    "Ok": "agents.calls",
    "Outcome": "agents.calls",
    "AgentCard": "agents.card",
    "AgentSkill": "agents.card",
    "SkillSchema": "agents.card",
    "Context": "agents.context",
    "DeadLetter": "agents.deadletter",
    "DeadLetters": "agents.deadletter",
    "Parked": "agents.deadletter",
    "AgentDefinitionError": "agents.errors",
    "AgentError": "agents.errors",
    "AgentLoadError": "agents.errors",
    "HopLimitExceeded": "agents.errors",
    "InputRequired": "agents.errors",
    "InvalidInput": "agents.errors",
    "InvalidPageToken": "agents.errors",
    "LLMError": "agents.errors",
    "LocalModelError": "agents.errors",
    "ModelUnavailable": "agents.errors",
    "StateConflict": "agents.errors",
    "StructuredOutputError": "agents.errors",
    "SubmitUnconfirmed": "agents.errors",
    "TaskNotFound": "agents.errors",
    "TaskNotResumable": "agents.errors",
    "ToolError": "agents.errors",
    "McpToolError": "agents.errors",
    "McpResult": "agents.mcp",
    "McpServer": "agents.mcp",
    "ConversationEvents": "agents.events",
    "ConversationHistory": "agents.history",
    "Infrastructure": "agents.infrastructure",
    "ensure": "agents.infrastructure",
    "ChatMessage": "agents.llm",
    "Completion": "agents.llm",
    "Model": "agents.llm",
    "Passage": "agents.llm",
    "Tool": "agents.llm",
    "ToolCall": "agents.llm",
    "TurnLLM": "agents.llm",
    "Usage": "agents.llm",
    "Mesh": "agents.mesh",
    "load_agent": "agents.process",
    "serve_agent": "agents.process",
    "RedisStore": "agents.redisstore",
    "Instance": "agents.registry",
    "LiveAgent": "agents.registry",
    "Load": "agents.registry",
    "Registry": "agents.registry",
    "Resources": "agents.resources",
    "AgentRuntime": "agents.runtime",
    "AgentSettings": "agents.settings",
    "ConversationState": "agents.state",
    "Versioned": "agents.state",
    "TaskPage": "agents.listing",
    "TaskQuery": "agents.listing",
    "TaskRecords": "agents.tasks",
    "TaskRequest": "agents.tasks",
    "Tasks": "agents.tasks",
    "Turns": "agents.turns",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = [
    "Agent",
    "AgentCard",
    "AgentDefinitionError",
    "AgentError",
    "AgentLoadError",
    "AgentRuntime",
    "AgentSettings",
    "AgentSkill",
    "Call",
    "Caller",
    "ChatMessage",
    "Completion",
    "Context",
    "ConversationEvents",
    "ConversationHistory",
    "ConversationState",
    "DeadLetter",
    "DeadLetters",
    "Failed",
    "HopLimitExceeded",
    "Infrastructure",
    "InputRequired",
    "Instance",
    "InvalidInput",
    "InvalidPageToken",
    "LLMError",
    "LiveAgent",
    "Load",
    "LocalModelError",
    "McpResult",
    "McpServer",
    "McpToolError",
    "Mesh",
    "Model",
    "ModelUnavailable",
    "Ok",
    "Outcome",
    "Parked",
    "Passage",
    "RedisStore",
    "Registry",
    "Resources",
    "Skill",
    "SkillSchema",
    "StateConflict",
    "StructuredOutputError",
    "SubmitUnconfirmed",
    "TaskNotFound",
    "TaskNotResumable",
    "TaskPage",
    "TaskQuery",
    "TaskRecords",
    "TaskRequest",
    "Tasks",
    "Tool",
    "ToolCall",
    "ToolError",
    "TurnLLM",
    "Turns",
    "Usage",
    "Versioned",
    "ensure",
    "load_agent",
    "serve_agent",
]
