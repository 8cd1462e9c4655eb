"""``python -m bench dispatch``: what one agent turn costs in dispatch, next to a bare Celery no-op.

Same broker, same worker processes (threads pool). Baseline: N ``swarm.ping`` tasks (do nothing) already
on the queue, drained. Ours: N program agents of one turn each (the step task, acquiring the agent by
compare-and-set, running a no-op program, recording the ending with its indexes and events), and N LLM
agents of one turn on the scripted model (adding litellm's path without network). Rates are measured
from the first to the last completion seen in the run's events (for agents) or by the queue draining.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from bench.common import (
    BenchResult,
    Row,
    consumers,
    machine_info,
    progress,
    ratio,
    redis_for_bench,
    tasks_started,
    worker_names,
)
from bench.rabbitmq import Vhost, rabbitmq_unavailable
from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.program import ProgramContext, ProgramResult
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.spec import AgentKind, AgentSpec
from swarm_tasks.celery import CeleryScheduler, app, ping, use_settings
from swarm_tasks.launch import start_agents
from swarm_tasks.runs import RunLimits
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.worker.cluster import LocalCluster


def noop_program(_ctx: ProgramContext) -> ProgramResult:
    """A program agent that does nothing: its turn is pure dispatch and bookkeeping."""
    return ProgramResult()


def drain_rate(names: list[str], count: int) -> float:
    """``count`` no-op tasks queued while the workers do not consume; then the time from letting them
    consume until every one has started (each worker's own count, by ``inspect stats``)."""
    consumers(app, names, add=False)
    with app.producer_or_acquire() as producer:
        for i in range(count):
            ping.apply_async((str(i),), queue="agents", producer=producer)
    before = tasks_started(app, names, "swarm.ping")
    started = time.monotonic()
    consumers(app, names, add=True)
    while tasks_started(app, names, "swarm.ping") < before + count:
        time.sleep(0.05)
    return count / (time.monotonic() - started)


def agent_rate(client: SwarmClient, spec: AgentSpec, count: int) -> float:
    roots = [ChildRequest(spec.name, "go", key=f"{spec.name}-{i}") for i in range(count)]
    run = start_agents(client, [spec], roots, limits=RunLimits(max_agents=count + 5, max_concurrent_agents=count + 5))
    while not client.runs.get(run.id).status.terminal:
        time.sleep(0.05)
    events = client.run(run.id).state.events.read(count=10 * count + 100)
    begun = [e.ts for e in events if e.type == "agent.running"]
    ended = [e.ts for e in events if e.type == "agent.done"]
    if not begun or len(ended) < count:
        return 0.0
    return count / max(ended[-1] - min(begun), 1e-6)


def measure(settings: SwarmSettings, count: int, workers: int, logs: Path, *, baseline: bool = True,
            ) -> tuple[float, float, float]:
    """No-op tasks (unless not ``baseline``: 0.0), one-turn program agents and one-turn scripted LLM agents per
    second on ``settings``' broker."""
    handle = use_settings(settings)
    client = SwarmClient.create(settings, handle.client, CeleryScheduler(app))
    cluster = LocalCluster(settings, workers=workers, queues=("agents", "control"), concurrency=64,
                           name_prefix="dispatch", log_dir=logs, base_env=dict(os.environ))
    cluster.start(timeout_s=180)
    try:
        bare = 0.0
        if baseline:
            progress(f"dispatch: {count} no-op Celery tasks")
            names = worker_names(cluster)
            drain_rate(names, 50)
            bare = drain_rate(names, count)
        progress(f"dispatch: {count} one-turn program agents")
        program = AgentSpec(name="noop", role="agent", kind=AgentKind.PROGRAM,
                            program="bench.dispatch:noop_program", tools=())
        agent_rate(client, program, 50)
        ours = agent_rate(client, program, count)
        progress(f"dispatch: {count} one-turn scripted LLM agents")
        llm = AgentSpec(name="echo", role="agent", model="scripted/echo-finish", tools=("finish",))
        agent_rate(client, llm, 50)
        ours_llm = agent_rate(client, llm, count)
    finally:
        cluster.stop()
    return bare, ours, ours_llm


def run(full: bool, *, count: int | None = None, workers: int = 2) -> BenchResult:
    count = count or (5000 if full else 1000)
    rows: list[Row] = []
    unavailable = rabbitmq_unavailable()
    with redis_for_bench() as target, tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        settings = SwarmSettings(redis_url=SecretStr(target.url), state_dir=Path(tmp), model_guard="local-only",
                                 worker_concurrency=64, agent_step_grace_s=600.0)
        bare, ours, ours_llm = measure(settings, count, workers, Path(tmp) / "logs-redis")
        rows += [Row("program agent turns per second", ours, unit="/s", baseline=bare,
                     baseline_name="Celery no-op task", ratio=ratio(ours, bare)),
                 Row("scripted LLM agent turns per second", ours_llm, unit="/s", baseline=bare,
                     baseline_name="Celery no-op task", ratio=ratio(ours_llm, bare))]
        if unavailable is None:  # the same agents with RabbitMQ as the broker, next to the Redis broker's rates
            with Vhost("swarm-dispatch") as vhost:
                amqp = settings.model_copy(update={"broker_url": SecretStr(vhost.url)})
                _, on_rabbit, on_rabbit_llm = measure(amqp, count, workers, Path(tmp) / "logs-rabbitmq",
                                                      baseline=False)
            rows += [Row("program agent turns per second, RabbitMQ broker", on_rabbit, unit="/s", baseline=ours,
                         baseline_name="the same on the Redis broker", ratio=ratio(on_rabbit, ours)),
                     Row("scripted LLM agent turns per second, RabbitMQ broker", on_rabbit_llm, unit="/s",
                         baseline=ours_llm, baseline_name="the same on the Redis broker",
                         ratio=ratio(on_rabbit_llm, ours_llm))]
        use_settings(settings)
        machine = machine_info(target.client)
    return BenchResult(
        name="dispatch", machine=machine, params={"count": count, "workers": workers, "concurrency": 64},
        rows=rows,
        notes=[f"{workers} worker processes, threads pool, concurrency 64, Celery events on (as Flower needs). "
               "A no-op task is one message, its events and its ack (its rate: tasks queued, then consumed, timed "
               "until the workers' own counters show all started); an agent turn adds the agent's record read, "
               "the acquiring and ending compare-and-sets (with status sets, deadlines, counters and events in "
               "the same Lua calls), and the run's idle bookkeeping.",
               "RabbitMQ rows: the machine's RabbitMQ as Celery's broker (a vhost of the benchmark's own; durable "
               "quorum queues, publisher confirms), Redis for coordination, against the same agents on the Redis "
               "broker (the no-op drain is not repeated there: it stops and restarts consuming by remote control, "
               "which on quorum queues did not always resume). " +
               (f"Not measured here: {unavailable}." if unavailable else "")])
