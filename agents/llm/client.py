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
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgspec
from opentelemetry import metrics, trace

from agents.errors import LLMError, ModelUnavailable
from agents.llm import jsontools
from agents.llm.cache import ResponseCache, digest
from agents.llm.messages import ChatMessage, Completion, Passage, Tool, ToolCall, Usage, object_schema
from agents.llm.models import Model, ToolCallMode
from agents.llm.offline import OFFLINE_MODEL, extractive_answer
from agents.llm.pricing import PriceTable
from agents.llm.wire import (
    ToolCallParts,
    json_format,
    json_object_format,
    parse_json,
    prompt,
    sampling,
    tool_params,
    type_name,
    words,
)
from bus.telemetry import DURATION_BUCKETS

__all__ = ["LLMClient", "Scope", "TokenStream"]

log = logging.getLogger(__name__)

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
        tool_calls: ToolCallMode = "native",
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        """Args:
        base_url: an OpenAI-compatible endpoint (``.../v1``); ``None`` for offline mode.
        max_retries: further attempts on one model after the first, before its fallback.
        retry_delay: the first pause between attempts (doubling, with jitter).
        tool_calls: how models that set none are offered tools: ``"native"`` (the API's
            ``tools``) or ``"json"`` (a schema-constrained JSON choice, for models without tool calls).
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
        self._tool_calls = tool_calls
        # Models whose endpoint refused a JSON schema: asked in JSON mode from then on.
        self._schemas_refused: set[str] = set()
        self._tracer = trace.get_tracer("hivewire.llm", tracer_provider=tracer_provider)
        meter = metrics.get_meter("hivewire.llm", meter_provider=meter_provider)
        self._tokens = meter.create_counter("hivewire.llm.tokens", unit="{token}", description="Tokens used")
        self._cost = meter.create_counter(
            "hivewire.llm.cost", description="Cost of model calls (price table units)"
        )
        self._calls = meter.create_counter("hivewire.llm.calls", description="Model call attempts by outcome")
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Duration of one model call attempt.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

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
        A model set to ``tool_calls="json"`` makes its choice as
        schema-constrained JSON instead (:mod:`agents.llm.jsontools`).
        Offline mode calls no tools.

        Raises:
            ModelUnavailable: the model and its fallback kept failing.
            LLMError: the endpoint refused the request (bad request, auth...).
        """
        if self._openai is None:
            return extractive_answer(list(messages), list(passages))
        request = self._request(model, messages, response_format, tools, tool_choice)
        return await self._complete(model, request, scope=scope, passages=passages, cache=cache)

    async def complete_json(
        self,
        model: Model,
        messages: Sequence[ChatMessage],
        out_type: type[Any],
        *,
        scope: Scope,
        passages: Sequence[Passage] = (),
        cache: bool = True,
    ) -> Completion:
        """An answer asked for as JSON of ``out_type``: by its schema (``response_format``
        ``json_schema``), or, from an endpoint that refuses schemas, in JSON mode with the
        schema in the prompt. Which one answered is in the usage's ``modes``.

        Raises:
            LLMError: offline mode (no model to ask), or as :meth:`complete`.
        """
        if self._openai is None:
            raise LLMError(OFFLINE_MODEL, f"offline mode cannot produce a structured {type_name(out_type)}")
        if model.name not in self._schemas_refused:
            request = _Request(
                list(messages), {"response_format": json_format(out_type)}, modes=("structured:json_schema",)
            )
            try:
                return await self._complete(model, request, scope=scope, passages=passages, cache=cache)
            except LLMError as exc:
                if not _refused(exc):
                    raise
                # Said once per model: every later call goes straight to JSON mode.
                log.warning(
                    "model %s refused a JSON schema (%s); asking in JSON mode", model.name, exc.reason
                )
                self._schemas_refused.add(model.name)
        response_format, instruction = json_object_format(object_schema(out_type))
        request = _Request(
            list(messages),
            {"response_format": response_format},
            instruction,
            modes=("structured:json_object",),
        )
        return await self._complete(model, request, scope=scope, passages=passages, cache=cache)

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
        final :attr:`TokenStream.completion`'s ``tool_calls``; a model whose
        tool calls are emulated answers whole, then its text is given out.
        """
        return TokenStream(
            lambda holder: self._stream(holder, model, messages, scope, passages, cache, tools, tool_choice)
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
        completion = await self.complete_json(
            model, messages, out_type, scope=scope, passages=passages, cache=cache
        )
        return parse_json(completion, out_type)

    def _request(
        self,
        model: Model,
        messages: Sequence[ChatMessage],
        response_format: dict[str, Any] | None,
        tools: Sequence[Tool],
        tool_choice: str | None,
    ) -> _Request:
        """What to send: tools natively, or as a JSON choice for a model that cannot call them."""
        params: dict[str, Any] = {} if response_format is None else {"response_format": response_format}
        if not tools:
            return _Request(list(messages), params)
        if (model.tool_calls or self._tool_calls) == "native":
            return _Request(
                list(messages), {**params, **tool_params(tools, tool_choice)}, modes=("tools:native",)
            )
        plain = jsontools.as_text(messages)
        if tool_choice == "none":
            return _Request(plain, params, modes=("tools:json",))
        choice = {**params, "response_format": jsontools.response_format(tools, tool_choice)}
        instruction = jsontools.instruction(tools, tool_choice)
        return _Request(plain, choice, instruction, modes=("tools:json",), emulated=True)

    async def _complete(
        self, model: Model, request: _Request, *, scope: Scope, passages: Sequence[Passage], cache: bool
    ) -> Completion:
        assert self._openai is not None
        key = self._key(model, request, passages) if cache else ""
        if cache and (hit := await self._cached(scope, key)) is not None:
            return hit
        messages = prompt(request.messages, passages, instruction=request.instruction)
        client = self._openai

        async def call(name: str, span: trace.Span) -> Completion:
            response = await client.chat.completions.create(
                model=name, messages=messages, **sampling(model), **request.params
            )
            choice = response.choices[0] if response.choices else None
            message = choice.message if choice is not None else None
            usage = response.usage
            completion = self._account(
                scope,
                response.model or name,
                usage.prompt_tokens if usage else 0,
                usage.completion_tokens if usage else 0,
                span,
                message.content or "" if message is not None else "",
                modes=request.modes,
                truncated=choice is not None and choice.finish_reason == "length",
            )
            calls = tuple(
                ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
                for c in (message.tool_calls or () if message is not None else ())
                if c.type == "function"
            )
            return msgspec.structs.replace(completion, tool_calls=calls) if calls else completion

        completion = await self._attempts(model, call)
        if request.emulated:
            completion = jsontools.read(completion)
        if cache:
            await self._cache.put(scope.tenant, scope.namespace, key, completion)
        return completion

    async def _stream(
        self,
        holder: TokenStream,
        model: Model,
        messages: Sequence[ChatMessage],
        scope: Scope,
        passages: Sequence[Passage],
        cache: bool,
        tools: Sequence[Tool],
        tool_choice: str | None,
    ) -> AsyncIterator[str]:
        if self._openai is None:
            answer = extractive_answer(list(messages), list(passages))
            for token in words(answer.text):
                yield token
            holder.completion = answer
            return
        request = self._request(model, messages, None, tools, tool_choice)
        if request.emulated:
            # A JSON choice means nothing until it is whole.
            answer = await self._complete(model, request, scope=scope, passages=passages, cache=cache)
            for token in words(answer.text):
                yield token
            holder.completion = answer
            return
        key = self._key(model, request, passages) if cache else ""
        if cache and (hit := await self._cached(scope, key)) is not None:
            for token in words(hit.text):
                yield token
            holder.completion = hit
            return
        client = self._openai
        chat = prompt(request.messages, passages, instruction=request.instruction)

        async def open_stream(name: str, span: trace.Span) -> tuple[str, Any]:
            stream = await client.chat.completions.create(
                model=name,
                messages=chat,
                stream=True,
                stream_options={"include_usage": True},
                **sampling(model),
                **request.params,
            )
            return name, stream

        # Retries and the fallback cover opening the stream; its tokens are read under their own span.
        name, stream = await self._attempts(model, open_stream)
        pieces: list[str] = []
        calls = ToolCallParts()
        truncated = False
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
                        truncated = truncated or choice.finish_reason == "length"
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
            completion = self._account(
                scope,
                name,
                input_tokens,
                output_tokens,
                read_span,
                "".join(pieces),
                modes=request.modes,
                truncated=truncated,
            )
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
                    started = time.perf_counter()
                    timing = {"gen_ai.operation.name": "chat", "gen_ai.request.model": name}
                    try:
                        result = await call(name, span)
                    except Exception as exc:
                        timing["error.type"] = type(exc).__qualname__
                        self._duration.record(time.perf_counter() - started, timing)
                        if not isinstance(exc, _openai().APIError):
                            raise
                        last = _describe(exc)
                        span.set_attribute("error.type", type(exc).__name__)
                        span.set_status(trace.Status(trace.StatusCode.ERROR, last))
                        self._calls.add(1, {"gen_ai.request.model": name, "outcome": type(exc).__name__})
                        if not _retryable(exc):
                            # A refused request (bad request, auth...): no attempt would fare better.
                            raise LLMError(name, last) from exc
                        retrying = attempt < self._max_retries
                        log.warning(
                            "model %s failed (%s); %s",
                            name,
                            last,
                            "trying again" if retrying else "giving up on it",
                        )
                        if retrying:
                            await asyncio.sleep(self._delay(attempt, exc))
                        continue
                    self._duration.record(time.perf_counter() - started, timing)
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
        self,
        scope: Scope,
        model: str,
        input_tokens: int,
        output_tokens: int,
        span: trace.Span,
        text: str,
        *,
        modes: tuple[str, ...] = (),
        truncated: bool = False,
    ) -> Completion:
        usage = msgspec.structs.replace(self._prices.usage(model, input_tokens, output_tokens), modes=modes)
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
        return Completion(text=text, model=model, usage=usage, truncated=truncated)

    @staticmethod
    def _key(model: Model, request: _Request, passages: Sequence[Passage]) -> str:
        return digest(
            [
                model.name,
                model.temperature,
                model.max_tokens,
                model.top_p,
                request.messages,
                passages,
                request.params.get("response_format"),
                {k: v for k, v in request.params.items() if k != "response_format"} or None,
                request.instruction or None,
            ]
        )


@dataclass(frozen=True, slots=True)
class _Request:
    """One call's messages, extra request parameters, and how it asks for what it wants.

    ``instruction`` joins the system message; ``modes`` go into the usage;
    ``emulated``: the reply is a JSON tool choice to read back (:mod:`agents.llm.jsontools`).
    """

    messages: list[ChatMessage]
    params: dict[str, Any]
    instruction: str = ""
    modes: tuple[str, ...] = ()
    emulated: bool = False


def _refused(exc: LLMError) -> bool:
    """The endpoint refused the request itself (400, 422): it does not take what was asked."""
    sdk = _openai()
    return isinstance(exc.__cause__, (sdk.BadRequestError, sdk.UnprocessableEntityError))


def _span_attributes(name: str, scope: Scope, attempt: int, fallback: bool) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": name,
        "hivewire.llm.attempt": attempt,
        "hivewire.llm.fallback": fallback,
        "hivewire.tenant": scope.tenant,
    }


def _describe(exc: Exception) -> str:
    if isinstance(exc, _openai().APIStatusError):
        return f"HTTP {exc.status_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"
