"""``python -m bench review``: a generated repository reviewed by model agents on the local mock server,
and the offline review against its analyzers run directly (bench/review_offline.py).

The mock OpenAI-compatible server answers every agent (scanner, reviewers, sub-reviewers) at latency L
with the scripted review behaviour (``swarm_tasks.review.scripted:reviewer``), through litellm's normal
``openai/`` route. Reported: wall time, agents run, agent turns per second, peak memory, and two lower
bounds measured in the same run: the critical path (the longest chain of model calls from the root agent
to any agent, a child starting only after its parent finished, times the latency) and the model-call
floor (the run's model calls at the rate bare ``litellm.acompletion`` reaches against the same server,
with 1,000 calls in flight, or the review's peak if higher, over as many processes as there are
workers). Goal: wall time at most 1.5x the larger of the two. A small review runs first, unmeasured,
so the workers have imported litellm and the analyzers before the clock starts (as the baseline's
processes have). Default 300 files at L = 1 s; ``--full`` 1,000 files.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from pydantic import SecretStr

from bench.agents import HTTP_ENV, measure_bare, rss_mb
from bench.common import BenchResult, Row, machine_info, progress, ratio, redis_for_bench
from bench.review_offline import offline_rows
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.celery import CeleryScheduler, app, use_settings
from swarm_tasks.review.job import ReviewJob
from swarm_tasks.review.workflow import all_agents, load_report, submit_review
from swarm_tasks.runs import RunLimits, RunRecord, RunStatus
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.sources import SourceSpec
from swarm_tasks.worker.cluster import LocalCluster

GOAL_X = 1.5
WARMUP_FILES = 20
BARE_CONCURRENCY = 1000  # CPU-bound well below it at L = 1 s on this machine (~170 calls/s)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vulnerable-shop"
SCRIPT = "py:swarm_tasks.review.scripted:reviewer"
MODEL = "openai/mock-model"

_RISKY = (
    'import subprocess\n\n\ndef run_{n}(cmd):\n    """Run a command."""\n'
    '    return subprocess.call("tool " + cmd, shell=True)\n',
    'import sqlite3\n\n\ndef find_{n}(conn, name):\n    """Find a row."""\n'
    '    return conn.execute(f"SELECT * FROM t WHERE name = \'{{name}}\'").fetchall()\n',
)


def generate_repo(root: Path, files: int, *, seed: int = 7) -> None:
    """Packages of modules importing their neighbours (so imports are followed); one in ten is risky."""
    rng = random.Random(seed)
    per_pkg = 50
    for index in range(files):
        pkg, mod = divmod(index, per_pkg)
        path = root / f"pkg{pkg}" / f"mod{mod}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").write_text('"""Package."""\n')
        body = [f'"""Module {index}."""\n']
        if mod + 1 < per_pkg and index + 1 < files:
            body.append(f"from pkg{pkg}.mod{mod + 1} import value_{index + 1}\n")
        if rng.random() < 0.1:
            body.append(rng.choice(_RISKY).format(n=index))
        body.append(f"\n\ndef value_{index}():\n    \"\"\"Return a value.\"\"\"\n    return {index}\n")
        path.write_text("".join(body))
    subprocess.run(["git", "init", "-q", str(root)], check=True)


class Mock:
    def __init__(self, latency_s: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "swarm_tasks.models.mock_server", "--port", "0", "--latency", str(latency_s),
             "--script", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **HTTP_ENV})
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip().split()[-1]

    def max_in_flight(self) -> int:
        """The most chat requests the server has held at once since it started."""
        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/stats", timeout=10) as reply:
            return int(json.load(reply)["max_in_flight"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def critical_path_calls(agents: list[AgentState]) -> int:
    """The longest root-to-agent chain of model calls (children start after their parent ended)."""
    by_id = {a.id: a for a in agents}
    memo: dict[str, int] = {}

    def chain(agent: AgentState) -> int:
        if agent.id not in memo:
            parent = by_id.get(agent.parent or "")
            memo[agent.id] = agent.usage.model_calls + (chain(parent) if parent else 0)
        return memo[agent.id]

    return max((chain(a) for a in agents), default=0)


def run(full: bool, *, files: int | None = None, latency_s: float = 1.0, workers: int = 2) -> BenchResult:
    files = files or (1000 if full else 300)
    with redis_for_bench() as target, tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        repo = Path(tmp) / "repo"
        generate_repo(repo, files)
        progress(f"review: offline review vs the analyzers run directly ({EXAMPLE.name}, {files} files)")
        offline, offline_details = offline_rows({f"{EXAMPLE.name} (13 files)": EXAMPLE,
                                                 f"generated ({files} files)": repo}, workers)
        mock = Mock(latency_s)
        settings = SwarmSettings(redis_url=SecretStr(target.url), state_dir=Path(tmp) / "state", api_base=mock.url,
                                 api_key=SecretStr("sk-mock"), model_guard="local-only", worker_concurrency=1500,
                                 agent_step_grace_s=900.0, agent_turn_lease_s=900.0)
        handle = use_settings(settings)
        client = SwarmClient.create(settings, handle.client, CeleryScheduler(app))
        cluster = LocalCluster(settings, workers=workers, queues=("agents", "scan", "review", "control"),
                               concurrency=1500, name_prefix="review", log_dir=Path(tmp) / "logs",
                               extra_env=HTTP_ENV, base_env=dict(os.environ))
        cluster.start(timeout_s=180)
        try:
            pids = [w.pid for w in cluster.workers]
            models = {"scanner": MODEL, "reviewer": MODEL, "subreviewer": MODEL}
            limits = RunLimits(max_agents=50_000, max_concurrent_agents=20_000)
            progress(f"review: warm-up review of {WARMUP_FILES} files (unmeasured)")
            warm = Path(tmp) / "warm"
            generate_repo(warm, WARMUP_FILES, seed=11)
            _review(client, ReviewJob(source=SourceSpec(location=str(warm)), models=models, limits=limits), pids)
            progress(f"review: {files} files, model agents at {latency_s}s latency on {workers} workers")
            job = ReviewJob(source=SourceSpec(location=str(repo)), models=models, limits=limits)
            record, wall, peak, worker_cpu = _review(client, job, pids)
            final = client.runs.get(record.id)
            ctx = client.run(record.id)
            agents = all_agents(ctx)
            report = load_report(client, record.id) if final.status is RunStatus.COMPLETED else None
            # The machine's own floor: bare litellm calls per second against the same server (workers idle),
            # over as many processes as the review had workers, at BARE_CONCURRENCY: at least as many calls in
            # flight as the review ever had, so the floor is the machine's, not the review's own parallelism.
            in_flight = mock.max_in_flight()
            calls = int(sum(a.usage.model_calls for a in agents))
            concurrency = max(BARE_CONCURRENCY, in_flight)
            progress(f"review: bare litellm floor on the same server ({concurrency} calls in flight)")
            bare = measure_bare(mock.url, 2 * concurrency, concurrency, workers)
        finally:
            cluster.stop()
            mock.stop()
        machine = machine_info(target.client)
    path = critical_path_calls(agents) * latency_s
    done = sum(1 for a in agents if a.status is AgentStatus.DONE)
    floor = calls / bare["calls_per_s"] if bare["calls_per_s"] else float("inf")
    bound = max(path, floor)
    at_goal_size = files >= 1000
    x = ratio(wall, bound)
    rows = [
        Row("review completed", float(final.status is RunStatus.COMPLETED), goal="completed",
            goal_met=final.status is RunStatus.COMPLETED),
        Row("wall time", wall, unit="s", baseline=bound,
            baseline_name="max(critical path, model calls / bare litellm rate)", ratio=x,
            goal=f"<= {GOAL_X}x" if at_goal_size else f"<= {GOAL_X}x at 1,000 files (--full)",
            goal_met=(x or 99) <= GOAL_X if at_goal_size else None),
        Row("wall time vs critical path", wall, unit="s", baseline=path,
            baseline_name="longest call chain x L", ratio=ratio(wall, path)),
        Row("wall time vs model-call floor", wall, unit="s", baseline=floor,
            baseline_name=f"{calls} calls / bare litellm {bare['calls_per_s']:.0f}/s", ratio=ratio(wall, floor)),
        Row("agents run", float(len(agents)), unit="agents", baseline=float(done), baseline_name="ended done"),
        Row("model calls", float(calls), unit="calls"),
        Row("agent turns per second", calls / wall, unit="/s"),
        Row("worker CPU per model call", worker_cpu * 1000 / max(calls, 1), unit="ms",
            baseline=bare["cpu_ms_per_call"], baseline_name="bare litellm.acompletion's CPU per call",
            ratio=ratio(worker_cpu * 1000 / max(calls, 1), bare["cpu_ms_per_call"])),
        Row("peak memory of workers", peak, unit="MB"),
        Row("findings (merged)", float(len(report.findings)) if report else 0.0),
        *offline,
    ]
    return BenchResult(name="review", rows=rows, machine=machine,
                       params={"files": files, "latency_s": latency_s, "workers": workers},
                       notes=[f"generated repository of {files} Python files in packages of 50; each module imports "
                              "the next, one in ten has a shell or SQL injection; model agents (scanner, four "
                              "reviewers, sub-reviewers) answered by the mock server through litellm.",
                              "critical path: the longest chain of model calls from the root agent to any agent, "
                              "counted from the agents that ran, times the latency.",
                              "model-call floor: the run's model calls at the rate bare litellm.acompletion reaches "
                              f"on this machine against the same server, measured after the review with {concurrency} "
                              f"calls in flight over {workers} processes ({bare['calls_per_s']:.0f}/s, "
                              f"{bare['cpu_ms_per_call']:.1f} ms CPU per call): no swarm on this machine can make "
                              "its calls faster than that, whatever the critical path.",
                              f"a {WARMUP_FILES}-file review runs first on the same workers, unmeasured: the "
                              "baseline's processes import litellm before timing, so ours do too.",
                              "offline review: the deterministic review (no model) through an embedded Redis and "
                              f"{workers} local workers, submission to written report, against bandit, ruff and "
                              "radon run as commands over the same Python files and the JS/TS analyzers in "
                              "process; start-up (server and workers ready) apart, paid once per command."],
                       details={"status": final.status.value, "reason": final.reason,
                                "agents_by_spec": _by_spec(agents), "bare": bare,
                                "review_max_in_flight": in_flight, "critical_path_s": path, "floor_s": floor,
                                "worker_cpu_s": worker_cpu,
                                "offline": offline_details})


def cpu_s(pids: list[int]) -> float:
    """User and system CPU seconds the processes ``pids`` (and their children) have used."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for one in [proc, *proc.children(recursive=True)]:
                times = one.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def _review(client: SwarmClient, job: ReviewJob, pids: list[int]) -> tuple[RunRecord, float, float, float]:
    """Submit ``job`` and wait for its end: the run, its wall time, the workers' peak memory and CPU seconds."""
    cpu = cpu_s(pids)
    started = time.monotonic()
    record = submit_review(client, job)
    peak = rss_mb(pids)
    while not client.runs.get(record.id).status.terminal:
        peak = max(peak, rss_mb(pids))
        time.sleep(0.2)
    return record, time.monotonic() - started, peak, cpu_s(pids) - cpu


def _by_spec(agents: list[AgentState]) -> dict[str, int]:
    out: dict[str, int] = {}
    for agent in agents:
        out[agent.spec] = out.get(agent.spec, 0) + 1
    return out
