"""The mock OpenAI-compatible server, reached through litellm's ordinary openai/ route."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable

import pytest

from swarm_tasks.errors import ModelError
from swarm_tasks.models.gateway import ModelGateway, litellm
from swarm_tasks.models.mock_server import MockServer
from swarm_tasks.models.script import Script, ScriptedCall, Step
from swarm_tasks.models.types import ChatMessage
from tests.models.conftest import Run

Make = Callable[..., ModelGateway]
MODEL = "openai/mock-model"
TOOLS = [{"type": "function", "function": {"name": "finish", "description": "end",
                                           "parameters": {"type": "object", "properties": {}}}}]
MSGS: list[ChatMessage] = [{"role": "system", "content": "agent_id: m-1"},
                           {"role": "user", "content": "review file src/app.py please"}]


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_default_policy_replies_then_calls_finish(mock_server: MockServer, make_gateway: Make, run: Run) -> None:
    gateway = make_gateway(api_base=mock_server.url, api_key="anything")
    reply = run(gateway.complete(MODEL, MSGS, tools=TOOLS))
    assert reply.content == "Done."
    assert [c.name for c in reply.tool_calls] == ["finish"]
    assert json.loads(reply.tool_calls[0].arguments) == {"summary": "done"}
    assert reply.finish_reason == "tool_calls"
    assert reply.model == MODEL
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0
    assert reply.cost_usd == 0.0  # no price known for mock-model
    sent = mock_server.last_request
    assert isinstance(sent, dict) and sent["tools"] == TOOLS and sent["model"] == "mock-model"
    without_finish = run(gateway.complete(MODEL, MSGS, tools=[{"type": "function", "function": {"name": "x"}}]))
    assert without_finish.tool_calls == () and without_finish.finish_reason == "stop"


def test_known_model_on_loopback_records_tokens_and_cost(mock_server: MockServer, make_gateway: Make,
                                                         run: Run) -> None:
    reply = run(make_gateway(api_key="k", api_base=mock_server.url).complete("openai/gpt-4o", MSGS))
    assert reply.cost_usd > 0  # litellm priced gpt-4o from the server's usage
    assert reply.prompt_tokens == 4 + len(MSGS[0]["content"] or "") // 4 + 4 + len(MSGS[1]["content"] or "") // 4


def test_configured_price_wins_over_the_price_map(mock_server: MockServer, make_gateway: Make, run: Run) -> None:
    from swarm_tasks.settings import ModelPrice, SwarmSettings

    price = ModelPrice(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)
    priced = make_gateway(api_key="k", api_base=mock_server.url, model_prices={MODEL: price, "openai/gpt-4o": price})
    for model in (MODEL, "openai/gpt-4o"):  # unknown to litellm, and known with another price
        reply = run(priced.complete(model, MSGS))
        assert reply.cost_usd == pytest.approx((reply.prompt_tokens * 3.0 + reply.completion_tokens * 15.0) / 1e6)
    # From the environment, as users set it; a malformed price is refused when the settings load.
    env = {"SWARM_MODEL_PRICES": '{"openai/x": {"input_usd_per_mtok": 1, "output_usd_per_mtok": 2}}'}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        assert SwarmSettings().model_prices["openai/x"].output_usd_per_mtok == 2
        mp.setenv("SWARM_MODEL_PRICES", '{"openai/x": {"input_usd_per_mtok": -1, "output_usd_per_mtok": 2}}')
        with pytest.raises(ValueError, match="input_usd_per_mtok"):
            SwarmSettings()


def test_scripted_server_and_streaming(make_gateway: Make, run: Run) -> None:
    script = Script(name="srv", vars={"file": r"file (\S+)"}, steps=[
        Step(content="looking at {{file}}", tool_calls=[
            ScriptedCall(name="read_file", arguments={"path": "{{file}}"}),
            ScriptedCall(name="grep", arguments='{"pattern": ')])])
    with MockServer(script=script) as server:
        reply = run(make_gateway(api_key="k", api_base=server.url).complete(MODEL, MSGS))
        assert reply.content == "looking at src/app.py"
        assert [(c.name, c.arguments) for c in reply.tool_calls] == [
            ("read_file", '{"path": "src/app.py"}'), ("grep", '{"pattern": ')]
        assert len({c.id for c in reply.tool_calls}) == 2

        async def stream() -> tuple[str, list[str]]:
            chunks = await litellm.acompletion(model=MODEL, messages=MSGS, api_base=server.url, api_key="k",
                                               stream=True, max_retries=0)
            text, names = "", []
            async for chunk in chunks:
                delta = chunk.choices[0].delta if chunk.choices else None
                text += (delta.content or "") if delta else ""
                names += [tc.function.name for tc in (delta.tool_calls or [])] if delta else []
            return text, names

        assert run(stream()) == ("looking at src/app.py", ["read_file", "grep"])
        assert server.counters.streamed == 1
        # Past the script's end: the finish call, as with the scripted provider.
        followed = [*MSGS, reply.message(), {"role": "user", "content": "go on"}]
        last = run(make_gateway(api_key="k", api_base=server.url).complete(MODEL, followed))
        assert [c.name for c in last.tool_calls] == ["finish"]


def test_models_health_and_stats_endpoints(mock_server: MockServer) -> None:
    base = mock_server.url.removesuffix("/v1")
    assert get_json(f"{base}/healthz") == {"status": "ok"}
    assert get_json(f"{mock_server.url}/models")["data"][0]["id"] == "mock-model"  # type: ignore[index]
    assert get_json(f"{base}/stats")["requests"] == mock_server.counters.requests


def test_latency_is_honoured_roughly(make_gateway: Make, run: Run) -> None:
    with MockServer(latency_s=(0.3, 0.4)) as server:
        reply = run(make_gateway(api_key="k", api_base=server.url).complete(MODEL, MSGS))
    assert reply.latency_s >= 0.25  # a lower bound only: the machine is shared


def test_errors_are_retried_then_model_error(make_gateway: Make, run: Run) -> None:
    with MockServer(error_rate=1.0) as server:
        gateway = make_gateway(api_key="k", api_base=server.url, model_retries=2)
        with pytest.raises(ModelError, match=r"openai/mock-model \(3 attempts\).*(RateLimit|InternalServer)Error"):
            run(gateway.complete(MODEL, MSGS))
        # Exactly our attempts reached the server: the OpenAI SDK's own retries are off.
        assert server.counters.requests == server.counters.injected_errors == 3
    with MockServer(error_rate=0.5, seed=7) as server:
        gateway = make_gateway(api_key="k", api_base=server.url, model_retries=6)
        replies = [run(gateway.complete(MODEL, MSGS)) for _ in range(5)]
    assert all(r.content == "Done." for r in replies)
    assert sum(r.attempts for r in replies) == server.counters.requests > 5


def test_a_rejected_key_is_a_permanent_auth_error_with_advice(make_gateway: Make, run: Run) -> None:
    with MockServer(api_key="sk-right") as server:
        wrong = make_gateway(api_key="sk-wrong", api_base=server.url, model_retries=2)
        with pytest.raises(ModelError, match=r"\(1 attempts\).*AuthenticationError") as caught:
            run(wrong.complete(MODEL, MSGS))
        assert caught.value.kind == "auth" and caught.value.permanent and caught.value.status_code == 401
        assert caught.value.model == MODEL and "SWARM_API_KEY" in caught.value.advice
        assert server.counters.unauthorized == 1 and server.counters.replies == 0  # never retried
        reply = run(make_gateway(api_key="sk-right", api_base=server.url).complete(MODEL, MSGS))
        assert reply.content == "Done." and server.counters.replies == 1


def test_script_errors_map_to_litellm_errors(make_gateway: Make, run: Run) -> None:
    script = Script(name="bad", steps=[Step(error="bad_request")])
    expected = pytest.raises(ModelError, match=r"\(1 attempts\).*BadRequestError")
    with MockServer(script=script) as server, expected:
        run(make_gateway(api_key="k", api_base=server.url).complete(MODEL, MSGS))


def test_three_hundred_concurrent_calls(make_gateway: Make, run: Run) -> None:
    async def many(gateway: ModelGateway) -> list[str | None]:
        replies = await asyncio.gather(*(gateway.complete(MODEL, MSGS, tools=TOOLS) for _ in range(300)))
        return [r.content for r in replies]

    with MockServer(latency_s=0.2) as server:  # a latency, so that calls really overlap
        assert run(many(make_gateway(api_key="k", api_base=server.url))) == ["Done."] * 300
    assert server.counters.replies == 300
    assert server.counters.max_in_flight > 10
