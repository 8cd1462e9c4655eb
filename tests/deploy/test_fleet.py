"""A real fleet: Flower (``celery -A swarm_tasks flower``) and two workers started with different node
names on one Redis, running one small scripted run. Flower lists every task by name with its run and
agent; the second worker, started with nothing but another ``-n``, takes a share of the agents."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from coordination.embedded import EmbeddedRedis
from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.spec import AgentSpec
from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.celery import CeleryScheduler, app, use_settings
from swarm_tasks.launch import start_agents
from swarm_tasks.runs import RunStatus
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.worker.cluster import LocalCluster, settings_env
from tests.deploy.conftest import FLOWER_AUTH, Proc, child_env, flushed, free_port, http_get, live_workers, wait_for

pytestmark = pytest.mark.slow

STARTUP_S = 90.0  # the machine is shared and loaded: generous, and never asserted on


@dataclass
class Fleet:
    settings: SwarmSettings
    client: SwarmClient
    flower: str
    run_id: str
    agents: list[AgentState]


def spec(name: str, script: str, **kwargs: object) -> AgentSpec:
    kwargs.setdefault("tools", ("finish", "spawn_agents"))
    kwargs.setdefault("role", "agent")
    return AgentSpec(name=name, model=f"scripted/py:tests.runtime.scripts:{script}", **kwargs)  # type: ignore[arg-type]


def flower_metrics(base: str) -> str | None:
    status, body = http_get(f"{base}/metrics")
    return body if status == 200 else None


@pytest.fixture(scope="module")
def fleet(embedded_redis: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp: Path = tmp_path_factory.mktemp("fleet")
    logs = tmp / "logs"
    with flushed(embedded_redis) as url:
        settings = SwarmSettings(redis_url=SecretStr(url), state_dir=tmp / "state", model_guard="local-only",
                                 agent_turn_lease_s=30.0, agent_step_grace_s=30.0, sweep_interval_s=0.2,
                                 flower_basic_auth=SecretStr(":".join(FLOWER_AUTH)))
        env = child_env(settings_env(settings))
        port = free_port()
        flower = Proc([sys.executable, "-m", "celery", "-A", "swarm_tasks", "flower", f"--port={port}"],
                      env, logs / "flower.log")
        # One worker as the project's LocalCluster starts it, and one with nothing but the documented
        # command and another node name: one turn at a time each, so the run's agents must spread.
        first = LocalCluster(settings, workers=1, queues=("agents", "control"), concurrency=1, name_prefix="first",
                             log_dir=logs)
        first.spawn(0)
        other = Proc([sys.executable, "-m", "celery", "-A", "swarm_tasks", "worker", "-n", "other@%h",
                      "-Q", "agents,control", "-c", "1"], env, logs / "other.log")
        base = f"http://127.0.0.1:{port}"
        try:
            def dead() -> str | None:
                worker = first.workers[0]
                return flower.dead() or other.dead() or (None if worker.alive() else first.tail(worker))

            wait_for(lambda: {"first0", "other"} <= {n.split("@")[0] for n in live_workers(settings)},
                     STARTUP_S, "both workers registered", alive=dead)
            # Flower has seen a heartbeat from both, so its event receiver is connected before the run.
            wait_for(lambda: (m := flower_metrics(base)) and 'flower_worker_online{worker="first0@' in m
                     and 'flower_worker_online{worker="other@' in m, STARTUP_S, "Flower receiving events", alive=dead)

            client = SwarmClient.create(settings, use_settings(settings).client, CeleryScheduler(app))
            # Four agents queued at once: each worker takes one (its first turn also loads the model
            # gateway, seconds on a busy machine), then one more.
            run = start_agents(client, [spec("sleeper", "sleeper_child", tools=("finish",))],
                               [ChildRequest("sleeper", f"sleep {i}", key=f"s{i}") for i in range(4)])
            wait_for(lambda: client.runs.get(run.id).status.terminal, 100, f"run {run.id} to end", alive=dead)
            assert client.runs.get(run.id).status is RunStatus.COMPLETED, client.runs.get(run.id).reason
            ctx = client.run(run.id)
            agents = [a for a in ctx.agents.get_many(sorted(ctx.agents.ids(AgentStatus.DONE))) if a is not None]
            yield Fleet(settings, client, base, run.id, agents)
        finally:
            flower.stop()
            other.stop()
            first.stop()


def test_flower_lists_every_task_by_name_with_its_run_and_agent(fleet: Fleet):
    assert len(fleet.agents) == 4
    expected = {(f"swarm.agent.step:{a.spec}", a.id) for a in fleet.agents}

    last: list[object] = []

    def listed() -> dict[str, dict[str, object]] | None:
        status, body = http_get(f"{fleet.flower}/api/tasks?search={fleet.run_id}", auth=FLOWER_AUTH)
        assert status == 200, body
        tasks = json.loads(body)
        last[:] = [(t["name"], t["state"], t["args"], t["worker"]) for t in tasks.values()]
        seen = {(t["name"], arg.removeprefix("agent=")) for t in tasks.values() if t["state"] == "SUCCESS"
                for arg in str(t["args"]).split() if arg.startswith("agent=")}
        idle = [t for t in tasks.values() if t["name"] == "swarm.run.idle" and t["state"] == "SUCCESS"]
        return tasks if expected <= seen and idle else None

    try:
        tasks = wait_for(listed, 30, "Flower to list the run's tasks")  # events arrive asynchronously
    except AssertionError as exc:
        raise AssertionError(f"{exc}; expected {sorted(expected)}, Flower has {last}") from None
    steps = [t for t in tasks.values() if str(t["name"]).startswith("swarm.agent.step:")]
    for task in steps:
        summary = str(task["args"])
        assert f"run={fleet.run_id}" in summary and "role=agent" in summary, summary
        assert str(task["worker"]).split("@")[0] in ("first0", "other")
    idle = [t for t in tasks.values() if t["name"] == "swarm.run.idle"]
    assert idle and all(t["args"] == f"run={fleet.run_id}" for t in idle)
    # The idle task's result is how the run ended: Flower shows "completed", "partial: <reason>"...
    assert any(str(t.get("result")).strip("'\"") == "completed" for t in idle), [t.get("result") for t in idle]

    status, _ = http_get(f"{fleet.flower}/api/tasks")
    assert status == 401, "basic auth from SWARM_FLOWER_BASIC_AUTH protects the API"
    status, body = http_get(f"{fleet.flower}/tasks", auth=FLOWER_AUTH)
    assert status == 200 and ">args<" in body, "the tasks page shows the argument summary"
    metrics = flower_metrics(fleet.flower) or ""
    assert 'swarm_queue_messages{queue="agents",state="reserved"}' in metrics


def test_a_worker_with_another_node_name_takes_work_with_no_other_change(fleet: Fleet):
    nodes = {a.id: str(a.last_node) for a in fleet.agents}
    names = {node.split("@")[0] for node in nodes.values()}
    assert names == {"first0", "other"}, nodes  # both processes ran agents of the same run
    # The live view's agent.turn events name the same nodes, turn by turn.
    turns = [e for e in fleet.client.run(fleet.run_id).state.events.read(count=1000) if e.type == "agent.turn"]
    assert {e.subject for e in turns} == set(nodes)
    assert {str(e.data["node"]).split("@")[0] for e in turns if isinstance(e.data, dict)} == names
