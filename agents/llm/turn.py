"""A skill's model calls: the process's client bound to one request, its agent's models and its spend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Literal, TypeVar

import msgspec

from agents.errors import LLMError
from agents.llm.client import LLMClient, Scope, TokenStream
from agents.llm.messages import ChatMessage, Completion, Passage, Tool, Usage, estimate_tokens
from agents.llm.models import Model, ModelOverride
from agents.llm.wire import parse_json

__all__ = ["TurnLLM", "resolve_models"]

T = TypeVar("T")

# Output tokens assumed for a model declared without max_tokens, when estimating a call's ceiling.
UNBOUNDED_OUTPUT = 1024


def resolve_models(
    agent: str,
    declared: Mapping[str, Model],
    overrides: Mapping[str, ModelOverride],
    default: str | None,
) -> dict[str, Model]:
    """The models an agent uses, after the environment's overrides (keyed ``agent.use``)."""
    models = {use: model.apply(overrides.get(f"{agent}.{use}")) for use, model in declared.items()}
    if "default" not in models and default is not None:
        models["default"] = Model(name=default).apply(overrides.get(f"{agent}.default"))
    for key, override in overrides.items():
        owner, _, use = key.partition(".")
        if owner == agent and use not in models and override.name:
            models[use] = Model(name=override.name).apply(override)
    return models


class TurnLLM:
    """``ctx.llm``: model calls on behalf of one request, counted toward its spend."""

    def __init__(
        self,
        client: LLMClient,
        *,
        models: Mapping[str, Model],
        scope: Scope,
        emit: Callable[[str], Awaitable[None]],
    ) -> None:
        self._client = client
        self._models = models
        self._scope = scope
        self._emit = emit
        self.spend: dict[str, Usage] = {}

    @property
    def offline(self) -> bool:
        """True when no model endpoint is configured: answers are extractive."""
        return self._client.offline

    def model(self, use: str = "default") -> Model:
        """The model this agent uses for ``use``.

        Raises:
            LLMError: the agent declares no model for ``use`` (and none is configured).
        """
        model = self._models.get(use)
        if model is None:
            if self._client.offline:
                return Model(name="offline")
            raise LLMError(
                use, f"agent {self._scope.agent!r} declares no model for {use!r}; set HIVEWIRE_LLM_MODEL"
            )
        return model

    def ceiling(
        self,
        messages: Sequence[ChatMessage],
        *,
        use: str = "default",
        passages: Sequence[Passage] = (),
        tools: Sequence[Tool] = (),
    ) -> Usage:
        """The most a call would spend: its prompt's estimated tokens (four characters each) plus the
        model's ``max_tokens`` (1024 when unset), priced as the model is. For budgets, before the call."""
        model = self.model(use)
        chars = sum(len(p.text) + len(p.label) for p in passages)
        chars += sum(len(c.arguments) + len(c.name) for m in messages for c in m.tool_calls)
        if tools:
            chars += len(msgspec.json.encode([tool.to_openai() for tool in tools]))
        prompt = sum(estimate_tokens(m) for m in messages) + (chars + 3) // 4
        return self._client.price(model.name, prompt, model.max_tokens or UNBOUNDED_OUTPUT)

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        use: str = "default",
        passages: Sequence[Passage] = (),
        cache: bool | Literal["tenant"] = True,
        tools: Sequence[Tool] = (),
        tool_choice: str | None = None,
    ) -> Completion:
        """An answer from the model for ``use`` (``cache="tenant"``: share it across conversations).

        With ``tools``, the answer may be :attr:`Completion.tool_calls` to run and
        send back as :meth:`ChatMessage.tool` messages.
        """
        completion = await self._client.complete(
            self.model(use),
            messages,
            scope=self._scope_for(cache),
            passages=passages,
            cache=bool(cache),
            tools=tools,
            tool_choice=tool_choice,
        )
        self._count(completion)
        return completion

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        use: str = "default",
        passages: Sequence[Passage] = (),
        cache: bool | Literal["tenant"] = True,
        publish: bool = True,
        tools: Sequence[Tool] = (),
        tool_choice: str | None = None,
    ) -> TokenStream:
        """Stream the answer; with ``publish`` each token also goes to the conversation's events.

        Iterate the returned stream for the tokens; its ``completion`` is set at
        the end, with any tool calls the model asked for.
        """
        inner = self._client.stream(
            self.model(use),
            messages,
            scope=self._scope_for(cache),
            passages=passages,
            cache=bool(cache),
            tools=tools,
            tool_choice=tool_choice,
        )

        async def tokens(holder: TokenStream) -> AsyncIterator[str]:
            async for token in inner:
                if publish:
                    await self._emit(token)
                yield token
            holder.completion = inner.completion
            if inner.completion is not None:
                self._count(inner.completion)

        return TokenStream(tokens)

    async def structured(
        self,
        messages: Sequence[ChatMessage],
        out_type: type[T],
        *,
        use: str = "default",
        passages: Sequence[Passage] = (),
        cache: bool | Literal["tenant"] = True,
    ) -> T:
        """JSON from the model, decoded as ``out_type``.

        Raises:
            StructuredOutputError: the answer is not a valid ``out_type``.
            LLMError: offline mode: there is no model to ask.
        """
        if self._client.offline:
            raise LLMError("offline", f"offline mode cannot produce a structured {out_type.__name__}")
        completion = await self._client.complete_json(
            self.model(use),
            messages,
            out_type,
            scope=self._scope_for(cache),
            passages=passages,
            cache=bool(cache),
        )
        self._count(completion)
        return parse_json(completion, out_type)

    def _scope_for(self, cache: bool | Literal["tenant"]) -> Scope:
        if cache == "tenant":
            return Scope(self._scope.tenant, self._scope.agent, self._scope.context_id, cache="tenant")
        return self._scope

    def add(self, spend: dict[str, Usage]) -> None:
        """Count model spend made elsewhere for this request (an agent it called)."""
        for model, usage in spend.items():
            self.spend[model] = self.spend.get(model, Usage()) + usage

    def _count(self, completion: Completion) -> None:
        if completion.cached or completion.offline:
            return
        self.spend[completion.model] = self.spend.get(completion.model, Usage()) + completion.usage
