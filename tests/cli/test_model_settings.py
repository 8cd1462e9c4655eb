"""Model settings through real `swarm` runs: the CLI starts real worker processes, which call the project's
HTTP test server through litellm. Each setting is put in the CLI's environment and its effect is read
from what the server received or what the run recorded."""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.api import Swarm
from swarm_tasks.models.mock_server import MockServer, Received
from swarm_tasks.models.script import Script, ScriptedCall, Step, StepUsage
from swarm_tasks.models.types import ChatMessage
from swarm_tasks.review.swarm import SCAN
from swarm_tasks.settings import QUEUES, SwarmSettings
from tests.cli.test_cli import swarm
from tests.review.helpers import write_tree

MODEL = "openai/mock-model"
GREP = ScriptedCall(name="grep", arguments={"pattern": "never-{{turn}}"})  # differs each turn: no loop stop
PRICES = json.dumps({MODEL: {"input_usd_per_mtok": 10.0, "output_usd_per_mtok": 10.0}})


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    """The CLI's environment: the test Redis and no provider or model variable of this machine."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "OPENAI_", "ANTHROPIC_"))}
    return {**keep, "SWARM_REDIS_URL": redis_url, "SWARM_STATE_DIR": str(tmp_path / "state"),
            "SWARM_MODEL_GUARD": "local-only", "COLUMNS": "120"}


def repo(tmp_path: Path, files: int, size: int = 1) -> Path:
    return write_tree(tmp_path / "repo", {f"mod{i}.py": f"def f{i}(x):\n    return x + {i}\n" * size
                                          for i in range(files)})


def agents_of(settings: SwarmSettings, run_id: str) -> list[AgentState]:
    with Swarm(settings, workers=0) as api:
        return api.run(run_id).agents()


def settled(server: MockServer, timeout_s: float = 30.0) -> list[Received]:
    """What the server received, once every request it is still answering (slowly) was recorded."""
    deadline = time.monotonic() + timeout_s
    while server.counters.in_flight and time.monotonic() < deadline:
        time.sleep(0.1)
    return list(server.received)


def by_agent(received: list[Received]) -> dict[str, list[Received]]:
    out: dict[str, list[Received]] = defaultdict(list)
    for r in received:
        out[r.agent].append(r)
    return out


@pytest.fixture
def limited_server() -> Iterator[MockServer]:
    """Every conversation is refused once with 429 + Retry-After: 1 s, then greps forever (never finishes)."""
    script = Script(name="limited", steps=[Step(error="rate_limit", retry_after_s=1.0, fail_times=1,
                                                tool_calls=[GREP])], default=Step(tool_calls=[GREP]))
    with MockServer(script=script) as server:
        yield server


@pytest.mark.slow
def test_provider_key_turn_cap_retry_after_max_tokens_and_run_caps_from_the_environment(
        env, tmp_path, swarm_settings, limited_server):
    server = limited_server
    env.update({
        "OPENAI_API_KEY": "sk-provider-variable-1234",  # the provider's own variable, no SWARM_API_KEY
        "SWARM_API_BASE": server.url, "SWARM_MODEL": MODEL, "SWARM_MODEL_PRICES": PRICES,
        "SWARM_AGENT_MAX_TURNS": "3", "SWARM_MODEL_OPTIONS": json.dumps({MODEL: {"max_output_tokens": 321}}),
        "SWARM_RUN_MAX_AGENTS": "11", "SWARM_RUN_MAX_CONCURRENT_AGENTS": "1"})
    done = swarm("review", str(repo(tmp_path, 3)), "--workers", "1", "--concurrency", "8", "--json", env=env,
                 timeout=240)
    assert "Traceback" not in done.stderr, done.stderr
    run_id = json.loads(done.stdout)["run"]
    received = list(server.received)
    # The key in the CLI's environment reached the worker process: every call carried it.
    assert received and {r.authorization for r in received} == {"Bearer sk-provider-variable-1234"}
    assert {r.model for r in received} == {"mock-model"} and {r.max_tokens for r in received} == {321}
    finish = next(t for t in server.last_request["tools"] if t["function"]["name"] == "finish")  # type: ignore[index]
    assert "risk" in json.dumps(finish["function"]["parameters"]["properties"]["result"])  # the result schema
    calls = by_agent(received)
    # SWARM_RUN_MAX_AGENTS=11: the inventory, and scans of the files whose scan and reviewers (5 agents
    # each) the budget covers: two of the three; the third file is left out, and the run says why.
    assert len(calls) == 2
    assert "the agent budget (11 agents) could not cover it" in json.loads(done.stdout)["reason"]
    for agent, seen in calls.items():
        # SWARM_AGENT_MAX_TURNS=3 caps the scanner's own limit of 8: three answered calls, not a fourth.
        assert [r.status for r in seen] == [429, 200, 200, 200], (agent, [r.status for r in seen])
        # Retry-After: 1 was waited for (measured on the server's clock, between the 429 and the retry).
        assert 1.0 <= seen[1].at - seen[0].at < 5.0
    # SWARM_RUN_MAX_CONCURRENT_AGENTS=1: one scan's calls all came before the other's.
    first, second = sorted(calls.values(), key=lambda seen: seen[0].at)
    assert first[-1].at <= second[0].at
    scans = [a for a in agents_of(swarm_settings, run_id) if a.spec == SCAN]
    assert [a.status for a in scans] == [AgentStatus.STOPPED] * 2 and all(a.turn == 3 for a in scans)
    assert all("turns used 3 of 3" in (a.reason or "") for a in scans)


@pytest.mark.slow
def test_run_cost_cap_from_the_environment_stops_the_run_within_five_percent(env, tmp_path, swarm_settings):
    cap = 0.40
    with MockServer(script=Script(name="spender", steps=[], default=Step(tool_calls=[GREP]))) as server:
        env.update({"OPENAI_API_KEY": "sk-test", "SWARM_API_BASE": server.url, "SWARM_MODEL": MODEL,
                    "SWARM_MODEL_PRICES": PRICES, "SWARM_RUN_MAX_COST_USD": str(cap),
                    "SWARM_MODEL_OPTIONS": json.dumps({MODEL: {"max_output_tokens": 20}})})
        done = swarm("review", str(repo(tmp_path, 12)), "--workers", "1", "--concurrency", "16", "--json",
                     env=env, timeout=300)
        answered = [r for r in server.received if r.status == 200]
    run_id = json.loads(done.stdout)["run"]
    status = json.loads(swarm("status", run_id, "--json", env=env).stdout)
    spent = status["cost_usd"]
    assert 0.95 * cap <= spent <= cap, (spent, len(answered))
    per_call = spent / len(answered)
    assert per_call < cap / 20  # many calls were made: the cap, not the work running out, ended the run
    reasons = [a.reason or "" for a in agents_of(swarm_settings, run_id) if a.status is AgentStatus.STOPPED]
    assert any("cost cap was reached" in r for r in reasons), reasons


def test_a_missing_key_is_refused_before_anything_starts(env, tmp_path, redis_client):
    source = str(repo(tmp_path, 1))
    missing = swarm("review", source, "--model", "openai/gpt-5.2", "--json", env=env)  # a fleet, none live
    assert missing.returncode == 2 and "OPENAI_API_KEY" in missing.stderr, missing.stderr
    mixed = swarm("review", source, "--scanner-model", "anthropic/claude-haiku-4-5", "--subreviewer-model",
                  "openai/gpt-5.2", "--workers", "1", "--json", env={**env, "ANTHROPIC_API_KEY": "sk-ant-test"})
    assert mixed.returncode == 2 and "subreviewer model 'openai/gpt-5.2' needs OPENAI_API_KEY" in mixed.stderr
    unpriced = swarm("review", source, "--model", "openai/my-own-model", "--max-cost", "5", "--workers", "1", "--json",
                     env={**env, "SWARM_API_KEY": "k", "SWARM_API_BASE": "http://127.0.0.1:9/v1"})
    assert unpriced.returncode == 2 and "SWARM_MODEL_PRICES" in unpriced.stderr
    assert "Traceback" not in missing.stderr + mixed.stderr + unpriced.stderr
    assert {q: redis_client.llen(q) for q in QUEUES} == dict.fromkeys(QUEUES, 0)
    assert list(redis_client.scan_iter(match="*")) == []  # no run, no worker, nothing


def compacting_scanner(messages: list[ChatMessage], _tools: object) -> Step:
    """Reads a large file, then finishes once its context was compacted; summarises when asked."""
    last = messages[-1].get("content") or ""
    if messages[-1]["role"] == "user" and "about to be compacted" in last:
        return Step(content="SUMMARY: read mod0.py, nothing risky in it")
    if any("[Context compacted" in (m.get("content") or "") for m in messages):
        return Step(tool_calls=[ScriptedCall(name="finish", arguments={
            "summary": "scanned after compaction", "result": {"risk": "low", "flags": []}})])
    turn = sum(1 for m in messages if m["role"] == "assistant")
    return Step(tool_calls=[ScriptedCall(name="read_file", arguments={"path": "mod0.py", "offset": 1 + turn})])


@pytest.mark.slow
def test_a_context_length_error_is_answered_by_compacting_and_one_retry(env, tmp_path, swarm_settings):
    with MockServer(script="py:tests.cli.test_model_settings:compacting_scanner", context_window=6_000) as server:
        # The window configured here is wrong (the server takes 6,000 tokens): only its error tells.
        env.update({"OPENAI_API_KEY": "sk-test", "SWARM_API_BASE": server.url, "SWARM_MODEL_PRICES": PRICES,
                    "SWARM_MODELS": json.dumps({"scanner": MODEL}),
                    "SWARM_MODEL_OPTIONS": json.dumps({MODEL: {"context_window_tokens": 200_000,
                                                               "max_output_tokens": 500}})})
        done = swarm("review", str(repo(tmp_path, 1, size=600)), "--workers", "1", "--json", env=env,
                     timeout=240)
        received = list(server.received)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(r.status, bool(r.tools)) for r in received] == [
        (200, True),  # read_file
        (400, True),  # the prompt with the whole file is over the server's window
        (200, False),  # the summary request, sized to the window the error stated
        (200, True),  # the compacted prompt, sent once: it fits and the scan finishes
    ]
    assert received[3].prompt_tokens < 6_000 < received[1].prompt_tokens
    (scan,) = [a for a in agents_of(swarm_settings, json.loads(done.stdout)["run"]) if a.spec == SCAN]
    assert scan.status is AgentStatus.DONE and scan.compactions == 1


@pytest.mark.slow
def test_retries_timeout_fallbacks_shared_key_output_cap_and_agent_tokens_from_the_environment(
        env, tmp_path, swarm_settings):
    with MockServer(latency_s=5.0) as slow, MockServer(script=Script(name="grep", steps=[],
                                                                     default=Step(tool_calls=[GREP]))) as backup:
        env.update({
            "SWARM_API_KEY": "sk-shared-key", "SWARM_MODELS": json.dumps({"scanner": "openai/primary"}),
            "SWARM_MODEL_OPTIONS": json.dumps({"openai/primary": {"api_base": slow.url},
                                               "openai/backup": {"api_base": backup.url}}),
            "SWARM_MODEL_FALLBACKS": '["openai/backup"]', "SWARM_MODEL_RETRIES": "1", "SWARM_MODEL_TIMEOUT_S": "1",
            "SWARM_MODEL_MAX_OUTPUT_TOKENS": "77", "SWARM_AGENT_MAX_TOKENS": "5000"})
        done = swarm("review", str(repo(tmp_path, 1)), "--workers", "1", "--json", env=env, timeout=240)
        first, second = settled(slow), settled(backup)
    run_id = json.loads(done.stdout)["run"]
    # Neither model has a price: said at the start, for the fallback too (the run has no cost cap of its own).
    assert "no price is known for model 'openai/primary'" in done.stderr
    assert "no price is known for model 'openai/backup'" in done.stderr
    (scan,) = [a for a in agents_of(swarm_settings, run_id) if a.spec == SCAN]
    # SWARM_AGENT_MAX_TOKENS: stopped by tokens (each turn counts its timed-out attempts, charged, too).
    assert scan.status is AgentStatus.STOPPED and "tokens used" in (scan.reason or ""), scan.reason
    turns = len(second)
    assert turns == scan.turn >= 1 and scan.usage.tokens >= 5000
    # SWARM_MODEL_RETRIES=1: two attempts on the primary per turn; SWARM_MODEL_TIMEOUT_S=1: each given up
    # after a second, long before the server's 5 s; SWARM_MODEL_FALLBACKS: then the backup answered.
    assert len(first) == 2 * turns
    for one, two in zip(first[::2], first[1::2], strict=True):
        assert 1.0 <= two.at - one.at < 4.0
    assert all(b.at > a.at + 1.0 for a, b in zip(first[1::2], second, strict=True))
    # SWARM_API_KEY to both endpoints (each from SWARM_MODEL_OPTIONS); SWARM_MODEL_MAX_OUTPUT_TOKENS sent.
    assert {r.authorization for r in first + second} == {"Bearer sk-shared-key"}
    assert {r.max_tokens for r in first + second} == {77}


def budget_scanner(messages: list[ChatMessage], _tools: object) -> Step:
    """mod0.py: slow free turns (a wall-time budget ends it); mod1.py: quick turns that cost (a cost budget)."""
    task = next(m.get("content") or "" for m in messages if m["role"] == "user")
    if "mod0.py" in task:
        return Step(tool_calls=[GREP], delay_s=4.0, usage=StepUsage(prompt_tokens=0, completion_tokens=0))
    return Step(tool_calls=[GREP])


@pytest.mark.slow
def test_agent_cost_and_wall_time_budgets_from_the_environment(env, tmp_path, swarm_settings):
    price = json.dumps({MODEL: {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 1.0}})
    with MockServer(script="py:tests.cli.test_model_settings:budget_scanner") as server:
        env.update({"SWARM_API_KEY": "k", "SWARM_API_BASE": server.url, "SWARM_MODEL": MODEL,
                    "SWARM_MODEL_PRICES": price, "SWARM_AGENT_MAX_COST_USD": "0.0001",
                    "SWARM_AGENT_MAX_WALL_S": "15"})
        done = swarm("review", str(repo(tmp_path, 2)), "--workers", "1", "--json", env=env, timeout=240)
    scans = {a.input["path"]: a for a in agents_of(swarm_settings, json.loads(done.stdout)["run"])  # type: ignore[index]
             if a.spec == SCAN}
    slow, spender = scans["mod0.py"], scans["mod1.py"]
    assert slow.status is AgentStatus.STOPPED and "wall_s used" in (slow.reason or ""), slow.reason
    assert 15.0 <= (slow.ended_at or 0) - (slow.started_at or 0) < 15.0 + 4.0 + 10.0  # stopped at its next turn
    assert spender.status is AgentStatus.STOPPED and "cost_usd used" in (spender.reason or ""), spender.reason
    assert spender.turn == 1 and spender.usage.cost_usd >= 0.0001  # its first call spent the whole budget


def reading_scanner(messages: list[ChatMessage], _tools: object) -> Step:
    """Reads its file again and again until its context was compacted, then finishes."""
    if messages[-1]["role"] == "user" and "about to be compacted" in (messages[-1].get("content") or ""):
        return Step(content="SUMMARY: read mod0.py several times")
    if any("[Context compacted" in (m.get("content") or "") for m in messages):
        return Step(tool_calls=[ScriptedCall(name="finish", arguments={
            "summary": "done", "result": {"risk": "low", "flags": []}})])
    turn = sum(1 for m in messages if m["role"] == "assistant")
    return Step(tool_calls=[ScriptedCall(name="read_file", arguments={"path": "mod0.py", "offset": 1 + turn})])


@pytest.mark.slow
def test_compact_ratio_from_the_environment(env, tmp_path, swarm_settings):
    with MockServer(script="py:tests.cli.test_model_settings:reading_scanner") as server:
        env.update({"SWARM_API_KEY": "k", "SWARM_API_BASE": server.url, "SWARM_MODEL": MODEL,
                    "SWARM_MODEL_PRICES": PRICES, "SWARM_CONTEXT_COMPACT_RATIO": "0.25",
                    "SWARM_MODEL_OPTIONS": json.dumps({MODEL: {"context_window_tokens": 40_500,
                                                               "max_output_tokens": 500}})})
        done = swarm("review", str(repo(tmp_path, 1, size=120)), "--workers", "1", "--json", env=env, timeout=240)
        received = list(server.received)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = next(i for i, r in enumerate(received) if not r.tools)  # the summary request
    before = max(r.prompt_tokens for r in received[:summary])
    # Compacted at a quarter of the 40,000-token prompt budget (10,000, counted with the tools' schemas
    # too), after several reads, where the default 0.75 would have let the prompt grow to 30,000.
    assert 4_000 < before < 10_000 and summary > 3, [r.prompt_tokens for r in received]
    (scan,) = [a for a in agents_of(swarm_settings, json.loads(done.stdout)["run"]) if a.spec == SCAN]
    assert scan.status is AgentStatus.DONE and scan.compactions == 1
