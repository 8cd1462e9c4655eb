"""The gateway against provider behaviours, over HTTP to the mock server through litellm's openai route:
Retry-After, context-length errors, max_tokens, keys and bases per model and role, timed-out calls
charged, unpriced models said so, malformed tool-call JSON, and limits shared through Redis."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from email.utils import formatdate
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from coordination.keys import GLOBAL_SCOPE, Keys
from coordination.limiter import CallLimiter
from coordination.store import ServerClock
from swarm_tasks.errors import ContextOverflow, ModelError
from swarm_tasks.models.gateway import ModelGateway, retry_after_s
from swarm_tasks.models.mock_server import MockServer
from swarm_tasks.models.script import Script, ScriptedCall, Step
from swarm_tasks.models.types import ChatMessage
from tests.models.conftest import Run

Make = Callable[..., ModelGateway]
MODEL = "openai/mock-model"
PRICE = {"input_usd_per_mtok": 100.0, "output_usd_per_mtok": 400.0}


def msgs(text: str = "hello", agent: str = "a-1") -> list[ChatMessage]:
    return [{"role": "system", "content": f"You are careful. agent_id: {agent}"}, {"role": "user", "content": text}]


def test_retry_after_is_waited_for_as_the_provider_said(make_gateway: Make, run: Run) -> None:
    script = Script(name="limited", steps=[Step(error="rate_limit", retry_after_s=0.8, fail_times=2, content="ok")])
    with MockServer(script=script) as server:
        reply = run(make_gateway(api_key="k", api_base=server.url, model_retries=3).complete(MODEL, msgs()))
        seen = list(server.received)
    assert reply.content == "ok" and reply.attempts == 3
    assert [r.status for r in seen] == [429, 429, 200]
    gaps = [b.at - a.at for a, b in itertools.pairwise(seen)]
    assert all(0.8 <= gap < 2.0 for gap in gaps), gaps  # the test backoff alone would wait milliseconds


def test_a_retry_after_longer_than_a_call_ends_it_and_says_when(make_gateway: Make, run: Run) -> None:
    script = Script(name="quota", steps=[Step(error="rate_limit", retry_after_s=3600, content="ok")])
    with MockServer(script=script) as server:
        with pytest.raises(ModelError) as caught:
            run(make_gateway(api_key="k", api_base=server.url, model_retries=3).complete(MODEL, msgs()))
        assert len(server.received) == 1  # not hammered: the agent's next turn is scheduled after it
    assert caught.value.retry_after_s == 3600 and caught.value.kind == "rate_limit"


def test_retry_after_in_every_form() -> None:
    def exc(headers: dict[str, str]) -> SimpleNamespace:
        return SimpleNamespace(litellm_response_headers=headers, response=None)

    assert retry_after_s(exc({"retry-after-ms": "1500"})) == 1.5  # type: ignore[arg-type]
    assert retry_after_s(exc({"Retry-After": "2"})) == 2.0  # type: ignore[arg-type]
    now = time.time()
    assert 9 <= (retry_after_s(exc({"retry-after": formatdate(now + 10, usegmt=True)}), now) or 0) <= 10  # type: ignore[arg-type]
    assert retry_after_s(exc({})) is None  # type: ignore[arg-type]


def test_a_context_length_error_is_never_resent_and_teaches_the_window(make_gateway: Make, run: Run) -> None:
    with MockServer(context_window=50) as server:
        gateway = make_gateway(api_key="k", api_base=server.url, model_retries=3)
        with pytest.raises(ContextOverflow, match="context window") as caught:
            run(gateway.complete(MODEL, msgs("word " * 400)))
        assert len(server.received) == 1 and server.received[0].status == 400
    assert caught.value.window_tokens == 50 and gateway.context_window(MODEL) == 50


def test_max_tokens_is_sent_from_settings_or_the_models_own_cap(make_gateway: Make, run: Run) -> None:
    with MockServer() as server:
        run(make_gateway(api_key="k", api_base=server.url).complete(MODEL, msgs()))
        run(make_gateway(api_key="k", api_base=server.url, model_max_output_tokens=50_000).complete("openai/gpt-4o",
                                                                                                    msgs()))
        options = {MODEL: {"max_output_tokens": 321}}
        run(make_gateway(api_key="k", api_base=server.url, model_options=options).complete(MODEL, msgs()))
        assert [r.max_tokens for r in server.received] == [8192, 16_384, 321]  # gpt-4o's own cap is 16,384


def test_keys_and_bases_per_model_and_per_role(make_gateway: Make, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_A_KEY", "sk-team-a")
    monkeypatch.setenv("SCANNER_KEY", "sk-scanner")
    with MockServer() as first, MockServer() as second:
        options = {"openai/a": {"api_key_env": "TEAM_A_KEY"},
                   "scanner": {"api_key_env": "SCANNER_KEY", "api_base": second.url}}
        gateway = make_gateway(api_key="sk-shared", api_base=first.url, model_options=options)
        run(gateway.complete("openai/a", msgs()))
        run(gateway.complete("openai/b", msgs()))
        run(gateway.complete("openai/a", msgs(), role="scanner"))
        assert [r.authorization for r in first.received] == ["Bearer sk-team-a", "Bearer sk-shared"]
        assert [r.authorization for r in second.received] == ["Bearer sk-scanner"]
        monkeypatch.delenv("TEAM_A_KEY")
        with pytest.raises(ModelError, match="TEAM_A_KEY") as caught:
            run(make_gateway(api_base=first.url, model_options=options).complete("openai/a", msgs()))
        assert caught.value.kind == "auth" and caught.value.permanent and len(first.received) == 2


def test_a_timed_out_call_is_charged_what_it_may_have_cost(make_gateway: Make, run: Run) -> None:
    with MockServer(latency_s=2.0) as server:
        gateway = make_gateway(api_key="k", api_base=server.url, model_retries=1, model_prices={MODEL: PRICE},
                               model_options={MODEL: {"max_output_tokens": 100}})
        with pytest.raises(ModelError, match="Timeout") as caught:
            run(gateway.complete(MODEL, msgs(), timeout_s=0.3))
    error = caught.value
    assert error.charged_completion_tokens == 2 * 100 and error.charged_prompt_tokens > 2 * 10
    expected = (error.charged_prompt_tokens * 100 + error.charged_completion_tokens * 400) / 1e6
    assert error.charged_cost_usd == pytest.approx(expected)


def test_an_unpriced_model_is_said_so_and_malformed_arguments_pass_through(make_gateway: Make, run: Run) -> None:
    script = Script(name="bad-json", steps=[Step(tool_calls=[ScriptedCall(name="finish", arguments="{oops")])])
    with MockServer(script=script) as server:
        reply = run(make_gateway(api_key="k", api_base=server.url).complete(MODEL, msgs()))
    assert reply.tool_calls[0].arguments == "{oops"  # the runner tells the model; nothing crashes here
    assert not reply.priced and reply.cost_usd == 0.0
    assert reply.prompt_tokens > 0  # tokens still count against token budgets


def test_calls_in_flight_are_capped_across_gateways(make_gateway: Make, run: Run, redis_client: redis.Redis) -> None:
    limiter = CallLimiter(redis_client, Keys("swarm", GLOBAL_SCOPE), ServerClock(redis_client).now)
    options = {MODEL: {"max_concurrent_calls": 2}}
    with MockServer(latency_s=0.3) as server:
        # Two gateways stand for two worker processes: only the shared limiter keeps them at 2 in flight.
        workers = [make_gateway(api_key="k", api_base=server.url, model_options=options) for _ in range(2)]
        for gateway in workers:
            gateway.limiter = limiter

        async def many() -> list[str | None]:
            calls = [workers[i % 2].complete(MODEL, msgs(agent=f"a{i}")) for i in range(8)]
            return [r.content for r in await asyncio.gather(*calls)]

        assert run(many()) == ["Done."] * 8
        assert server.counters.max_in_flight == 2
    assert limiter.in_flight(MODEL) == 0  # every slot given back


def test_litellm_is_asked_once_whether_it_can_price_a_model(make_gateway: Make, run: Run,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from swarm_tasks.models.gateway import litellm

    asked: list[str] = []
    real = litellm.cost_per_token

    def counting(**kwargs: Any) -> Any:
        asked.append(kwargs["model"])
        return real(**kwargs)

    monkeypatch.setattr(litellm, "cost_per_token", counting)
    with MockServer() as server:
        gateway = make_gateway(api_key="k", api_base=server.url)
        replies = [run(gateway.complete(MODEL, msgs())) for _ in range(3)]
    assert all(not r.priced and r.cost_usd == 0.0 for r in replies)
    assert asked.count(MODEL) == 1  # unknown to litellm's local map: it stays unknown
    assert gateway.catalog.cost_usd("openai/gpt-4o", 1000, 0) and asked.count("openai/gpt-4o") == 1
