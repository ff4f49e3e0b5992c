"""The model guide's agent (docs/llm.md) runs as written against an OpenAI-compatible endpoint."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from agents import AgentRuntime, AgentSettings, Mesh
from bus import Bus, EmbeddedNats, new_id
from tests.openai_server import OpenAIServer
from tests.redis_server import RedisServer

GUIDE = Path(__file__).parent.parent / "docs" / "llm.md"


def _load(tmp_path: Path, file: str = "triage.py") -> ModuleType:
    (code,) = re.findall(rf"```python file={re.escape(file)}\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    name = f"{file.removesuffix('.py')}_guide"
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def test_the_guides_triage_agent_classifies_and_answers_with_history(
    nats_server: EmbeddedNats, model_endpoint: OpenAIServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    guide = _load(tmp_path)
    model_endpoint.reply("gpt-4o-mini", '{"intent": "billing", "confidence": 0.9}')
    model_endpoint.reply("gpt-4o", "Invoices are under Billing.")
    settings = AgentSettings(
        _env_file=None, nats_url=nats_server.url, llm_base_url=model_endpoint.url, redis_url=redis_server.url
    )
    bus = await Bus.connect(settings)
    try:
        async with AgentRuntime(guide.triage, bus, settings):
            caller = (await Mesh.open(bus, settings)).caller("docs", context_id=new_id())
            intent = await caller.call("triage", "route", "Where is my invoice?", guide.Intent)
            first = await caller.call("triage", "answer", "Where is my invoice?", str)
            await caller.call("triage", "answer", "Thanks!", str)
    finally:
        await bus.close()
    assert intent == guide.Intent(intent="billing", confidence=0.9)
    assert first == "Invoices are under Billing."
    route, answer, follow_up = model_endpoint.requests
    assert (route["model"], route["temperature"], route["max_tokens"]) == ("gpt-4o-mini", 0, 64)
    assert answer["model"] == "gpt-4o"
    assert [m["content"] for m in follow_up["messages"]] == [
        "Where is my invoice?",
        "Invoices are under Billing.",
        "Thanks!",
    ]


async def test_the_guides_orders_agent_runs_the_tool_the_model_asks_for(
    nats_server: EmbeddedNats, model_endpoint: OpenAIServer, tmp_path: Path
) -> None:
    guide = _load(tmp_path, "orders.py")
    model_endpoint.call_tool("lookup_order", '{"order_id": "A-17"}')
    settings = AgentSettings(_env_file=None, nats_url=nats_server.url, llm_base_url=model_endpoint.url)
    bus = await Bus.connect(settings)
    try:
        async with AgentRuntime(guide.orders, bus, settings):
            caller = (await Mesh.open(bus, settings)).caller("docs", context_id=new_id())
            answer = await caller.call("orders", "ask", "Where is order A-17?", str)
    finally:
        await bus.close()
    assert answer == "tool said: order A-17 shipped on Monday"
    asked, answered = model_endpoint.requests
    assert asked["tools"][0]["function"]["name"] == "lookup_order"
    assert answered["messages"][-1]["content"] == "order A-17 shipped on Monday"
