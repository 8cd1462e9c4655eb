"""``python -m bench scale``: what one agent costs, idle and waiting, and how that grows with the swarm.

For each size N (100 and 1,000 by default; 100, 1,000 and 5,000 with ``--full``) a fresh run of N LLM
agents x K turns against the local mock model server, on 2 Celery worker processes:

1. The workers start, then stop consuming the agents queue (Celery's ``cancel_consumer``), so their
   resident memory is measured idle.
2. The N agents are launched. Nothing consumes their turns yet: every agent is *idle*, held only in
   Redis (its record, its conversation, its queued turn message). The MEMORY USAGE of the run's keys
   and of the queue, divided by N, is the memory per idle agent.
3. The workers consume again (``add_consumer``). While turns wait on the model, worker memory is
   sampled; the peak above idle, divided by the most requests the model server saw in flight at once,
   is the memory per *waiting* agent (a turn parked on its model reply).
4. At the end: worker CPU (user + system of the worker processes), Redis CPU and commands, and the
   model's tokens and dollars (the mock model is priced through ``SWARM_MODEL_PRICES`` at 3 / 15 USD
   per million input / output tokens, a mid-size hosted model), each divided by N.

The rows compare each per-agent cost at the largest N with the same at 100 agents: a swarm whose
per-agent cost stays flat as it grows scales linearly.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from pydantic import SecretStr

from bench.agents import HTTP_ENV, MODEL, MockProcess, rss_mb, script
from bench.common import BenchResult, Row, consumers, machine_info, progress, ratio, redis_for_bench, worker_names
from coordination.connection import connect
from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.spec import AgentSpec, Limits
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.celery import CeleryScheduler, app, use_settings
from swarm_tasks.launch import start_agents
from swarm_tasks.runs import RunLimits
from swarm_tasks.settings import ModelPrice, SwarmSettings
from swarm_tasks.worker.cluster import LocalCluster

PRICE = ModelPrice(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0)
WORKERS = 2
# Per-agent costs may grow this much from 100 agents to the largest size and still count as linear.
FLAT = 1.5
WARMUP = 50


def _cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def _redis(client: Any) -> dict[str, float]:
    memory, stats, cpu = client.info("memory"), client.info("stats"), client.info("cpu")
    return {"used_memory": float(memory["used_memory"]), "commands": float(stats["total_commands_processed"]),
            "cpu_s": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])}


def _run_bytes(client: Any, prefix: str, run_id: str) -> int:
    """Bytes Redis holds for one run's keys (MEMORY USAGE of each, summed)."""
    total = 0
    batch: list[bytes] = []
    for key in [*client.scan_iter(match=f"{prefix}:{{{run_id}}}:*", count=1000), None]:
        if key is not None:
            batch.append(key)
        if batch and (key is None or len(batch) >= 500):
            pipe = client.pipeline(transaction=False)
            for k in batch:
                pipe.memory_usage(k, samples=0)
            total += sum(int(n or 0) for n in pipe.execute())
            batch = []
    return total


def _max_in_flight(url: str) -> int:
    with urllib.request.urlopen(url.rstrip("/").removesuffix("/v1") + "/stats", timeout=10) as reply:
        return int(json.loads(reply.read())["max_in_flight"])


def measure(agents: int, turns: int, latency_s: float, redis_url: str, tmp: Path) -> dict[str, float]:
    script_path = tmp / f"script-{agents}.json"
    script_path.write_text(json.dumps(script(turns)))
    mock = MockProcess(latency_s, script_path)  # a fresh server per size: its in-flight peak is this run's
    state_dir = tmp / f"state-{agents}"
    settings = SwarmSettings(redis_url=SecretStr(redis_url), state_dir=state_dir, api_base=mock.url,
                             api_key=SecretStr("sk-mock"), model_guard="local-only", model_prices={MODEL: PRICE},
                             agent_step_grace_s=600.0, agent_turn_lease_s=600.0, run_max_agents=agents + 10,
                             run_max_concurrent_agents=agents + 10)
    handle = use_settings(settings)
    client = SwarmClient.create(settings, handle.client, CeleryScheduler(app))
    concurrency = settings.worker_concurrency
    cluster = LocalCluster(settings, workers=WORKERS, queues=("agents", "control"), concurrency=concurrency,
                           name_prefix=f"scale{agents}-", log_dir=state_dir / "logs", extra_env=HTTP_ENV,
                           base_env=dict(os.environ))
    redis = connect(settings).client
    try:
        cluster.start(timeout_s=180)
        names = worker_names(cluster)
        pids = [w.pid for w in cluster.workers]
        spec = AgentSpec(name="scale-agent", role="agent", model=MODEL, tools=("finish", "list_files"),
                         instructions="You are a benchmark agent.", limits=Limits(max_turns=turns + 2))

        def launch(count: int, prefix: str) -> str:
            roots = [ChildRequest("scale-agent", f"task {i}", key=f"{prefix}{i}") for i in range(count)]
            return start_agents(client, [spec], roots, limits=RunLimits(max_agents=count + 10,
                                                                        max_concurrent_agents=count + 10)).id

        # Warm up first: litellm, the HTTP pool and the pool's threads load on first use, once per process.
        warm = launch(WARMUP, "w")
        while not client.runs.get(warm).status.terminal:
            time.sleep(0.2)
        consumers(app, names, add=False)
        time.sleep(1.0)
        warm_in_flight = _max_in_flight(mock.url)
        idle_rss = rss_mb(pids)
        before = _redis(redis)
        run_id = launch(agents, "s")
        parked = _redis(redis)
        # What the idle agents hold: the run's keys and their queued turn messages (exact, not allocator noise).
        idle_bytes = _run_bytes(redis, settings.key_prefix, run_id) + int(redis.memory_usage("agents", samples=0) or 0)
        cpu_before = _cpu_s(pids)
        started = time.monotonic()
        consumers(app, names, add=True)
        peak = idle_rss
        ctx = client.run(run_id)
        while not client.runs.get(run_id).status.terminal:
            peak = max(peak, rss_mb(pids))
            time.sleep(0.2)
        wall = time.monotonic() - started
        worker_cpu = _cpu_s(pids) - cpu_before
        after = _redis(redis)
        usage = ctx.agents.usage("run")
        retained = _run_bytes(redis, settings.key_prefix, run_id)
        in_flight = _max_in_flight(mock.url)
        if in_flight <= warm_in_flight:
            progress(f"scale: the warm-up had as many turns in flight ({warm_in_flight}) as the run ({in_flight})")
        done = ctx.agents.counts()[AgentStatus.DONE]
    finally:
        cluster.stop()
        mock.stop()
        redis.close()
    return {
        "agents": agents, "done": done, "wall_s": wall, "idle_rss_mb": idle_rss, "peak_rss_mb": peak,
        "max_in_flight": in_flight,
        "idle_agent_kb": idle_bytes / agents / 1024,
        "idle_used_memory_kb": (parked["used_memory"] - before["used_memory"]) / agents / 1024,
        "waiting_agent_kb": (peak - idle_rss) * 1024 / max(in_flight, 1),
        "retained_agent_kb": retained / agents / 1024,
        "worker_cpu_ms_per_agent": worker_cpu * 1000 / agents,
        "redis_cpu_ms_per_agent": (after["cpu_s"] - parked["cpu_s"]) * 1000 / agents,
        "redis_commands_per_agent": (after["commands"] - before["commands"]) / agents,
        "tokens_per_agent": (usage.get("prompt_tokens", 0.0) + usage.get("completion_tokens", 0.0)) / agents,
        "usd_per_agent": usage.get("cost_usd", 0.0) / agents,
        "model_calls": usage.get("model_calls", 0.0),
    }


COLUMNS = (("agents", "agents", "{:,.0f}"), ("done", "finished", "{:,.0f}"), ("wall_s", "wall s", "{:.1f}"),
           ("idle_agent_kb", "Redis KB per idle agent", "{:.1f}"),
           ("waiting_agent_kb", "worker KB per waiting agent", "{:.0f}"),
           ("max_in_flight", "most turns waiting at once", "{:,.0f}"),
           ("retained_agent_kb", "Redis KB per ended agent", "{:.1f}"),
           ("worker_cpu_ms_per_agent", "worker CPU ms per agent", "{:.1f}"),
           ("redis_cpu_ms_per_agent", "Redis CPU ms per agent", "{:.2f}"),
           ("redis_commands_per_agent", "Redis commands per agent", "{:.0f}"),
           ("tokens_per_agent", "tokens per agent", "{:,.0f}"),
           ("usd_per_agent", "USD per agent", "{:.5f}"))


def growth_table(sizes: list[dict[str, float]], turns: int, latency_s: float) -> str:
    lines = [f"**scale**: cost per agent as the swarm grows ({turns} turns per agent, {latency_s:g} s model latency, "
             f"{WORKERS} worker processes)", "",
             "| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|" + "---:|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt.format(size[key]) for key, _, fmt in COLUMNS) + " |" for size in sizes]
    return "\n".join(lines)


def run(full: bool, *, sizes: tuple[int, ...] | None = None, turns: int = 2, latency_s: float = 1.0) -> BenchResult:
    sizes = sizes or ((100, 1000, 5000) if full else (100, 1000))
    with redis_for_bench() as target, tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        results = []
        for n in sizes:
            progress(f"scale: {n} agents x {turns} turns at {latency_s}s latency")
            results.append(measure(n, turns, latency_s, target.url, Path(tmp)))
        machine = machine_info(target.client)
    small, large = results[0], results[-1]

    def growth(metric: str, key: str, unit: str) -> Row:
        grown = ratio(large[key], small[key])
        return Row(f"{metric} at {large['agents']:,.0f} agents", large[key], unit=unit, baseline=small[key],
                   baseline_name=f"at {small['agents']:,.0f}", ratio=grown, goal=f"<= {FLAT}x",
                   goal_met=grown is not None and grown <= FLAT)

    rows = [
        Row("agents finished", sum(r["done"] for r in results), unit="agents",
            baseline=float(sum(sizes)), baseline_name="started", goal="all",
            goal_met=all(r["done"] == r["agents"] for r in results)),
        Row("Redis memory per idle agent", large["idle_agent_kb"], unit="KB"),
        Row("worker memory per waiting agent", large["waiting_agent_kb"], unit="KB"),
        growth("worker CPU per agent", "worker_cpu_ms_per_agent", "ms"),
        growth("Redis commands per agent", "redis_commands_per_agent", ""),
        growth("Redis memory per idle agent", "idle_agent_kb", "KB"),
    ]
    notes = [f"each size is a fresh run of N agents x {turns} turns (a list_files tool call, then finish) at "
             f"{latency_s:g} s model latency on {WORKERS} Celery worker processes (threads pool, at most "
             f"{SwarmSettings.model_fields['worker_concurrency'].default} turns in flight each).",
             "idle agent: launched with the workers not consuming, so it lives only in Redis (record, conversation, "
             "queued turn message); waiting agent: a turn parked on its model reply inside a worker (peak worker "
             "memory above idle over the most requests the model server saw in flight at once).",
             "ended agents stay in Redis (records, transcripts, usage) until the run is deleted: the growth "
             "table's ended-agent column is MEMORY USAGE summed over the run's keys, over N.",
             f"dollars: the mock model priced at {PRICE.input_usd_per_mtok:g} / {PRICE.output_usd_per_mtok:g} USD "
             "per million input / output tokens through SWARM_MODEL_PRICES."]
    return BenchResult(name="scale", rows=rows, machine=machine,
                       params={"sizes": list(sizes), "turns": turns, "latency_s": latency_s, "workers": WORKERS},
                       notes=notes, details={"sizes": results}, tables=[growth_table(results, turns, latency_s)])
