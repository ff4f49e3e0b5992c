"""The console in a real browser (Debian's headless Chromium, driven by Playwright) against a whole
desk: sign in, a streamed and cited answer, a dropped connection that resumes without losing or
repeating text, a hand-off answered by a person, a dead letter replayed, the widget on another
site, and another tenant who sees none of it. Each page is photographed to .hivewire/screenshots."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents import Mesh
from agents.settings import AgentSettings
from bus import EmbeddedNats, TelemetrySettings, new_id, start_telemetry
from bus.client import Bus
from gateway.keys import ApiKeys
from gateway.settings import GatewaySettings
from knowledge.messages import IngestReply, IngestRequest
from tests.gateway_server import serve_gateway
from tests.openai_server import OpenAIServer
from tests.processes import agent_process
from tests.redis_server import RedisServer
from tests.tcp_proxy import TcpProxy

CHROMIUM = os.environ.get("HIVEWIRE_CHROMIUM", "/usr/bin/chromium")
try:
    from playwright.async_api import Browser, Page, async_playwright
    from playwright.async_api import expect as _expect
except ImportError:  # pragma: no cover - the dev extra installs it
    pytest.skip(
        "the browser tests need Playwright (the dev extra: bash .ci/install)", allow_module_level=True
    )
if shutil.which(CHROMIUM) is None:
    pytest.skip(
        f"the browser tests need Chromium at {CHROMIUM} (Debian's chromium package; .ci/install installs "
        "it where apt-get can run, or set HIVEWIRE_CHROMIUM)",
        allow_module_level=True,
    )

# Setting up the desk (four agent processes, a knowledge base) counts toward the first test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / ".hivewire" / "screenshots"
SAMPLES = ROOT / "knowledge" / "samples" / "support"
RUN = new_id()[:6]
ACME, GLOBEX = f"acme{RUN}", f"globex{RUN}"


class Site:
    """Another web site on this machine (another origin): serves one page, set by the test.

    On loopback, like the gateway: Chromium does not let a page from the internet reach
    a loopback address at all (local network access).
    """

    def __init__(self) -> None:
        self.html = ""
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> Site:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass  # the request's head; the page is the same for every path
        body = self.html.encode()
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ANSWER = (
    "Duplicate charges are refunded in full [1]. The refund reaches your card in 5 to 10 business days [2]."
)
expect = _expect


@dataclass
class Desk:
    url: str  # the gateway, through a proxy whose connections the tests can cut
    gateway: str  # the gateway itself
    proxy: TcpProxy
    keys: dict[str, str]
    model: OpenAIServer
    mesh: Mesh
    browser: Browser
    letter_task: dict[str, Any]
    site: Site


@pytest.fixture(scope="module")
async def desk(
    nats_server: EmbeddedNats, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Desk]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    url = nats_server.url
    site = await Site().start()
    traced = {
        "OTEL_TRACES_EXPORTER": "hivewire",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRICS_EXPORTER": "none",
    }
    with OpenAIServer() as model:
        env = {
            **traced,
            "HIVEWIRE_LLM_BASE_URL": model.url,
            "HIVEWIRE_LLM_API_KEY": "test",
            "HIVEWIRE_LLM_MODELS": json.dumps(
                {"triage.classify": {"name": "small"}, "answer.default": {"name": "big"}}
            ),
            "HIVEWIRE_REDIS_URL": redis_server.url,
            "HIVEWIRE_CHROMA_PATH": str(tmp_path_factory.mktemp("chroma")),
        }
        settings = GatewaySettings(
            _env_file=None,  # type: ignore[call-arg]
            nats_url=url,
            redis_url=redis_server.url,
            gateway_agent="triage",
            gateway_skill="chat",
            gateway_timeout=30.0,
            gateway_key_cache=0,
            gateway_cors_origins={ACME: [site.url]},
        )
        telemetry = start_telemetry(
            "hivewire-gateway",
            settings=TelemetrySettings(
                otel_traces_exporter="hivewire", otel_metrics_exporter="none", otel_bsp_schedule_delay=100
            ),
            nats=settings,
        )
        agents = [
            agent_process(url, target, **env)
            for target in (
                "knowledge.agent:knowledge",
                "agents.desk.triage:triage",
                "agents.desk.answer:answer",
                "tests.zoo:jobs",
            )
        ]
        async with contextlib.AsyncExitStack() as started:
            for agent in agents:  # one at a time: each gets its own start-up budget on a busy machine
                await started.enter_async_context(agent)
            gateway = await started.enter_async_context(serve_gateway(settings, telemetry))
            playwright = await started.enter_async_context(async_playwright())
            proxy = await TcpProxy(int(gateway.rsplit(":", 1)[1])).start()
            bus = await Bus.connect(AgentSettings(_env_file=None, nats_url=url))  # type: ignore[call-arg]
            keys = await ApiKeys.open(bus)
            made = {tenant: (await keys.create(tenant))[0] for tenant in (ACME, GLOBEX)}
            made["widget"] = (await keys.create(ACME, scope="widget"))[0]
            mesh = await Mesh.open(bus, AgentSettings(_env_file=None, nats_url=url))  # type: ignore[call-arg]
            for article in ("billing-refunds-and-cancellations.md", "account-password-reset.md"):
                await mesh.caller(ACME).call(
                    "knowledge",
                    "ingest",
                    IngestRequest(source=article, text=(SAMPLES / article).read_text()),
                    IngestReply,
                    timeout=60,
                )
            # A task that fails until its conversation's state has a key: a dead letter to replay.
            async with httpx.AsyncClient(
                base_url=gateway, headers={"Authorization": f"Bearer {made[ACME]}"}
            ) as c:
                letter_task = (
                    await c.post("/v1/agents/jobs/skills/picky/tasks", json={"input": "ticket"})
                ).json()
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                yield Desk(proxy.url, gateway, proxy, made, model, mesh, browser, letter_task, site)
            finally:
                await site.stop()
                await browser.close()
                await proxy.stop()
                await bus.close()
        await telemetry.aclose()


async def _page(desk: Desk, tenant: str = ACME) -> Page:
    """A fresh browser context (its own session storage), signed in as ``tenant``."""
    context = await desk.browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await page.goto(desk.url + "/")
    await page.fill("input[name=key]", desk.keys[tenant])
    await page.click("#sign-in button[type=submit]")
    await expect(page.locator("#tenant")).to_have_text(f"tenant {tenant}")
    return page


async def _shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def _ask(page: Page, question: str) -> Any:
    """Start a conversation with the desk, ask, and return the turn's bubble (as it streams)."""
    await page.goto(page.url.split("#")[0] + "#/chat")
    await page.select_option("#agent", "triage")
    await page.click("#new-conversation")
    await expect(page.locator("#connection")).to_have_text("live")
    await page.fill("#message", question)
    await page.click("#composer button[type=submit]")
    return page.locator(".bubble.turn").last


async def test_sign_in_keeps_the_key_in_the_session_and_shows_the_tenant(desk: Desk) -> None:
    context = await desk.browser.new_context()
    page = await context.new_page()
    await page.goto(desk.url + "/console")
    await _shot(page, "01-sign-in")
    await page.fill("input[name=key]", "hw_not-a-key")
    await page.click("#sign-in button[type=submit]")
    await expect(page.locator("#sign-in .error")).to_have_text("That key is not valid.")
    await page.fill("input[name=key]", desk.keys[ACME])
    await page.click("#sign-in button[type=submit]")
    await expect(page.locator("#tenant")).to_have_text(f"tenant {ACME}")
    stored = await page.evaluate("[sessionStorage.getItem('hivewire.key'), localStorage.length]")
    assert stored == [desk.keys[ACME], 0]
    await context.close()


async def test_a_question_streams_an_answer_with_citations_and_its_trace(desk: Desk) -> None:
    desk.model.reply("small", '{"label": "billing"}')
    desk.model.reply("big", ANSWER)
    desk.model.token_delay = 0.02
    page = await _page(desk)
    turn = await _ask(page, "I was charged twice for my subscription, how do I get my money back?")
    await expect(turn).to_have_attribute("data-state", "TASK_STATE_COMPLETED", timeout=20_000)
    assert await turn.get_attribute("data-streamed") == ANSWER
    await expect(turn.locator(".text")).to_have_text(ANSWER)
    citation = turn.locator("a.citation").first
    assert "billing-refunds-and-cancellations.md" in (await citation.get_attribute("href") or "")
    notes = await turn.locator(".status-note").all_inner_texts()
    assert "intent: billing, sentiment: neutral" in notes
    await _shot(page, "02-chat-answer")
    # The turn's trace: the gateway, triage, the knowledge agent, answer and the model calls.
    await turn.locator("a.trace-link").click()
    await expect(page.locator("#trace")).to_be_visible(timeout=10_000)
    services = set(await page.locator(".span").evaluate_all("spans => spans.map(s => s.dataset.service)"))
    for _ in range(20):  # the agents' spans arrive in batches
        if {"hivewire-agent-triage", "hivewire-agent-answer", "hivewire-agent-knowledge"} <= services:
            break
        await asyncio.sleep(0.3)
        await page.reload()
        await expect(page.locator("#trace")).to_be_visible()
        services = set(await page.locator(".span").evaluate_all("spans => spans.map(s => s.dataset.service)"))
    assert {
        "hivewire-gateway",
        "hivewire-agent-triage",
        "hivewire-agent-answer",
        "hivewire-agent-knowledge",
    } <= services
    await expect(page.locator(".span-name", has_text="chat big stream")).not_to_have_count(0)
    await _shot(page, "03-trace")
    await page.context.close()


async def test_a_dropped_connection_resumes_without_losing_or_repeating_text(desk: Desk) -> None:
    words = "Refunds for a double charge go back to the card that paid, in full, usually within a week [1]."
    desk.model.reply("small", '{"label": "billing"}')
    desk.model.reply("big", words)
    desk.model.token_delay = 0.12
    page = await _page(desk)
    turn = await _ask(page, "Someone billed me two times this month, when is the duplicate refunded?")
    await expect(turn).to_have_attribute("data-streamed", _words(3), timeout=20_000)
    before = await turn.get_attribute("data-streamed") or ""
    assert desk.proxy.drop() >= 1  # the event stream (and the pending send) cut mid-answer
    await expect(turn).to_have_attribute("data-state", "TASK_STATE_COMPLETED", timeout=20_000)
    desk.model.token_delay = 0.0
    streamed = await turn.get_attribute("data-streamed")
    assert before  # it was cut mid-answer...
    assert before != words
    assert streamed == words  # ...and every token came exactly once
    await _shot(page, "04-chat-resumed")
    await page.context.close()


def _words(n: int) -> re.Pattern[str]:
    """At least ``n`` words streamed."""
    return re.compile(rf"^(\S+\s+){{{n}}}")


async def test_an_unhappy_question_is_handed_off_and_a_person_answers_it(desk: Desk) -> None:
    desk.model.reply("small", '{"label": "negative"}')
    desk.model.reply("big", "I am sorry about your order; I cannot see it in our help articles.")
    customer = await _page(desk)
    question = "I'm furious: the courier lost my Orbitly mug order again and nobody answers!"
    turn = await _ask(customer, question)
    await expect(turn).to_have_attribute("data-state", "TASK_STATE_COMPLETED", timeout=20_000)
    await expect(turn.locator(".desk.handoff")).to_be_visible()
    await expect(turn.locator(".status-note", has_text="flagged for a human agent")).to_be_visible()

    agent = await _page(desk)
    await agent.goto(desk.url + "/#/desk/handoffs")
    row = agent.locator("tr", has_text=question)
    await expect(row).to_be_visible()
    await _shot(agent, "05-handoff-queue")
    await row.locator("a.open-handoff").click()
    await expect(agent.locator("#transcript .bubble.user")).to_have_text(question)
    await agent.fill("#author", "Dana")
    await agent.fill("#reply", "So sorry! I have reshipped your mug today; tracking follows by email.")
    await agent.click("#reply-form button[type=submit]")
    await expect(agent.locator("#transcript .bubble.person .text")).to_have_text(
        "So sorry! I have reshipped your mug today; tracking follows by email."
    )
    await _shot(agent, "06-handoff-answered")
    # The customer sees the person's reply arrive in the open conversation.
    await expect(customer.locator(".bubble.person .who")).to_have_text("Dana (a person)")
    await agent.goto(desk.url + "/#/desk/handoffs")
    await expect(agent.locator("#page-handoffs")).to_be_visible()
    await expect(agent.locator("tr", has_text=question)).to_have_count(0)
    await agent.context.close()
    await customer.context.close()


async def test_a_dead_letter_is_replayed_from_the_dashboard(desk: Desk) -> None:
    page = await _page(desk)
    task = desk.letter_task
    row = page.locator("tr", has_text=task["id"][:12])
    for _ in range(50):  # parked after three deliveries
        await page.goto(desk.url + "/#/desk/dead-letters")
        await expect(page.locator("#page-dead-letters h1")).to_be_visible()
        if await row.count():
            break
        await asyncio.sleep(0.2)
    await expect(row).to_be_visible()
    await _shot(page, "07-dead-letters")
    await desk.mesh.state(ACME, task["contextId"]).put("ticket", "present")
    await row.locator("button.replay").click()
    await expect(page.locator("#replayed")).to_contain_text("is queued again")
    await expect(row).to_have_count(0)
    await page.goto(desk.url + f"/#/desk/tasks?contextId={task['contextId']}")
    done = page.locator("tr", has_text=task["id"][:12]).locator(".state")
    for _ in range(50):
        if await done.count() and await done.inner_text() == "completed":
            break
        await asyncio.sleep(0.2)
        await page.reload()
    await expect(done).to_have_text("completed")
    await _shot(page, "08-tasks")
    await page.context.close()


async def test_the_dashboard_shows_agents_usage_and_knowledge(desk: Desk) -> None:
    page = await _page(desk)
    await page.goto(desk.url + "/#/desk/agents")
    await expect(page.locator("#page-agents tr", has_text="triage")).to_be_visible()
    await _shot(page, "09-agents")
    await page.goto(desk.url + "/#/desk/usage")
    await expect(page.locator("svg.usage-chart[data-series=requests] rect")).to_have_count(48)
    await _shot(page, "10-usage")
    await page.goto(desk.url + "/#/desk/knowledge")
    await expect(page.locator("#bases tr", has_text="default")).to_contain_text("2")
    await page.fill("#query", "reset link expired")
    await page.click("#search button[type=submit]")
    await expect(page.locator(".passage").first).to_contain_text("account-password-reset.md")
    await _shot(page, "11-knowledge")
    await page.goto(desk.url + "/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Hivewire gateway")
    await _shot(page, "12-api-docs")
    await page.context.close()


async def test_the_widget_chats_from_another_site(desk: Desk) -> None:
    desk.model.reply("small", '{"label": "account"}')
    desk.model.reply("big", "Use the reset link on the sign-in page [1].")
    context = await desk.browser.new_context(viewport={"width": 1000, "height": 700})
    tag = (
        f'<script src="{desk.gateway}/widget.js" data-key="{desk.keys["widget"]}" data-agent="triage" async>'
    )
    desk.site.html = (
        f"<!doctype html><html><head><title>Shop</title></head><body><h1>Orbitly shop</h1>{tag}</script>"
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.goto(desk.site.url + "/")
    try:
        await expect(page.locator("#hivewire-widget .launcher")).to_be_visible(timeout=5000)
    except AssertionError:
        raise AssertionError(f"the widget did not load: {errors}") from None
    await page.locator("#hivewire-widget .launcher").click()
    await page.locator("#hivewire-widget textarea").fill("My password reset link does not work")
    await page.locator("#hivewire-widget button[type=submit]").click()
    answer = page.locator("#hivewire-widget .bubble.turn")
    await expect(answer).to_have_attribute("data-state", "TASK_STATE_COMPLETED", timeout=20_000)
    await expect(answer.locator(".text")).to_have_text("Use the reset link on the sign-in page [1].")
    await _shot(page, "13-widget")
    await context.close()


async def test_another_tenant_sees_none_of_it(desk: Desk) -> None:
    page = await _page(desk, GLOBEX)
    await expect(page.locator("#conversations li")).to_have_count(0)
    pages: dict[str, Callable[[], Awaitable[None]]] = {
        "handoffs": lambda: expect(page.locator("#page-handoffs .empty")).to_be_visible(),
        "dead-letters": lambda: expect(page.locator("#page-dead-letters .empty")).to_be_visible(),
        "tasks": lambda: expect(page.locator("#page-tasks .empty")).to_be_visible(),
        "knowledge": lambda: expect(page.locator("#bases .empty")).to_be_visible(),
    }
    for name, check in pages.items():
        await page.goto(desk.url + f"/#/desk/{name}")
        await check()
    await page.goto(desk.url + "/#/desk/usage")
    await expect(page.locator("#page-usage h1")).to_have_text(f"Usage of {GLOBEX}")
    await _shot(page, "14-other-tenant")
    # Nothing of acme's anywhere in what globex's pages fetched.
    async with httpx.AsyncClient(
        base_url=desk.gateway, headers={"Authorization": f"Bearer {desk.keys[GLOBEX]}"}
    ) as c:
        seen = [
            (await c.get(path)).text
            for path in ("/v1/conversations", "/v1/handoffs?status=all", "/v1/dead-letters", "/v1/tasks")
        ]
    assert all(ACME not in text and "Orbitly" not in text for text in seen)
    await page.context.close()
