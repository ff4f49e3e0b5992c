"""The model client: one pooled ``AsyncOpenAI`` per process, with retries, fallback, cache and accounting.

Every call goes: response cache -> the model (retried with backoff on 429, 5xx
and connection failures, honouring ``Retry-After``) -> its fallback model ->
:class:`~agents.errors.ModelUnavailable`. Each attempt is its own span
(``chat <model>``, GenAI semantic conventions), so a trace shows every retry
and the fallback. Tokens and cost are counted per tenant, agent and model.
Without an endpoint the client is in offline mode: extractive answers from
the passages, under the model name ``hivewire-offline-extractive``.
"""

from __future__ import annotations

import asyncio
import importlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec
from opentelemetry import metrics, trace

from agents.errors import LLMError, ModelUnavailable, StructuredOutputError
from agents.llm.cache import ResponseCache, digest
from agents.llm.messages import ChatMessage, Completion, Passage, Tool, ToolCall, Usage, object_schema
from agents.llm.models import Model
from agents.llm.offline import OFFLINE_MODEL, extractive_answer
from agents.llm.pricing import PriceTable

__all__ = ["LLMClient", "Scope", "TokenStream", "json_format", "parse_json"]

T = TypeVar("T")
R = TypeVar("R")

if TYPE_CHECKING:
    import openai


def _openai() -> ModuleType:
    """The ``openai`` package, imported on first use: it takes about a second and 30 MB,
    which an agent that never calls a model (or runs offline) should not pay."""
    return importlib.import_module("openai")


def _retryable(exc: BaseException) -> bool:
    """Worth another attempt: the endpoint is busy, failing or unreachable right now."""
    sdk = _openai()
    return isinstance(exc, (sdk.RateLimitError, sdk.InternalServerError, sdk.APIConnectionError))


_MAX_RETRY_AFTER = 10.0


@dataclass(frozen=True, slots=True)
class Scope:
    """Who a call is for: accounting labels and the cache namespace.

    ``cache="conversation"`` (the default) shares cached answers only within
    one conversation; ``"tenant"`` across the tenant's conversations, for
    deterministic work. Never across tenants.
    """

    tenant: str
    agent: str
    context_id: str
    cache: Literal["conversation", "tenant"] = "conversation"

    @property
    def namespace(self) -> str:
        return self.context_id if self.cache == "conversation" else "*"


class TokenStream:
    """Tokens of a streamed answer; :attr:`completion` is set once they are all read."""

    def __init__(self, tokens: Callable[[TokenStream], AsyncIterator[str]]) -> None:
        self.completion: Completion | None = None
        self._tokens = tokens(self)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._tokens


class LLMClient:
    """Model calls for one process."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        max_retries: int,
        retry_delay: float,
        prices: PriceTable,
        cache: ResponseCache,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        """Args:
        base_url: an OpenAI-compatible endpoint (``.../v1``); ``None`` for offline mode.
        max_retries: further attempts on one model after the first, before its fallback.
        retry_delay: the first pause between attempts (doubling, with jitter).
        """
        self._openai: openai.AsyncOpenAI | None = None
        if base_url:
            # The client pools its HTTP connections; retries are ours, so each is traced.
            self._openai = _openai().AsyncOpenAI(
                base_url=base_url, api_key=api_key or "unused", timeout=timeout, max_retries=0
            )
        self._max_retries = max_retries
        self._retry_delay = retry_delay
        self._prices = prices
        self._cache = cache
        self._tracer = trace.get_tracer("hivewire.llm", tracer_provider=tracer_provider)
        meter = metrics.get_meter("hivewire.llm", meter_provider=meter_provider)
        self._tokens = meter.create_counter("hivewire.llm.tokens", unit="{token}", description="Tokens used")
        self._cost = meter.create_counter(
            "hivewire.llm.cost", description="Cost of model calls (price table units)"
        )
        self._calls = meter.create_counter("hivewire.llm.calls", description="Model call attempts by outcome")

    @property
    def offline(self) -> bool:
        """True when no endpoint is configured."""
        return self._openai is None

    def price(self, model: str, input_tokens: int, output_tokens: int) -> Usage:
        """What ``model`` charges for these tokens (``HIVEWIRE_LLM_PRICES``; 0 for unknown models)."""
        return self._prices.usage(model, input_tokens, output_tokens)

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._openai is not None:
            await self._openai.close()

    async def complete(
        self,
        model: Model,
        messages: Sequence[ChatMessage],
        *,
        scope: Scope,
        passages: Sequence[Passage] = (),
        cache: bool = True,
        response_format: dict[str, Any] | None = None,
        tools: Sequence[Tool] = (),
        tool_choice: str | None = None,
    ) -> Completion:
        """Ask ``model`` (or the cache, or offline mode) for an answer.

        With ``tools`` the model may answer with :attr:`Completion.tool_calls`
        instead of text; ``tool_choice`` is ``"auto"`` (the API's default),
        ``"none"``, ``"required"`` or the name of the one tool it must call.
        Offline mode calls no tools.

        Raises:
            ModelUnavailable: the model and its fallback kept failing.
            LLMError: the endpoint refused the request (bad request, auth...).
        """
        if self._openai is None:
            return extractive_answer(list(messages), list(passages))
        offered = _tools(tools, tool_choice)
        key = self._key(model, messages, passages, response_format, offered) if cache else ""
        if cache and (hit := await self._cached(scope, key)) is not None:
            return hit
        prompt = _prompt(messages, passages)
        client = self._openai

        async def call(name: str, span: trace.Span) -> Completion:
            response = await client.chat.completions.create(
                model=name, messages=prompt, **_sampling(model), **_format(response_format), **offered
            )
            message = response.choices[0].message if response.choices else None
            usage = response.usage
            completion = self._account(
                scope,
                response.model or name,
                usage.prompt_tokens if usage else 0,
                usage.completion_tokens if usage else 0,
                span,
                message.content or "" if message is not None else "",
            )
            calls = tuple(
                ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
                for c in (message.tool_calls or () if message is not None else ())
                if c.type == "function"
            )
            return msgspec.structs.replace(completion, tool_calls=calls) if calls else completion

        completion = await self._attempts(model, call)
        if cache:
            await self._cache.put(scope.tenant, scope.namespace, key, completion)
        return completion

    def stream(
        self,
        model: Model,
        messages: Sequence[ChatMessage],
        *,
        scope: Scope,
        passages: Sequence[Passage] = (),
        cache: bool = True,
        tools: Sequence[Tool] = (),
        tool_choice: str | None = None,
    ) -> TokenStream:
        """Stream ``model``'s answer token by token.

        Retries and the fallback apply until the first token arrives; a failure
        after that raises :class:`LLMError` (the tokens already given out cannot
        be taken back). Tool calls the model streams are assembled into the
        final :attr:`TokenStream.completion`'s ``tool_calls``.
        """
        offered = _tools(tools, tool_choice)
        return TokenStream(
            lambda holder: self._stream(holder, model, messages, scope, passages, cache, offered)
        )

    async def structured(
        self,
        model: Model,
        messages: Sequence[ChatMessage],
        out_type: type[T],
        *,
        scope: Scope,
        passages: Sequence[Passage] = (),
        cache: bool = True,
    ) -> T:
        """Ask for JSON matching ``out_type`` (a msgspec type) and return it decoded.

        Raises:
            StructuredOutputError: the answer does not validate as ``out_type``.
            LLMError: offline mode (no model to ask), or as :meth:`complete`.
        """
        if self._openai is None:
            raise LLMError(OFFLINE_MODEL, f"offline mode cannot produce a structured {_name(out_type)}")
        completion = await self.complete(
            model,
            messages,
            scope=scope,
            passages=passages,
            cache=cache,
            response_format=json_format(out_type),
        )
        return parse_json(completion, out_type)

    async def _stream(
        self,
        holder: TokenStream,
        model: Model,
        messages: Sequence[ChatMessage],
        scope: Scope,
        passages: Sequence[Passage],
        cache: bool,
        offered: dict[str, Any],
    ) -> AsyncIterator[str]:
        if self._openai is None:
            answer = extractive_answer(list(messages), list(passages))
            for token in _words(answer.text):
                yield token
            holder.completion = answer
            return
        key = self._key(model, messages, passages, None, offered) if cache else ""
        if cache and (hit := await self._cached(scope, key)) is not None:
            for token in _words(hit.text):
                yield token
            holder.completion = hit
            return
        client = self._openai
        prompt = _prompt(messages, passages)

        async def open_stream(name: str, span: trace.Span) -> tuple[str, Any]:
            stream = await client.chat.completions.create(
                model=name,
                messages=prompt,
                stream=True,
                stream_options={"include_usage": True},
                **_sampling(model),
                **offered,
            )
            return name, stream

        # Retries and the fallback cover opening the stream; its tokens are read under their own span.
        name, stream = await self._attempts(model, open_stream)
        pieces: list[str] = []
        calls = _ToolCallParts()
        with self._tracer.start_as_current_span(
            f"chat {name} stream", kind=trace.SpanKind.CLIENT
        ) as read_span:
            read_span.set_attributes(_span_attributes(name, scope, 1, name != model.name))
            input_tokens = output_tokens = 0
            try:
                async for chunk in stream:
                    if chunk.usage is not None:
                        input_tokens, output_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
                    for choice in chunk.choices:
                        if choice.delta.tool_calls:
                            calls.add(choice.delta.tool_calls)
                        token = choice.delta.content
                        if token:
                            pieces.append(token)
                            yield token
            except _openai().OpenAIError as exc:
                read_span.record_exception(exc)
                read_span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                raise LLMError(name, f"the stream broke after {len(pieces)} tokens: {exc}") from exc
            completion = self._account(scope, name, input_tokens, output_tokens, read_span, "".join(pieces))
            if calls:
                completion = msgspec.structs.replace(completion, tool_calls=calls.assembled())
        if cache:
            await self._cache.put(scope.tenant, scope.namespace, key, completion)
        holder.completion = completion

    async def _attempts(
        self,
        model: Model,
        call: Callable[[str, trace.Span], Awaitable[R]],
    ) -> R:
        names = [model.name] + ([model.fallback] if model.fallback and model.fallback != model.name else [])
        attempts = 0
        last = ""
        for name in names:
            for attempt in range(self._max_retries + 1):
                attempts += 1
                with self._tracer.start_as_current_span(f"chat {name}", kind=trace.SpanKind.CLIENT) as span:
                    span.set_attributes(
                        {
                            "gen_ai.operation.name": "chat",
                            "gen_ai.request.model": name,
                            "hivewire.llm.attempt": attempts,
                            "hivewire.llm.fallback": name != model.name,
                        }
                    )
                    try:
                        result = await call(name, span)
                    except Exception as exc:
                        if not isinstance(exc, _openai().APIError):
                            raise
                        last = _describe(exc)
                        span.set_attribute("error.type", type(exc).__name__)
                        span.set_status(trace.Status(trace.StatusCode.ERROR, last))
                        self._calls.add(1, {"gen_ai.request.model": name, "outcome": type(exc).__name__})
                        if not _retryable(exc):
                            # A refused request (bad request, auth...): no attempt would fare better.
                            raise LLMError(name, last) from exc
                        if attempt < self._max_retries:
                            await asyncio.sleep(self._delay(attempt, exc))
                        continue
                    self._calls.add(1, {"gen_ai.request.model": name, "outcome": "ok"})
                    return result
        raise ModelUnavailable(names, attempts, last)

    def _delay(self, attempt: int, exc: Exception) -> float:
        retry_after = None
        if isinstance(exc, _openai().APIStatusError):
            header = exc.response.headers.get("retry-after")
            try:
                retry_after = float(header) if header is not None else None
            except ValueError:
                retry_after = None
        if retry_after is not None:
            return min(retry_after, _MAX_RETRY_AFTER)
        base: float = self._retry_delay * 2**attempt
        return base / 2 + random.uniform(0, base / 2)

    async def _cached(self, scope: Scope, key: str) -> Completion | None:
        found = await self._cache.get(scope.tenant, scope.namespace, key)
        if found is None:
            return None
        completion, layer = found
        span = trace.get_current_span()
        span.add_event(
            "llm cache hit", {"hivewire.llm.cache.layer": layer, "gen_ai.response.model": completion.model}
        )
        return msgspec.structs.replace(completion, cached=True, usage=Usage())

    def _account(
        self, scope: Scope, model: str, input_tokens: int, output_tokens: int, span: trace.Span, text: str
    ) -> Completion:
        usage = self._prices.usage(model, input_tokens, output_tokens)
        labels = {"tenant": scope.tenant, "agent": scope.agent, "gen_ai.response.model": model}
        self._tokens.add(input_tokens, {**labels, "gen_ai.token.type": "input"})
        self._tokens.add(output_tokens, {**labels, "gen_ai.token.type": "output"})
        self._cost.add(usage.cost, labels)
        span.set_attributes(
            {
                "gen_ai.response.model": model,
                "gen_ai.usage.input_tokens": input_tokens,
                "gen_ai.usage.output_tokens": output_tokens,
                "hivewire.llm.cost": usage.cost,
            }
        )
        return Completion(text=text, model=model, usage=usage)

    @staticmethod
    def _key(
        model: Model,
        messages: Sequence[ChatMessage],
        passages: Sequence[Passage],
        response_format: dict[str, Any] | None,
        offered: dict[str, Any],
    ) -> str:
        return digest(
            [
                model.name,
                model.temperature,
                model.max_tokens,
                model.top_p,
                messages,
                passages,
                response_format,
                offered or None,
            ]
        )


def json_format(out_type: type[Any]) -> dict[str, Any]:
    """The ``response_format`` that asks for JSON matching ``out_type``'s schema."""
    return {
        "type": "json_schema",
        "json_schema": {"name": _name(out_type), "schema": object_schema(out_type)},
    }


def parse_json(completion: Completion, out_type: type[T]) -> T:
    """Decode a completion asked for with :func:`json_format`.

    Raises:
        StructuredOutputError: it is not valid JSON of ``out_type``.
    """
    try:
        return msgspec.json.decode(_strip_fences(completion.text), type=out_type)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise StructuredOutputError(completion.model, _name(out_type), str(exc), completion.text) from None


def _name(out_type: type[Any]) -> str:
    return str(getattr(out_type, "__name__", "Output"))


def _span_attributes(name: str, scope: Scope, attempt: int, fallback: bool) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": name,
        "hivewire.llm.attempt": attempt,
        "hivewire.llm.fallback": fallback,
        "hivewire.tenant": scope.tenant,
    }


def _prompt(messages: Sequence[ChatMessage], passages: Sequence[Passage]) -> list[Any]:
    prompt: list[Any] = []
    if passages:
        numbered = "\n\n".join(f"[{n}] {p.label}:\n{p.text}" for n, p in enumerate(passages, 1))
        prompt.append(
            {
                "role": "system",
                "content": "Answer from these passages and cite them as [n]. If they do not contain the "
                f"answer, say so.\n\n{numbered}",
            }
        )
    prompt.extend(_chat_message(m) for m in messages)
    return prompt


def _chat_message(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _tools(tools: Sequence[Tool], tool_choice: str | None) -> dict[str, Any]:
    """The request's ``tools`` and ``tool_choice`` (a tool's name forces that tool)."""
    offered: dict[str, Any] = {}
    if tools:
        offered["tools"] = [tool.to_openai() for tool in tools]
    if tool_choice is not None:
        if tool_choice in ("auto", "none", "required"):
            offered["tool_choice"] = tool_choice
        else:
            offered["tool_choice"] = {"type": "function", "function": {"name": tool_choice}}
    return offered


class _ToolCallParts:
    """Tool calls of a streamed answer, put together from their pieces (keyed by index)."""

    def __init__(self) -> None:
        self._calls: dict[int, tuple[str, str, list[str]]] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(self, deltas: Sequence[Any]) -> None:
        for delta in deltas:
            call_id, name, arguments = self._calls.get(delta.index, ("", "", []))
            function = delta.function
            if function is not None:
                name = name or function.name or ""  # sent whole, with the call's first piece
                if function.arguments:
                    arguments.append(function.arguments)
            self._calls[delta.index] = (delta.id or call_id, name, arguments)

    def assembled(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(id=call_id, name=name, arguments="".join(arguments))
            for _, (call_id, name, arguments) in sorted(self._calls.items())
        )


def _sampling(model: Model) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if model.temperature is not None:
        params["temperature"] = model.temperature
    if model.max_tokens is not None:
        params["max_tokens"] = model.max_tokens
    if model.top_p is not None:
        params["top_p"] = model.top_p
    return params


def _format(response_format: dict[str, Any] | None) -> dict[str, Any]:
    return {} if response_format is None else {"response_format": response_format}


def _describe(exc: Exception) -> str:
    if isinstance(exc, _openai().APIStatusError):
        return f"HTTP {exc.status_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def _words(text: str) -> list[str]:
    """Split text into stream-sized pieces that join back to the same text."""
    pieces = text.split(" ")
    return [piece + " " for piece in pieces[:-1]] + [pieces[-1]] if pieces else []


def _strip_fences(text: str) -> str:
    """Models often wrap JSON in a Markdown code fence; the fence is not part of the answer."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped.strip()
