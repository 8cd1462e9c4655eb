"""``python -m bench agents``: N agents x K turns against the local mock model server at latency L.

Ours: a real run of N LLM agents on W Celery worker processes (threads pool, one asyncio loop per
process), each agent making K model calls through litellm to the mock server, with tools, durable
turns in Redis and a Celery task per turn. Baseline, in the same run: bare ``litellm.acompletion``
calls per second against the same server at the same concurrency, spread over the same number of
processes (the ceiling of this machine). Default: 1,000 agents x 3 turns at L = 1 s; ``--full``:
50,000 agents (ten times the best-known published review swarm's 5,136) x 3 turns at L = 2 s, with
the goals of issue 23: all finish, at least 0.8x the bare ceiling, under 4 GiB of worker memory and
under 8 KiB of Redis memory per ended agent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

from bench.common import BenchResult, Row, machine_info, progress, ratio, redis_for_bench
from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.spec import AgentSpec, Limits
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.celery import CeleryScheduler, app, use_settings
from swarm_tasks.launch import start_agents
from swarm_tasks.runs import RunLimits, RunStatus
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.worker.cluster import LocalCluster

MODEL = "openai/mock-model"
FULL_AGENTS = 50_000
SPEED_GOAL = 0.8  # of the bare litellm ceiling
WORKER_MEMORY_GOAL_MB = 4096.0
REDIS_PER_AGENT_GOAL_KB = 8.0
# The bare ceiling is a steady rate: this many calls measure it (at 2 s latency and ~170 calls/s, 3 minutes)
# without repeating all 150,000 of the full run.
BARE_CALLS_MAX = 30_000
# litellm caps its async HTTP pool at 500 connections per host per process unless told otherwise (read at
# import); both the baseline and our workers get the same, higher caps.
HTTP_ENV = {"AIOHTTP_CONNECTOR_LIMIT": "0", "AIOHTTP_CONNECTOR_LIMIT_PER_HOST": "0",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def script(turns: int) -> dict[str, object]:
    """K-1 turns that call a cheap tool, then finish (stateless: the mock server counts assistant turns)."""
    steps: list[dict[str, object]] = [
        {"tool_calls": [{"name": "list_files", "arguments": {"path": ".", "limit": 10 + i}}]} for i in range(turns - 1)]
    steps.append({"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]})
    return {"name": "bench-agent", "steps": steps}


class MockProcess:
    """The mock OpenAI-compatible server in its own process (its CPU is shared by both measurements)."""

    def __init__(self, latency_s: float, script_path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "swarm_tasks.models.mock_server", "--port", "0", "--latency", str(latency_s),
             "--script", str(script_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **HTTP_ENV})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.url = line.strip().split()[-1]
        if not self.url.startswith("http"):
            raise RuntimeError(f"mock server did not start: {line}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


_BARE = """
import asyncio, json, sys
from bench.model_calls import measure_bare_litellm
print(json.dumps(asyncio.run(measure_bare_litellm(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))))
"""


def measure_bare(url: str, calls: int, concurrency: int, processes: int) -> dict[str, float]:
    """Bare litellm.acompletion over ``processes`` processes started together; summed calls/s."""
    procs = [subprocess.Popen([sys.executable, "-c", _BARE, url, str(calls // processes),
                               str(max(1, concurrency // processes))], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, **HTTP_ENV}) for _ in range(processes)]
    results = [json.loads(p.communicate(timeout=1800)[0].strip().splitlines()[-1]) for p in procs]
    wall = max(r["wall_s"] for r in results)
    ok = sum(r["ok"] for r in results)
    return {"calls_per_s": ok / wall, "wall_s": wall, "ok": ok, "errors": sum(r["errors"] for r in results),
            "cpu_ms_per_call": sum(r["cpu_s"] for r in results) * 1000 / max(ok, 1)}


def rss_mb(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            total += sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
        except psutil.Error:
            continue
    return total / 2**20


def measure_ours(url: str, redis_url: str, state_dir: Path, agents: int, turns: int, workers: int,
                 concurrency: int) -> dict[str, float]:
    settings = SwarmSettings(redis_url=SecretStr(redis_url), state_dir=state_dir, api_base=url,
                             api_key=SecretStr("sk-mock"), model_guard="local-only", worker_concurrency=concurrency,
                             agent_step_grace_s=600.0, agent_turn_lease_s=600.0, run_max_agents=agents + 10,
                             run_max_concurrent_agents=agents + 10)
    handle = use_settings(settings)
    client = SwarmClient.create(settings, handle.client, CeleryScheduler(app))
    cluster = LocalCluster(settings, workers=workers, queues=("agents", "control"), concurrency=concurrency,
                           name_prefix="bench", log_dir=state_dir / "logs", extra_env=HTTP_ENV,
                           base_env=dict(os.environ))
    cluster.start(timeout_s=180)
    try:
        pids = [w.pid for w in cluster.workers]
        idle = rss_mb(pids)
        redis_before = float(handle.client.info("memory")["used_memory"])
        spec = AgentSpec(name="bench-agent", role="agent", model=MODEL, tools=("finish", "list_files"),
                         instructions="You are a benchmark agent.", limits=Limits(max_turns=turns + 2))
        roots = [ChildRequest("bench-agent", f"task {i}", key=f"b{i}") for i in range(agents)]
        started = time.monotonic()
        run = start_agents(client, [spec], roots, limits=RunLimits(max_agents=agents + 10,
                                                                   max_concurrent_agents=agents + 10))
        launched = time.monotonic() - started
        peak = idle
        ctx = client.run(run.id)
        while not client.runs.get(run.id).status.terminal:
            peak = max(peak, rss_mb(pids))
            time.sleep(0.25)
        wall = time.monotonic() - started
        record = client.runs.get(run.id)
        usage = ctx.agents.usage("run")
        counts = ctx.agents.counts()
        # Everything the run left in Redis (agent records, conversations, results, indexes, events),
        # over its ended agents: what an ended agent costs the server.
        redis_after = float(handle.client.info("memory")["used_memory"])
        return {"redis_kb_per_ended_agent": (redis_after - redis_before) / 1024 / max(counts[AgentStatus.DONE], 1),
                "wall_s": wall, "launch_s": launched, "model_calls": usage.get("model_calls", 0.0),
                "turns_per_s": usage.get("model_calls", 0.0) / wall, "peak_rss_mb": peak, "idle_rss_mb": idle,
                "done": counts[AgentStatus.DONE], "failed": counts[AgentStatus.FAILED] + counts[AgentStatus.STOPPED],
                "completed": float(record.status is RunStatus.COMPLETED)}
    finally:
        cluster.stop()


def run(full: bool, *, agents: int | None = None, turns: int = 3, latency_s: float | None = None,
        workers: int = 2) -> BenchResult:
    agents = agents or (FULL_AGENTS if full else 1000)
    latency_s = latency_s if latency_s is not None else (2.0 if full else 1.0)
    # Every agent is alive for the whole run; a worker process holds at most this many *turns in flight*
    # (the product default). More threads than that only contend for the GIL: at 2 s latency 512 in-flight
    # turns per process already exceed what 2 cores drive through litellm.
    concurrency = min(agents // workers + 16, SwarmSettings.model_fields["worker_concurrency"].default)
    with redis_for_bench() as redis_target, tempfile.TemporaryDirectory(prefix="bench-agents-") as tmp:
        script_path = Path(tmp) / "script.json"
        script_path.write_text(json.dumps(script(turns)))
        mock = MockProcess(latency_s, script_path)
        try:
            # The same calls in flight as our workers can have (each caps its turns in flight at `concurrency`).
            in_flight = min(agents, concurrency * workers)
            bare_calls = min(agents * turns, BARE_CALLS_MAX)
            progress(f"agents: bare litellm, {bare_calls} calls at concurrency {in_flight}, latency {latency_s}s")
            bare = measure_bare(mock.url, bare_calls, in_flight, workers)
            progress(f"agents: {agents} agents x {turns} turns on {workers} worker processes")
            ours = measure_ours(mock.url, redis_target.url, Path(tmp) / "state", agents, turns, workers, concurrency)
        finally:
            mock.stop()
        machine = machine_info(redis_target.client)
    lower_bound = turns * latency_s
    speed = ratio(ours["turns_per_s"], bare["calls_per_s"])
    # The goal is set at the published size; a quick run is dominated by launch and tail, so it is not judged.
    at_goal_size = agents >= FULL_AGENTS and turns >= 3 and latency_s >= 2.0
    later = " at 50,000 agents, L = 2 s (--full)"
    redis_kb = ours["redis_kb_per_ended_agent"]
    rows = [
        Row("agents finished", ours["done"], unit="agents", baseline=agents, baseline_name="started",
            ratio=ratio(ours["done"], agents), goal="all", goal_met=ours["done"] == agents),
        Row("wall time", ours["wall_s"], unit="s", baseline=lower_bound, baseline_name="turns x latency",
            ratio=ratio(ours["wall_s"], lower_bound)),
        Row("agent turns per second", ours["turns_per_s"], unit="/s", baseline=bare["calls_per_s"],
            baseline_name="bare litellm.acompletion", ratio=speed,
            goal=f">= {SPEED_GOAL:g}x" + ("" if at_goal_size else later),
            goal_met=(speed or 0) >= SPEED_GOAL if at_goal_size else None),
        Row("peak memory of workers", ours["peak_rss_mb"], unit="MB", baseline=ours["idle_rss_mb"],
            baseline_name="idle workers",
            goal=f"< {WORKER_MEMORY_GOAL_MB / 1024:g} GiB" + ("" if at_goal_size else later),
            goal_met=ours["peak_rss_mb"] < WORKER_MEMORY_GOAL_MB if at_goal_size else None),
        Row("Redis memory per ended agent", redis_kb, unit="KB",
            goal=f"< {REDIS_PER_AGENT_GOAL_KB:g} KiB" + ("" if at_goal_size else later),
            goal_met=redis_kb < REDIS_PER_AGENT_GOAL_KB if at_goal_size else None),
        Row("memory per concurrent agent", (ours["peak_rss_mb"] - ours["idle_rss_mb"]) * 1024 / agents, unit="KB"),
        Row("time to launch all agents", ours["launch_s"], unit="s"),
    ]
    notes = [f"all {agents} agents are alive at once (none ends before the last turns); each worker process runs at "
             f"most {concurrency} of their turns at a time, the rest wait on the queue "
             "(see swarm_tasks/worker/runtime.py).",
             f"{agents} LLM agents x {turns} turns (K-1 tool calls to list_files, then finish) at {latency_s}s model "
             f"latency on {workers} Celery worker processes (threads pool, concurrency {concurrency} each); each turn "
             "is one Celery task with late ack, one compare-and-set of the agent record, and one litellm call.",
             f"baseline: bare litellm.acompletion, {bare_calls} calls at concurrency {in_flight} (the turns our "
             f"workers can have in flight) over {workers} processes against the same server; "
             f"{bare['cpu_ms_per_call']:.2f} ms CPU per call.",
             "Redis memory per ended agent: the server's used_memory after the run less before it, over the agents "
             "that ended done (records, conversations, results, the run's indexes and capped event streams).",
             "wall time includes launching the agents from one client process (see the launch row)."]
    return BenchResult(name="agents", rows=rows, machine=machine,
                       params={"agents": agents, "turns": turns, "latency_s": latency_s, "workers": workers,
                               "concurrency": concurrency},
                       notes=notes, details={"bare": bare, "ours": ours})
