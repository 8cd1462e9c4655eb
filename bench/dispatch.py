"""``python -m bench dispatch``: what one agent turn costs in dispatch, next to a bare Celery no-op.

Same broker, same worker processes (threads pool). Two shapes:

* Round trip, one at a time (the goal's row: an agent's turn costs at most 1.3x a bare Celery round trip).
  Baseline: ``swarm.ping`` sent, run by a worker, its result observed by the sender, one after another.
  Ours: a chain of one-turn program agents, each starting the next (detached) and ending at once, so
  each link is one whole agent: its record created, its step queued, acquired by compare-and-set, the
  no-op program run, its ending recorded with indexes and events. Per link: the time between the first
  and the last link's ``agent.running`` over the links in between. Rounds alternate the two sides and the
  best round of each is reported (load from elsewhere only ever slows a round down).
* Throughput: N ``swarm.ping`` tasks already on the queue, drained, against N program agents of one turn
  each, and N LLM agents of one turn on the scripted model (adding litellm's path without network). Rates
  are measured from the first to the last completion seen in the run's events (for agents) or by the
  queue draining.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

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


# A stuck run fails its rows instead of the whole `bench all`: far above what a healthy run takes (about
# 4 s for 1,000 one-turn agents here under load), short enough to stay inside its ten minutes.
def deadline_s(count: int) -> float:
    return 60.0 + 0.02 * count


TURN_COST_GOAL = 1.3  # an empty agent turn costs at most this many bare Celery round trips


def noop_program(_ctx: ProgramContext) -> ProgramResult:
    """A program agent that does nothing: its turn is pure dispatch and bookkeeping."""
    return ProgramResult()


def chain_program(ctx: ProgramContext) -> ProgramResult:
    """One link of a chain: starts the next link (detached: nobody waits for it) and ends at once."""
    left = int(ctx.agent.input or 0)  # type: ignore[arg-type]
    if left <= 1:
        return ProgramResult()
    return ProgramResult(children=[ChildRequest(ctx.spec.name, "go", input=left - 1, key=f"link-{left - 1}",
                                                detached=True)])


def ping_round_trip_s(count: int) -> float:
    """Seconds per ``swarm.ping`` sent, run by a worker and its result seen by the sender, one at a time."""
    started = time.monotonic()
    for i in range(count):
        ping.apply_async((str(i),), queue="agents", ignore_result=False).get(timeout=60, interval=0.001)
    return (time.monotonic() - started) / count


def chain_link_s(client: SwarmClient, links: int) -> float:
    """Seconds per link of a chain of ``links`` one-turn program agents (each starting the next)."""
    spec = AgentSpec(name="link", role="agent", kind=AgentKind.PROGRAM, program="bench.dispatch:chain_program",
                     tools=())
    run = start_agents(client, [spec], [ChildRequest("link", "go", input=links, key="link")],
                       limits=RunLimits(max_agents=links + 5, max_concurrent_agents=links + 5))
    wait_ended(client, run.id, links)
    events = client.run(run.id).state.events.read(count=10 * links + 100)
    begun = sorted(e.ts for e in events if e.type == "agent.running")
    done = sum(1 for e in events if e.type == "agent.done")
    if len(begun) != links or done != links:
        raise RuntimeError(f"chain of {links}: {len(begun)} links ran, {done} done")
    return (begun[-1] - begun[0]) / (links - 1)


def round_trips(client: SwarmClient, count: int, rounds: int) -> dict[str, list[float]]:
    """Interleaved rounds of both round trips (seconds each), after a warm-up of each."""
    ping_round_trip_s(20)
    chain_link_s(client, 20)
    out: dict[str, list[float]] = {"bare_s": [], "ours_s": [], "load_1m": []}
    for _ in range(rounds):
        out["bare_s"].append(ping_round_trip_s(count))
        out["ours_s"].append(chain_link_s(client, count))
        out["load_1m"].append(os.getloadavg()[0])
    return out


def drain_rate(names: list[str], count: int) -> float:
    """``count`` no-op tasks queued while the workers do not consume; then the time from letting them
    consume until every one has started (each worker's own count, by ``inspect stats``)."""
    consumers(app, names, add=False)
    # A BRPOP already waiting when consuming stops would take the first message and, finding no consumer,
    # leave it unacked until the visibility timeout: wait for it to time out (kombu's 1 s) first.
    time.sleep(1.5)
    with app.producer_or_acquire() as producer:
        for i in range(count):
            ping.apply_async((str(i),), queue="agents", producer=producer)
    before = tasks_started(app, names, "swarm.ping")
    started = time.monotonic()
    consumers(app, names, add=True)
    while (done := tasks_started(app, names, "swarm.ping") - before) < count:
        if time.monotonic() - started > deadline_s(count):
            raise RuntimeError(f"{done} of {count} no-op tasks started in {deadline_s(count):g} s")
        time.sleep(0.05)
    return count / (time.monotonic() - started)


def wait_ended(client: SwarmClient, run_id: str, count: int) -> None:
    deadline = time.monotonic() + deadline_s(count)
    while not client.runs.get(run_id).status.terminal:
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} of {count} agents did not end in {deadline_s(count):g} s")
        time.sleep(0.02)


def agent_rate(client: SwarmClient, spec: AgentSpec, count: int) -> float:
    roots = [ChildRequest(spec.name, "go", key=f"{spec.name}-{i}") for i in range(count)]
    run = start_agents(client, [spec], roots, limits=RunLimits(max_agents=count + 5, max_concurrent_agents=count + 5))
    wait_ended(client, run.id, count)
    events = client.run(run.id).state.events.read(count=10 * count + 100)
    begun = [e.ts for e in events if e.type == "agent.running"]
    ended = [e.ts for e in events if e.type == "agent.done"]
    if not begun or len(ended) < count:
        return 0.0
    return count / max(ended[-1] - min(begun), 1e-6)


def measure(settings: SwarmSettings, count: int, workers: int, logs: Path, *, baseline: bool = True,
            trips: int = 0, rounds: int = 0) -> dict[str, Any]:
    """No-op tasks (unless not ``baseline``: 0.0), one-turn program agents and one-turn scripted LLM agents per
    second on ``settings``' broker; with ``trips``, also ``rounds`` of both round trips one at a time."""
    handle = use_settings(settings)
    client = SwarmClient.create(settings, handle.client, CeleryScheduler(app))
    cluster = LocalCluster(settings, workers=workers, queues=("agents", "control"), concurrency=64,
                           name_prefix="dispatch", log_dir=logs, base_env=dict(os.environ))
    cluster.start(timeout_s=180)
    out: dict[str, Any] = {"bare": 0.0}
    try:
        if trips:
            progress(f"dispatch: {rounds} rounds of {trips} round trips, one at a time (no-op task, agent chain)")
            out["trips"] = round_trips(client, trips, rounds)
        if baseline:
            progress(f"dispatch: {count} no-op Celery tasks")
            names = worker_names(cluster)
            drain_rate(names, min(50, count))
            out["bare"] = drain_rate(names, count)
        progress(f"dispatch: {count} one-turn program agents")
        program = AgentSpec(name="noop", role="agent", kind=AgentKind.PROGRAM,
                            program="bench.dispatch:noop_program", tools=())
        agent_rate(client, program, min(50, count))
        out["ours"] = agent_rate(client, program, count)
        progress(f"dispatch: {count} one-turn scripted LLM agents")
        llm = AgentSpec(name="echo", role="agent", model="scripted/echo-finish", tools=("finish",))
        agent_rate(client, llm, min(50, count))
        out["ours_llm"] = agent_rate(client, llm, count)
    finally:
        cluster.stop()
    return out


def round_trip_row(trips: dict[str, list[float]]) -> Row:
    """The goal's row: the best round of each side (seconds per round trip), with the load it ran under."""
    bare, ours = min(trips["bare_s"]), min(trips["ours_s"])
    load = max(trips["load_1m"])
    cost = ratio(ours, bare)
    return Row(f"empty agent turn, one at a time (load {load:.1f})", ours, unit="s", baseline=bare,
               baseline_name="Celery no-op round trip", ratio=cost, goal=f"<= {TURN_COST_GOAL}x",
               goal_met=None if cost is None else cost <= TURN_COST_GOAL)


def run(full: bool, *, count: int | None = None, workers: int = 2, trips: int | None = None,
        rounds: int | None = None, rabbitmq: bool | None = None) -> BenchResult:
    # The RabbitMQ rows are a comparison without a goal: `--full` measures them, a quick look does not
    # (they were 40 % of a default run; `bench all` has a ten-minute bound).
    rabbitmq = full if rabbitmq is None else rabbitmq
    count = count or (5000 if full else 1000)
    trips = trips or (500 if full else 200)
    rounds = rounds or (5 if full else 3)
    rows: list[Row] = []
    unavailable = rabbitmq_unavailable() if rabbitmq else "measured with --full only"
    with redis_for_bench() as target, tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        settings = SwarmSettings(redis_url=SecretStr(target.url), state_dir=Path(tmp), model_guard="local-only",
                                 worker_concurrency=64, agent_step_grace_s=600.0)
        measured = measure(settings, count, workers, Path(tmp) / "logs-redis", trips=trips, rounds=rounds)
        bare, ours, ours_llm = measured["bare"], measured["ours"], measured["ours_llm"]
        rows += [round_trip_row(measured["trips"]),
                 Row("program agent turns per second", ours, unit="/s", baseline=bare,
                     baseline_name="Celery no-op task", ratio=ratio(ours, bare)),
                 Row("scripted LLM agent turns per second", ours_llm, unit="/s", baseline=bare,
                     baseline_name="Celery no-op task", ratio=ratio(ours_llm, bare))]
        if unavailable is None:  # the same agents with RabbitMQ as the broker, next to the Redis broker's rates
            try:
                with Vhost("swarm-dispatch") as vhost:
                    amqp = settings.model_copy(update={"broker_url": SecretStr(vhost.url)})
                    on_rabbit = measure(amqp, count, workers, Path(tmp) / "logs-rabbitmq", baseline=False)
            except RuntimeError as exc:  # said in the notes; the Redis broker's rows stand on their own
                unavailable = f"the run on RabbitMQ failed: {exc}"
        if unavailable is None:
            rows += [Row("program agent turns per second, RabbitMQ broker", on_rabbit["ours"], unit="/s",
                         baseline=ours, baseline_name="the same on the Redis broker",
                         ratio=ratio(on_rabbit["ours"], ours)),
                     Row("scripted LLM agent turns per second, RabbitMQ broker", on_rabbit["ours_llm"], unit="/s",
                         baseline=ours_llm, baseline_name="the same on the Redis broker",
                         ratio=ratio(on_rabbit["ours_llm"], ours_llm))]
        use_settings(settings)
        machine = machine_info(target.client)
    return BenchResult(
        name="dispatch", machine=machine,
        params={"count": count, "workers": workers, "concurrency": 64, "trips": trips, "rounds": rounds},
        rows=rows, details={"round_trips": measured["trips"]},
        notes=[f"{workers} worker processes, threads pool, concurrency 64, Celery events on (as Flower needs). "
               f"Round trip, one at a time ({rounds} rounds of {trips}, alternating, best round each, load average "
               "after each round in details): a no-op task sent, run and its result read back by the sender, "
               "against a chain of one-turn program agents, each link starting the next and ending at once (one "
               "link: the agent's record created and its step queued, the step consumed, the agent acquired by "
               "compare-and-set, the no-op program run, the ending compare-and-set with indexes and events), "
               "timed from the first link's start to the last's on the workers' own event timestamps. On a "
               "machine shared with other work both sides slow down; the ratio, measured moments apart, is "
               "what is judged.",
               "Throughput: a no-op task is one message, its events and its ack (its rate: tasks queued, then "
               "consumed, timed until the workers' own counters show all started); an agent turn adds the "
               "agent's record read, the acquiring and ending compare-and-sets (with status sets, deadlines, "
               "counters and events in the same Lua calls), and the run's idle bookkeeping.",
               "RabbitMQ rows: the machine's RabbitMQ as Celery's broker (a vhost of the benchmark's own; durable "
               "quorum queues, publisher confirms), Redis for coordination, against the same agents on the Redis "
               "broker (the no-op drain is not repeated there: it stops and restarts consuming by remote control, "
               "which on quorum queues did not always resume). " +
               (f"Not measured here: {unavailable}." if unavailable else "")])
