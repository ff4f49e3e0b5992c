"""Model calls for agents: pooled client, retries and fallback, response cache, accounting, offline mode."""

from agents.llm.cache import CacheStats, LocalCache, ResponseCache
from agents.llm.client import LLMClient, Scope, TokenStream
from agents.llm.messages import ChatMessage, Completion, Passage, Tool, ToolCall, Usage
from agents.llm.models import Model, ModelOverride
from agents.llm.offline import OFFLINE_MODEL, extractive_answer
from agents.llm.pricing import Price, PriceTable
from agents.llm.turn import TurnLLM, resolve_models

__all__ = [
    "OFFLINE_MODEL",
    "CacheStats",
    "ChatMessage",
    "Completion",
    "LLMClient",
    "LocalCache",
    "Model",
    "ModelOverride",
    "Passage",
    "Price",
    "PriceTable",
    "ResponseCache",
    "Scope",
    "TokenStream",
    "Tool",
    "ToolCall",
    "TurnLLM",
    "Usage",
    "extractive_answer",
    "resolve_models",
]
