"""Agents: declare typed skills, run each agent as its own process, and call across the mesh."""

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
    InvalidInput,
    LLMError,
    ModelUnavailable,
    StateConflict,
    StructuredOutputError,
    TaskNotFound,
)
from agents.events import ConversationEvents
from agents.history import ConversationHistory
from agents.infrastructure import Infrastructure, ensure
from agents.llm import ChatMessage, Completion, Model, Passage, TurnLLM, Usage
from agents.mesh import Mesh
from agents.process import load_agent, serve_agent
from agents.redisstore import RedisStore
from agents.registry import Instance, LiveAgent, Load, Registry
from agents.resources import Resources
from agents.runtime import AgentRuntime
from agents.settings import AgentSettings
from agents.state import ConversationState, Versioned
from agents.tasks import TaskRecords, TaskRequest, Tasks

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
    "Instance",
    "InvalidInput",
    "LLMError",
    "LiveAgent",
    "Load",
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
    "TaskNotFound",
    "TaskRecords",
    "TaskRequest",
    "Tasks",
    "TurnLLM",
    "Usage",
    "Versioned",
    "ensure",
    "load_agent",
    "serve_agent",
]
