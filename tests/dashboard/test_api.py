"""The dashboard's JSON API and event stream against a real Redis, with a run made by the in-process runtime."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from coordination.errors import ConfigurationError
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.dashboard import create_app
from swarm_tasks.settings import SwarmSettings
from tests.dashboard.scripts import LEADS, WORKERS_PER_LEAD

TOTAL = 1 + LEADS + LEADS * WORKERS_PER_LEAD
SECRET = "sk-dashboard-test-9f3a2c"


def with_client(settings: SwarmSettings, client, fn: Callable[[TestClient], Awaitable[Any]], **kwargs: Any) -> Any:
    async def go() -> Any:
        async with TestClient(TestServer(create_app(settings, client, **kwargs))) as http:
            return await asyncio.wait_for(fn(http), 60)
    return asyncio.run(go())


async def get(http: TestClient, path: str, status: int = 200) -> Any:
    resp = await http.get(path)
    body = await resp.json()
    assert resp.status == status, body
    return body


def test_runs_run_detail_and_agents(staged, swarm_settings, dash_client):
    staged.drain()
    run_id = staged.run.id
    board = staged.local.services.run(run_id).state.board
    board.create("worker", "fix the parser")
    board.create("worker", "write the docs")

    async def check(http: TestClient) -> None:
        runs = (await get(http, "/api/runs"))["runs"]
        assert [r["id"] for r in runs] == [run_id]
        assert runs[0]["title"] == "dashboard demo" and runs[0]["status"] == "running" and runs[0]["created"] > 0

        detail = await get(http, f"/api/runs/{run_id}")
        counters = detail["counters"]
        assert detail["run"]["id"] == run_id
        assert counters["agents"]["done"] == TOTAL and counters["agents"]["running"] == 0
        roles = {r["role"]: r for r in counters["roles"]}
        assert roles["worker"]["agents"] == LEADS * WORKERS_PER_LEAD and roles["worker"]["active"] == 0
        assert roles["planner"]["tokens"] > 0 and counters["tokens"] == sum(r["tokens"] for r in roles.values())
        assert counters["tasks"]["pending"] == 2
        assert counters["model_calls"] == 2 * TOTAL
        assert set(counters["findings"]) == {"critical", "high", "medium", "low", "info"}
        assert detail["cursor"] != "0-0"

        listing = await get(http, f"/api/runs/{run_id}/agents")
        agents = listing["agents"]
        assert listing["total"] == TOTAL == len(agents) and listing["next"] is None
        root = next(a for a in agents if a["parent"] is None)
        assert root["spec"] == "planner" and root["depth"] == 0 and root["status"] == "done"
        assert sum(1 for a in agents if a["parent"] == root["id"]) == LEADS
        assert set(agents[0]) == {"id", "parent", "role", "spec", "status", "kind", "depth", "turn", "tokens",
                                  "cost_usd", "label", "reason_class"}

        # Pages: after= is an agent id; next names the last one of a page that has more after it.
        first = await get(http, f"/api/runs/{run_id}/agents?limit=5")
        assert len(first["agents"]) == 5 and first["next"] == first["agents"][-1]["id"]
        rest = await get(http, f"/api/runs/{run_id}/agents?after={first['next']}")
        assert [a["id"] for a in first["agents"] + rest["agents"]] == sorted(a["id"] for a in agents)

        tasks = await get(http, f"/api/runs/{run_id}/board")
        assert {t["title"] for t in tasks["tasks"]} == {"fix the parser", "write the docs"}
        assert tasks["counts"]["pending"] == 2 and tasks["tasks"][0]["status"] == "pending"

    with_client(swarm_settings, dash_client, check)


def test_an_ended_runs_detail_carries_its_outcome(staged, swarm_settings, dash_client):
    from swarm_tasks.plain.ending import on_idle

    staged.drain()
    on_idle(staged.local.services, staged.local.services.runs.get(staged.run.id))

    async def check(http: TestClient) -> None:
        detail = await get(http, f"/api/runs/{staged.run.id}")
        outcome = detail["run"]["outcome"]  # what the page's header badge and counters panel show
        assert detail["run"]["status"] == outcome["status"] == "completed" and outcome["reason"] is None
        assert outcome["agents"] == {"done": TOTAL} and outcome["problems"] == []
        assert (await get(http, "/api/runs"))["runs"][0]["status"] == "completed"

    with_client(swarm_settings, dash_client, check)


def test_agent_detail_has_transcript_tool_calls_findings_and_cost(staged, swarm_settings, dash_client):
    staged.drain()
    agents = staged.agents()
    done = agents.get_many(agents.ids(AgentStatus.DONE))
    worker = next(a for a in done if a.spec == "worker" and a.input is None and "0.0" in str(a.result))
    lead = agents.get(worker.parent)

    async def check(http: TestClient) -> None:
        body = await get(http, f"/api/runs/{staged.run.id}/agents/{worker.id}")
        assert body["agent"]["id"] == worker.id and body["agent"]["status"] == "done"
        roles = [m["role"] for m in body["transcript"]]
        assert roles[:2] == ["system", "user"] and roles.count("assistant") == 2 and "tool" in roles
        assert "inspect module 0.0" in body["transcript"][1]["content"]
        calls = {c["name"]: c for c in body["tool_calls"]}
        assert set(calls) == {"list_files", "finish"}
        assert calls["list_files"]["arguments"] == {"path": "."} and calls["list_files"]["result"] is not None
        assert body["findings"] == [{"severity": "high", "file": "pkg/mod_0.0.py", "line": 7, "rule": "demo-rule",
                                     "title": "suspicious call in module 0.0"}]
        assert body["usage"]["prompt_tokens"] == 7000 and body["usage"]["model_calls"] == 2
        assert body["children"] == [] and body["children_total"] == 0

        parent = await get(http, f"/api/runs/{staged.run.id}/agents/{lead.id}")
        assert parent["children_total"] == WORKERS_PER_LEAD
        assert worker.id in {c["id"] for c in parent["children"]}

    with_client(swarm_settings, dash_client, check)


def test_unknown_run_or_agent_is_a_404_with_a_json_message(staged, swarm_settings, dash_client):
    async def check(http: TestClient) -> None:
        for path in ("/api/runs/nope", "/api/runs/nope/agents", "/api/runs/nope/board", "/api/runs/nope/events",
                     "/api/runs/nope/agents/a-1", "/api/runs/bad%20id!/agents"):
            body = await get(http, path, 404)
            assert "no" in body["error"] and "Traceback" not in body["error"], path
        body = await get(http, f"/api/runs/{staged.run.id}/agents/no-such-agent", 404)
        assert "no-such-agent" in body["error"]
        body = await get(http, f"/api/runs/{staged.run.id}/agents/..%2F..", 404)
        assert body["error"]
        assert "no endpoint" in (await get(http, "/api/nothing-here", 404))["error"]
        assert "limit" in (await get(http, f"/api/runs/{staged.run.id}/agents?limit=lots", 400))["error"]
        assert "after" in (await get(http, f"/api/runs/{staged.run.id}/events?after=yesterday", 400))["error"]

    with_client(swarm_settings, dash_client, check)


async def read_events(resp, n: int) -> list[dict[str, Any]]:
    """The next ``n`` SSE messages: their id and JSON data; heartbeat comments are kept as {"comment": ...}."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    while len(out) < n:
        line = (await asyncio.wait_for(resp.content.readline(), 20)).decode().rstrip("\r\n")
        if line.startswith(":"):
            out.append({"comment": line[1:].strip()})
        elif line.startswith("id: "):
            current["id"] = line[4:]
        elif line.startswith("data: "):
            current["data"] = json.loads(line[6:])
        elif line == "" and current:
            out.append(current)
            current = {}
    return out


def test_event_stream_replays_then_delivers_live_events_and_resumes(staged, swarm_settings, dash_client):
    run_id = staged.run.id
    events = staged.local.services.run(run_id).state.events
    initial = events.read()
    assert [e.type for e in initial] == ["agent.ready"]

    async def check(http: TestClient) -> None:
        resp = await http.get(f"/api/runs/{run_id}/events")
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        (first,) = await read_events(resp, 1)
        assert first["id"] == initial[0].id and first["data"]["type"] == "agent.ready"
        assert first["data"]["subject"] == initial[0].subject and first["data"]["data"]["spec"] == "planner"

        # Live: the planner's first turn spawns the leads while the stream is open.
        await asyncio.to_thread(staged.step)
        live = await read_events(resp, 2 + LEADS)
        types = [e["data"]["type"] for e in live]
        assert types[0] == "agent.running" and types.count("agent.ready") == LEADS
        assert all(e["id"] > first["id"] for e in live)
        spawned = [e for e in live if e["data"]["type"] == "agent.ready"]
        assert {e["data"]["data"]["spec"] for e in spawned} == {"lead"}
        resp.close()

        # A reconnect sends Last-Event-ID: the stream resumes right after it.
        resume = await http.get(f"/api/runs/{run_id}/events", headers={"Last-Event-ID": live[0]["id"]})
        again = await read_events(resume, len(live) - 1)
        assert [e["id"] for e in again] == [e["id"] for e in live[1:]]
        resume.close()

    with_client(swarm_settings, dash_client, check)


def test_event_stream_sends_heartbeats(staged, swarm_settings, dash_client):
    async def check(http: TestClient) -> None:
        resp = await http.get(f"/api/runs/{staged.run.id}/events?after=$")
        assert resp.status == 400  # '$' is not an entry id: a page always names where it is
        resp = await http.get(f"/api/runs/{staged.run.id}/events?after=0-0")
        got = await read_events(resp, 2)
        assert got[0]["data"]["type"] == "agent.ready" and got[1] == {"comment": "ping"}
        resp.close()

    with_client(swarm_settings, dash_client, check, heartbeat_s=0.3)


def test_trimmed_stream_tells_the_page_to_reload(staged, swarm_settings, dash_client):
    run_id = staged.run.id
    state = staged.local.services.run(run_id).state
    client = state.redis
    old = state.events.read()[0].id
    for i in range(50):
        state.events.emit("test.filler", f"f{i}")
    client.xtrim(state.keys.events(), maxlen=10, approximate=False)

    async def check(http: TestClient) -> None:
        resp = await http.get(f"/api/runs/{run_id}/events?after={old}")
        got = await read_events(resp, 2)
        assert got[0]["data"]["type"] == "stream.gap"
        assert got[1]["data"]["type"] == "test.filler"
        resp.close()

    with_client(swarm_settings, dash_client, check)


def test_the_app_needs_the_url_of_the_redis_it_shows(tmp_path):
    settings = SwarmSettings(redis_url=None, state_dir=tmp_path)  # serve() passes the one connect() found
    with pytest.raises(ConfigurationError, match="redis_url"):
        create_app(settings, None)  # type: ignore[arg-type]


def test_agent_detail_masks_the_deployments_secrets_an_agent_repeated(staged, swarm_settings, dash_client):
    staged.drain()
    agents = staged.agents()
    worker = next(a for a in agents.get_many(agents.ids(AgentStatus.DONE)) if a is not None and a.spec == "worker")
    old, version = agents.load(worker.id)
    leaked = {"summary": f"called the API with {SECRET}", "result": {"findings": [
        {"severity": "high", "file": "a.py", "line": 1, "rule": "r", "title": f"key {SECRET} in a.py"}]}}
    agents.save(old, version, old.evolve(result=leaked))
    keyed = swarm_settings.model_copy(update={"api_key": SecretStr(SECRET)})
    client = SwarmClient.create(keyed, dash_client.client)

    async def check(http: TestClient) -> str:
        return json.dumps(await get(http, f"/api/runs/{staged.run.id}/agents/{worker.id}"))

    shown = with_client(keyed, client, check)
    assert SECRET not in shown
    assert "called the API with ***" in shown and "key *** in a.py" in shown


def test_a_secret_a_finding_flags_is_masked_in_every_part_of_the_agent_view_and_its_events(
        staged, swarm_settings, dash_client):
    """The same masking pass as the reports, over the whole view: bandit's title names the password,
    and the transcript, the tool call and the event that quote it without a secret-like name are masked too."""
    password = "hunter2-Pr0d-6b1f"
    staged.drain()
    agents = staged.agents()
    worker = next(a for a in agents.get_many(agents.ids(AgentStatus.DONE)) if a is not None and a.spec == "worker")
    old, version = agents.load(worker.id)
    flagged = {"result": {"findings": [{"severity": "high", "file": "settings.py", "line": 3, "rule": "B105",
                                        "title": f"Possible hardcoded password: '{password}'",
                                        "evidence": f'secret_value = "{password}"'}]}}
    read = [{"role": "assistant", "content": None, "tool_calls": [{"id": "c9", "type": "function", "function": {
                "name": "read_file", "arguments": json.dumps({"path": "settings.py", "expect": password})}}]},
            {"role": "tool", "tool_call_id": "c9", "content": f'DEFAULTS = {{"db": "{password}"}}'}]
    agents.save(old, version, old.evolve(result=flagged), append=read)
    staged.local.services.run(staged.run.id).state.events.emit("finding", "f-1", {"note": f"seen {password} here",
                                                                                 "password": password})

    async def check(http: TestClient) -> tuple[str, str]:
        detail = json.dumps(await get(http, f"/api/runs/{staged.run.id}/agents/{worker.id}"))
        resp = await http.get(f"/api/runs/{staged.run.id}/events?after=0-0")
        seen = ""
        while "f-1" not in seen:
            seen += (await resp.content.readline()).decode()
        resp.close()
        return detail, seen

    detail, events = with_client(swarm_settings, dash_client, check)
    assert password not in detail and password not in events
    assert 'DEFAULTS = {\\"db\\": \\"***\\"}' in detail and "Possible hardcoded password: '***'" in detail
    assert '"password":"***"' in events
