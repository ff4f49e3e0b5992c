"""Settings of an agent process: the bus settings plus how the runtime behaves."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, StringConstraints, model_validator

from agents.mcp.servers import SERVER_NAME, McpServerOptions
from bus.settings import NatsSettings

__all__ = ["AgentSettings"]


class AgentSettings(NatsSettings):
    """Read from ``HIVEWIRE_*`` environment variables (and ``.env``) in an agent's ``main()``.

    The registry TTL is derived from the heartbeat: an agent that stops
    heartbeating disappears after ``heartbeat_misses`` missed beats.
    """

    heartbeat_interval: float = Field(default=2.0, gt=0, description="Seconds between registry beats.")
    heartbeat_misses: int = Field(default=3, ge=2, description="Missed beats before an agent is gone.")
    max_hops: int = Field(default=8, ge=1, description="Longest chain of agent-to-agent calls in a turn.")
    max_concurrency: int = Field(default=64, ge=1, description="Interactive requests handled at once.")
    task_concurrency: int = Field(default=4, ge=1, description="Durable tasks run at once per replica.")
    task_ack_wait: float = Field(
        default=30.0,
        gt=0,
        description="Seconds without a progress beat before a task goes to another replica.",
    )
    turn_ack_wait: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds without a progress beat before a streamed conversation turn goes to another "
            "replica (its client waits that long after the replica running it died)."
        ),
    )
    task_max_deliveries: int = Field(
        default=5, ge=1, description="Deliveries of a failing task before it is dead-lettered."
    )
    task_retry_delay: float = Field(default=1.0, ge=0, description="First redelivery delay of a failed task.")
    task_dedup_window: float = Field(
        default=600.0, gt=0, description="Seconds in which a resubmitted message id is ignored."
    )
    task_retention: float = Field(
        default=7 * 86400.0, gt=0, description="Seconds task records and dead letters are kept."
    )
    task_list_scan: int = Field(
        default=1000,
        ge=100,
        description="Most tasks one listing call examines when filtering by context or state.",
    )
    state_ttl: float = Field(default=86400.0, gt=0, description="Seconds shared conversation state is kept.")
    drain_grace: float = Field(default=30.0, ge=0, description="Seconds SIGTERM waits for in-flight work.")

    llm_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint (.../v1). Unset: offline mode."
    )
    llm_api_key: SecretStr | None = None
    llm_timeout: float = Field(default=60.0, gt=0, description="Seconds one model request may take.")
    llm_max_retries: int = Field(default=2, ge=0, description="Retries on a model before its fallback.")
    llm_retry_delay: float = Field(default=0.5, ge=0, description="First pause between retries (doubling).")
    llm_model: str | None = Field(default=None, description="Model for agents that declare none.")
    llm_models: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='Overrides of declared models, by "agent.use": {"name": ..., "temperature": ...}.',
    )
    llm_tool_calls: Literal["native", "json"] = Field(
        default="native",
        description="How tools are offered to models: native tool calls, or (for models without them) "
        "a schema-constrained JSON choice.",
    )
    llm_prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='Price per million tokens by model: {"gpt-4o": {"input": 2.5, "output": 10}}.',
    )

    redis_url: str | None = Field(default=None, description="redis:// or rediss://. Unset: in-process only.")
    redis_password: SecretStr | None = None
    redis_timeout: float = Field(default=0.5, gt=0, description="Seconds before Redis counts as down.")
    redis_retry_interval: float = Field(default=2.0, gt=0, description="Seconds between tries while down.")

    cache_ttl: float = Field(default=3600.0, gt=0, description="Seconds a cached model answer lives.")
    cache_max_entries: int = Field(default=2048, ge=1, description="Answers the in-process cache holds.")
    tool_cache_ttl: float = Field(
        default=86400.0, gt=0, description="Seconds a cached tool result lives (keyed by its data's hash)."
    )
    tool_cache_max_entries: int = Field(
        default=1024, ge=1, description="Tool results the in-process cache holds."
    )
    history_ttl: float = Field(
        default=7 * 86400.0, gt=0, description="Seconds a conversation's history lives."
    )
    history_max_turns: int = Field(default=50, ge=1, description="Turns kept per conversation.")
    history_token_budget: int = Field(default=3000, ge=1, description="Tokens of history sent to a model.")
    history_pending_max: int = Field(
        default=10_000,
        ge=0,
        description="Turns made during a Redis outage kept (across conversations) to write once it is back.",
    )

    mcp_servers: dict[Annotated[str, StringConstraints(pattern=SERVER_NAME)], McpServerOptions] = Field(
        default_factory=dict,
        description='MCP servers by name, added to (or replacing) the agent\'s own: {"files": {"command": '
        '["mcp-files", "/srv"]}, "search": {"url": "http://search:9000/mcp", "cache": ["lookup"]}}.',
    )

    @property
    def registry_ttl(self) -> float:
        """How long a registry entry lives without a heartbeat."""
        return self.heartbeat_interval * self.heartbeat_misses

    @model_validator(mode="after")
    def _check(self) -> AgentSettings:
        if self.task_ack_wait < 1.0:
            raise ValueError("task_ack_wait must be at least 1 second")
        if self.turn_ack_wait < 1.0:
            raise ValueError("turn_ack_wait must be at least 1 second")
        return self
