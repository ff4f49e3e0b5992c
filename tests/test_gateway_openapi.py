"""The gateway's OpenAPI document: true to the routes served, and the input of a fuzzer finding no 5xx."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks
from starlette.routing import Route

from bus import EmbeddedNats, new_id
from gateway.a2a import A2AEndpoint
from gateway.app import create_app
from gateway.deadletters import DeadLetterRoutes
from gateway.handoffs import HandoffQueue
from gateway.mcp import McpEndpoint
from gateway.openapi import ID_PATTERN, base_document
from gateway.rest import RestApi
from gateway.settings import GatewaySettings, TenantLimits
from gateway.traces import TraceRoutes
from tests.gateway_server import api_keys, local_address, serve_gateway
from tests.processes import agent_process
from tests.redis_server import RedisServer

RUN = new_id()[:8]
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


class Api:
    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.auth = {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
async def api(nats_server: EmbeddedNats, redis_server: RedisServer) -> AsyncIterator[Api]:
    tenant = f"fuzz{RUN}"
    settings = GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        nats_url=nats_server.url,
        redis_url=redis_server.url,
        gateway_agent="echo",
        gateway_skill="shout",
        gateway_timeout=2.0,
        gateway_tenant_limits={tenant: TenantLimits(rate=10_000, burst=10_000)},
    )
    async with agent_process(nats_server.url, "tests.zoo:echo"), serve_gateway(settings) as url:
        yield Api(url, (await api_keys(nats_server.url, tenant))[tenant])


def _document_methods(document: dict[str, Any]) -> dict[str, set[str]]:
    return {path: {method.upper() for method in item} for path, item in document["paths"].items()}


def test_every_route_served_is_documented_with_its_methods() -> None:
    settings = GatewaySettings(_env_file=None)  # type: ignore[call-arg]
    nothing: Any = None  # the routes are listed without the services they would run on
    routes = [
        *create_app(settings).routes,
        *RestApi(settings, nothing, nothing, nothing, nothing, nothing).routes(),
        *A2AEndpoint(settings, nothing, nothing, nothing, nothing, nothing).routes(),
        *HandoffQueue(settings, nothing, nothing, nothing).routes(),
        *DeadLetterRoutes(nothing, nothing).routes(),
        *TraceRoutes(nothing, nothing).routes(),
        *McpEndpoint(settings, nothing, nothing, nothing).routes(),
    ]
    served = {
        re.sub(r":\w+}", "}", route.path): set(route.methods) - {"HEAD"}
        for route in routes
        if isinstance(route, Route)  # not the console's static files (Mount)
    }
    assert served == _document_methods(base_document("test"))


def test_every_operation_has_examples_that_match_its_schemas_and_every_path_id_a_pattern() -> None:
    document = base_document("test")
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            media = [(p["name"], p) for p in operation.get("parameters", [])]
            for parameter in operation.get("parameters", []):
                assert "example" in parameter, f"{where}: {parameter['name']}"
                if parameter["in"] == "path" and parameter["schema"]["type"] == "string":
                    assert parameter["schema"]["pattern"] in (ID_PATTERN, "^[0-9a-fA-F]{32}$"), where
            if "requestBody" in operation:
                assert "example" in operation["requestBody"]["content"]["application/json"], where
                media += [("body", m) for m in operation["requestBody"]["content"].values()]
            responses = [
                (status, m)
                for status, r in operation["responses"].items()
                for m in r.get("content", {}).values()
            ]
            assert any("example" in m for _, m in responses) or path == "/docs", where
            for part, described in [*media, *responses]:
                if "example" in described:
                    schema = {**described["schema"], "components": document["components"]}
                    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(described["example"]))
                    assert not errors, f"{where} {part}: {errors[0].message}"


async def test_a_method_a_path_lacks_is_405_naming_the_ones_it_has(api: Api) -> None:
    document = base_document("test")
    async with httpx.AsyncClient(base_url=api.url, headers=api.auth) as client:
        for path, methods in _document_methods(document).items():
            concrete = path.format(
                agent="echo", skill="shout", cid="c1", task_id="t1", config_id="c1", seq=1, trace_id="ab" * 16
            )
            other = sorted(METHODS - methods)[0]
            response = await client.request(other, concrete)
            assert response.status_code == 405, f"{other} {path}: {response.status_code}"
            assert response.headers["content-type"] == "application/problem+json"
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert allowed - {"HEAD"} == methods, f"{path}: Allow {allowed}"


async def test_each_live_skill_is_documented_with_its_own_schemas(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        document = (await client.get("/openapi.json")).json()
    schemathesis.openapi.from_dict(document).validate()
    add = document["paths"]["/v1/agents/echo/skills/add"]["post"]
    body = add["requestBody"]["content"]["application/json"]["schema"]
    assert "required" not in body  # without an input, the skill gets an empty text
    assert body["properties"]["input"] == {"$ref": "#/components/schemas/echo.add.Numbers"}
    assert document["components"]["schemas"]["echo.add.Numbers"]["required"] == ["a", "b"]
    output = add["responses"]["200"]["content"]["application/json"]["schema"]
    assert output["properties"]["output"] == {"$ref": "#/components/schemas/echo.add.Sum"}
    count = document["paths"]["/v1/agents/echo/skills/count"]["post"]["responses"]["200"]["content"]
    assert set(count) == {"application/json", "text/event-stream"}
    assert "/v1/agents/echo/skills/add/tasks" in document["paths"]


# The fuzzer: schemathesis makes requests from the document, valid and invalid ones, for
# every operation, and follows its links (a new conversation's id to its messages, a task's
# to its status); none may get a 5xx, the one kept-alive connection is never dropped, and
# every answer is what the document says.

# Skills of the test agent that fail on purpose or run as long as they are asked to: their
# 5xx (hop limit, unavailable, deadline) are the mesh's answers, not the gateway's failures.
# /mcp speaks MCP's JSON-RPC, whose answers are the SDK's, not this document's problems: its hostile
# input is sent by test_mcp_gateway.py (no 5xx), its protocol exercised with the SDK's own client.
FAILING_BY_DESIGN = r"/skills/(loop|broken|nap|count|ask_absent)(/|$)|^/mcp$"
CONFORMANCE = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
]
_KEEP_ALIVE = 4.5  # uvicorn's timeout_keep_alive (5 s), less a margin
EXAMPLES = 600  # requests made one by one from the document
SCENARIOS = 40  # chains of requests along its links, in each run of the walker
LINKED = r"^/v1/conversations|^/v1/tasks/|/skills/[^/]+/tasks$"
WALKED = 400  # requests the walks make at least (within the budget)
BUDGET = 30.0  # seconds each fuzzer may take; it stops making requests past it


class Fuzzer:
    """Sends schemathesis' cases on one kept-alive connection and checks every answer."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = httpx.Client(
            base_url=api.url, timeout=10, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)
        )
        self.sent: list[tuple[str, int]] = []
        self.failures: list[str] = []
        self._connection: tuple[str, int] | None = None
        self._started = self._answered_at = time.monotonic()

    def over_budget(self, seconds: float = BUDGET) -> bool:
        return time.monotonic() - self._started > seconds

    def send(self, case: Any) -> httpx.Response:
        kwargs = case.as_transport_kwargs(base_url=self.api.url, headers=self.api.auth)
        try:
            request = self.client.build_request(
                kwargs["method"],
                kwargs["url"],
                headers=kwargs["headers"],
                params=kwargs["params"],
                content=_content(kwargs),
            )
        except (ValueError, TypeError, httpx.LocalProtocolError):
            reject()  # no HTTP client would send it (a NaN in JSON, a header that is not latin-1)
        idle = time.monotonic() - self._answered_at
        response = self.client.send(request)
        self._answered_at = time.monotonic()
        try:
            self._check(case, response, idle)
        except Exception as exc:
            # Kept: a walk replayed to report it meets a server that moved on (Hypothesis: "flaky").
            self.failures.append(f"{exc}")
            raise
        return response

    def _check(self, case: Any, response: httpx.Response, idle: float) -> None:
        where = f"{case.method} {case.formatted_path}"
        self.sent.append((where, response.status_code))
        assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:500]}"
        address = local_address(response)
        # uvicorn closes a connection idle for 5 s (its keep-alive timeout): a busy machine can
        # keep the fuzzer making its next request that long.
        if self._connection is not None and address != self._connection and idle < _KEEP_ALIVE:
            before = self.sent[-2] if len(self.sent) > 1 else None
            raise AssertionError(f"{where}: the connection was dropped after {before}")
        self._connection = None if response.headers.get("connection") == "close" else address
        # And the document tells the truth: statuses, media types, bodies and headers as
        # documented, and schema-breaking input refused (JSON-RPC answers its errors in a 200).
        rpc = case.operation.path.startswith("/a2a")
        case.validate_response(response, checks=CONFORMANCE if not rpc else CONFORMANCE[:-1])

    def report(self, what: str) -> None:
        statuses = collections.Counter(status for _, status in self.sent)
        print(f"{what}: {len(self.sent)} requests, {sorted(statuses.items())}")

    def close(self) -> None:
        self.client.close()


async def _document(api: Api) -> Any:
    async with httpx.AsyncClient(base_url=api.url) as client:
        document = (await client.get("/openapi.json")).json()
    return schemathesis.openapi.from_dict(document).exclude(path_regex=FAILING_BY_DESIGN)


@pytest.mark.slow
async def test_fuzzing_each_operation_finds_no_5xx_and_no_dropped_connection(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    schema = await _document(api)
    operations = [result.ok() for result in schema.get_all_operations()]
    cases = st.one_of(*(op.as_strategy(generation_mode=mode) for op in operations for mode in GenerationMode))
    fuzzer = Fuzzer(api)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def fuzz(case: Any) -> None:
        if not fuzzer.over_budget():
            fuzzer.send(case)

    try:
        await asyncio.to_thread(fuzz)
    except Exception:
        if fuzzer.failures:
            pytest.fail(fuzzer.failures[0])
        raise
    finally:
        fuzzer.close()
    fuzzer.report(f"fuzzed {len(operations)} operations")
    assert len(fuzzer.sent) >= 100
    assert _errors_logged(caplog) == []


@pytest.mark.slow
@pytest.mark.timeout(150)  # twice the budget until a walk reaches a made id, and the gateway's start
async def test_fuzzing_along_the_documents_links_finds_no_5xx_and_no_dropped_connection(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    # The operations the document links (what makes a conversation or a task, and what reads or
    # changes one): every other operation is fuzzed on its own above, and in a walk among all of
    # them a loaded machine's budget could pass before one follows a link. Following a
    # conversation's events waits for a turn to end: too slow to walk through.
    schema = (await _document(api)).include(path_regex=LINKED).exclude(operation_id="follow_events")
    fuzzer = Fuzzer(api)

    class Walk(schema.as_state_machine()):  # type: ignore[misc]
        def call(self, case: Any, **kwargs: Any) -> schemathesis.Response:
            return schemathesis.Response.from_any(fuzzer.send(case))

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            pass  # done as it was sent

    walks = settings(
        max_examples=SCENARIOS,
        stateful_step_count=8,
        # Generated walks only: a walk replayed (to target or shrink it) meets a server whose
        # state has moved on, which Hypothesis rightly calls flaky.
        phases=[Phase.generate],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )

    made_along_the_way = ("/v1/conversations/", "/v1/tasks/")  # no example id exists

    def followed() -> list[str]:
        return [w for w, status in fuzzer.sent if status < 300 and any(p in w for p in made_along_the_way)]

    def walk() -> None:
        # Walks are random: on a slow machine the budget may pass before one reaches a made id,
        # so until one has, the walker gets twice the budget.
        while not fuzzer.over_budget(BUDGET if followed() else 2 * BUDGET) and (
            len(fuzzer.sent) < WALKED or not followed()
        ):
            try:
                Walk.run(settings=walks)
            except Flaky:
                # Hypothesis saw the server answer a replayed step differently (a task moved on):
                # the gateway's doing, not a failure of it, unless a check failed.
                if fuzzer.failures:
                    raise

    try:
        await asyncio.to_thread(walk)
    except Exception:
        if fuzzer.failures:
            pytest.fail(fuzzer.failures[0])
        raise
    finally:
        fuzzer.close()
    fuzzer.report("walked the links")
    assert followed(), "no request reached a conversation or task made along the way"
    assert _errors_logged(caplog) == []


def _errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the gateway logged as errors (an unexpected one, or uvicorn's after a response started)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.split(".")[0] in ("uvicorn", "gateway", "bus")
    ]


def _content(kwargs: dict[str, Any]) -> bytes | None:
    """The body schemathesis made, as bytes (JSON without NaN, as a strict client would send it)."""
    if "json" in kwargs:
        return json.dumps(kwargs["json"], allow_nan=False).encode()
    data = kwargs.get("data")
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    raise TypeError(f"a body of {type(data).__name__}")
