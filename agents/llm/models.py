"""Which model an agent uses for what: declared with the agent, overridable from the environment."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["Model", "ModelOverride", "ToolCallMode"]

# How tools are offered: the API's `tools`, or a schema-constrained JSON choice (agents.llm.jsontools).
ToolCallMode = Literal["native", "json"]


class Model(msgspec.Struct, frozen=True, kw_only=True):
    """A model and its sampling settings, for one use of an agent (``classify``, ``answer``...).

    Attributes:
        name: the endpoint's model name.
        temperature, max_tokens, top_p: sampling; ``None`` leaves the endpoint's default.
        fallback: the model to use when this one keeps failing (429 or 5xx).
        tool_calls: ``"json"`` for a model that cannot call tools (they are offered as a
            schema-constrained JSON choice); ``None`` leaves the process's ``HIVEWIRE_LLM_TOOL_CALLS``.
    """

    name: str
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    fallback: str | None = None
    tool_calls: ToolCallMode | None = None

    def apply(self, override: ModelOverride | None) -> Model:
        """This model with the fields ``override`` sets replaced."""
        if override is None:
            return self
        changes = {f: v for f in override.__struct_fields__ if (v := getattr(override, f)) is not None}
        return msgspec.structs.replace(self, **changes)


class ModelOverride(msgspec.Struct, frozen=True, kw_only=True):
    """What the environment may change of a declared model (``HIVEWIRE_LLM_MODELS``)."""

    name: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    fallback: str | None = None
    tool_calls: ToolCallMode | None = None
