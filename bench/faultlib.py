"""Fault injection for the swarm: real worker processes, a real Redis, faults while a run is in flight.

A harness starts an embedded Redis with AOF (so it can be restarted without losing data) and three
Celery worker processes on every queue; given a RabbitMQ vhost, RabbitMQ is the broker and Redis keeps
coordination only (the broker outage is then a RabbitMQ restart). It runs either workflow:

* a model-mode review of the shipped example (scripted model, 0.3 s per reply, so a run lasts several
  seconds). An undisturbed run is recorded first; a run with faults must end exactly like it: same
  findings, no agent lost or failed, every reviewer run once (no duplicated finding), no lease held.
* a build: the counting codemod (it increments a counter in each file, so a change applied twice shows)
  on a fresh bare repository of 18 files, 3 builders. It must end with the tree of the command run on
  every file one after another, one commit per task (none lost, none duplicated), no lease held.

Used by tests/reliability/test_faults.py and ``python -m bench faults``.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import redis
from pydantic import SecretStr

from bench.rabbitmq import Vhost
from coordination.embedded import EmbeddedRedis
from coordination.tasks import TaskStatus
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.builder.codemod import sequential_reference, split_by_file
from swarm_tasks.builder.job import BuildJob
from swarm_tasks.builder.landing import TRAILER
from swarm_tasks.builder.workflow import submit_build
from swarm_tasks.celery import CeleryScheduler, app, use_settings
from swarm_tasks.review.job import ReviewJob
from swarm_tasks.review.workflow import all_agents, load_report, submit_review
from swarm_tasks.runs import RunStatus
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.sources import SourceSpec
from swarm_tasks.worker.cluster import LocalCluster

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vulnerable-shop"
SLOW_MODEL = "scripted/py:swarm_tasks.review.scripted:slow_reviewer"
QUEUES = ("agents", "scan", "review", "plan", "work", "judge", "control")
# Increments the counter on a file's first line: applied twice, the tree shows it.
COUNTING = ("awk 'NR == 1 { n = substr($0, 10) + 1; print \"applied: \" n; next } { print }' {path} > {path}.tmp "
            "&& mv {path}.tmp {path}")
BUILD_FILES = {f"src/m{i:02d}.py": f"applied: 0\nvalue = {i}\n" for i in range(18)}
IDENTITY = ("-c", "user.name=faults", "-c", "user.email=faults@localhost", "-c", "commit.gpgsign=false")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()


# Injects a fault into run ``run_id`` once ``ready()`` says work is in flight; appends what it did to
# ``injected``; stops early on ``stop``.
Injector = Callable[[str, Callable[[], bool], list[str], threading.Event], None]


class Workflow(StrEnum):
    """Which swarm a fault run drives."""

    REVIEW = "review"
    BUILD = "build"


class Fault(StrEnum):
    """What can go wrong."""

    NONE = "none"
    KILL_WORKERS = "kill -9 workers"
    REDIS_RESTART = "redis restart (AOF)"
    DROP_CONNECTIONS = "dropped connections"
    BROKER_OUTAGE = "broker outage (3 s)"
    SIGTERM_WORKERS = "SIGTERM workers"  # a warm stop, as systemd, `docker stop` or a rolling deploy sends it
    POISON_FILES = "poison files"  # the review's tree gains files that used to hang a review forever

    def applies_to(self, workflow: Workflow) -> bool:
        return self is not Fault.POISON_FILES or workflow is Workflow.REVIEW


# Files that used to hang a review (issue 17): 3,000 undefined names, a call nested 900 deep, 2,500 undocumented
# functions; beside them a directory nested 500 deep (a recursive walk failed the whole review on it).
POISON = {
    "poison/undefined.py": "".join(f"value_{i} = name_{i}\n" for i in range(3000)),
    "poison/nested.py": "x = " + "f(" * 900 + "1" + ")" * 900 + "\n",
    "poison/undocumented.py": '"""Module."""\n' + "\n".join(f"def fn_{i}(a):\n    return a + {i}\n"
                                                            for i in range(2500)),
}
DEEP_DIRS = 500


@dataclass
class Outcome:
    """How one run with faults ended, compared with the undisturbed run."""

    fault: Fault
    run_id: str
    status: str
    workflow: Workflow = Workflow.REVIEW
    injected: list[str] = field(default_factory=list)
    same_findings: bool = False  # review: the undisturbed run's findings; build: the sequential tree
    agents: int = 0
    lost: int = 0  # review: agents that did not end done (but as designed); build: board tasks not done
    budget_stops: int = 0  # review: reviewers of a poison file stopped by the findings budget, as designed
    expected_status: str = RunStatus.COMPLETED.value  # poison files: partial (a reviewer's findings were cut)
    duplicated: int = 0  # reviewers that ran more than once for one file and kind
    commits_lost: int = 0  # build tasks with no commit on the branch
    commits_duplicated: int = 0  # build tasks with more than one commit on the branch
    leases_left: int = 0  # turns or board tasks still held after the run
    turns_lost: int = 0  # turns a dead worker held, taken back and redone
    wall_s: float = 0.0
    scenario: str = ""  # what was done instead of ``fault``, when a custom injector ran

    @property
    def ok(self) -> bool:
        return (self.status == self.expected_status and self.same_findings and not self.lost
                and not self.duplicated and not self.commits_lost and not self.commits_duplicated
                and not self.leases_left)


class FaultHarness:
    """Redis, workers and a client; ``run(fault)`` does one review with that fault injected."""

    def __init__(self, tmp: Path, *, workers: int = 3, seed: int = 0, rabbit: Vhost | None = None) -> None:
        self.tmp = tmp
        self.rng = random.Random(seed)
        self.rabbit = rabbit
        self.redis = EmbeddedRedis(tmp / "redis", appendonly=True).start()
        self.settings = SwarmSettings(
            redis_url=SecretStr(self.redis.url), state_dir=tmp / "state", model_guard="local-only",
            broker_url=SecretStr(rabbit.url) if rabbit else None,
            agent_turn_lease_s=3.0, agent_step_grace_s=6.0, sweep_interval_s=0.3, lease_s=5.0)
        handle = use_settings(self.settings)
        self.client = SwarmClient.create(self.settings, handle.client, CeleryScheduler(app))
        self.cluster = LocalCluster(self.settings, workers=workers, queues=QUEUES, concurrency=6, name_prefix="f",
                                    log_dir=tmp / "logs").start(timeout_s=180)
        self.generation = 0
        self.reference: frozenset[tuple[str, int, str, str]] | None = None
        self.builds = 0
        self.build_reference = self._build_reference()

    def close(self) -> None:
        self.cluster.stop()
        self.redis.stop()

    # -- one run ---------------------------------------------------------------------------------
    def run(self, fault: Fault, *, timeout_s: float = 240.0, workflow: Workflow = Workflow.REVIEW,
            injector: Injector | None = None, scenario: str = "") -> Outcome:
        """One run with ``fault`` injected mid-run, or what ``injector`` does (``scenario`` names it)."""
        started = time.monotonic()
        bare: Path | None = None
        if workflow is Workflow.REVIEW:
            source = self.poison_source() if fault is Fault.POISON_FILES else self.review_source()
            job = ReviewJob(source=SourceSpec(location=source),
                            models={"scanner": SLOW_MODEL, "reviewer": SLOW_MODEL, "subreviewer": SLOW_MODEL})
            run_id = submit_review(self.client, job).id
            ready: Callable[[], bool] = lambda: self._agents_started(run_id) >= 25  # noqa: E731
        else:
            bare = self._new_remote()
            # A task takes a few seconds (two files, half a second each): faults land while tasks are held.
            build = BuildJob(repo=self.remote_url(bare), goal="count every module once",
                             codemod=f"sleep 0.5; {COUNTING}", files=("*.py",), builders=3, batch_size=2,
                             max_cycles=1, task_lease_s=4.0)
            run_id = submit_build(self.client, build).id
            ready = lambda: self._tasks_claimed(run_id) > 0  # noqa: E731
        injected: list[str] = []
        stop = threading.Event()
        inject = injector or (lambda _run, r, i, s: self._inject(fault, r, i, s))
        thread = threading.Thread(target=self._inject_safely, args=(inject, run_id, ready, injected, stop),
                                  daemon=True)
        thread.start()
        status = self._wait(run_id, timeout_s)
        stop.set()
        thread.join(60)
        wall = time.monotonic() - started
        if bare is not None:
            outcome = self._build_outcome(fault, run_id, status, injected, wall, bare)
        else:
            outcome = self._outcome(fault, run_id, status, injected, wall)
        outcome.scenario = scenario
        return outcome

    def review_source(self) -> str:
        """Where the review's code comes from (the shipped example, on this machine's disk)."""
        return str(EXAMPLE)

    def poison_source(self) -> str:
        """The example with the poison files and a directory nested 500 deep beside it (made once)."""
        tree = self.tmp / "poison-tree"
        if not tree.exists():
            shutil.copytree(EXAMPLE, tree)
            for rel, text in POISON.items():
                (tree / rel).parent.mkdir(parents=True, exist_ok=True)
                (tree / rel).write_text(text)
            deep = tree / "deep" / "/".join(["d"] * DEEP_DIRS)
            deep.mkdir(parents=True)
            (deep / "bottom.py").write_text("import os\nos.system(input())\n")
        return str(tree)

    def remote_url(self, bare: Path) -> str:
        """The URL workers use for a build's remote (its path: they share this disk)."""
        return str(bare)

    def _new_remote(self) -> Path:
        self.builds += 1
        root = self.tmp / "builds" / str(self.builds)
        seed, bare = root / "seed", root / "remote.git"
        seed.mkdir(parents=True)
        _git(root, "init", "--quiet", "--bare", "-b", "main", str(bare))
        _git(seed, "init", "--quiet", "-b", "main")
        for rel, text in BUILD_FILES.items():
            (seed / rel).parent.mkdir(parents=True, exist_ok=True)
            (seed / rel).write_text(text)
        _git(seed, "add", "-A")
        _git(seed, "commit", "--quiet", "-m", "start")
        _git(seed, "push", "--quiet", str(bare), "main")
        return bare

    def _build_reference(self) -> str:
        """The tree the build must end with: the command run on every file one after another."""
        clone = self.tmp / "builds" / "reference"
        _git(self.tmp, "clone", "--quiet", str(self._new_remote()), str(clone))
        return sequential_reference(clone, COUNTING, split_by_file(clone, ["*.py"]))

    def _wait(self, run_id: str, timeout_s: float) -> RunStatus:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                status = self.client.runs.get(run_id).status
                if status.terminal:
                    return status
            except redis.RedisError:
                pass  # the fault is taking Redis away for a moment
            time.sleep(0.25)
        return self.client.runs.get(run_id).status

    def _agents_started(self, run_id: str) -> int:
        try:
            return sum(self.client.run(run_id).agents.counts().values())
        except redis.RedisError:
            return 0

    def _tasks_claimed(self, run_id: str) -> int:
        try:
            return self.client.run(run_id).state.board.counts()[TaskStatus.CLAIMED]
        except redis.RedisError:
            return 0

    def _inject_safely(self, inject: Injector, run_id: str, ready: Callable[[], bool], injected: list[str],
                       stop: threading.Event) -> None:
        try:
            inject(run_id, ready, injected, stop)
        except Exception as exc:  # a harness failure must show in the table, not vanish with the thread
            injected.append(f"INJECTION FAILED: {type(exc).__name__}: {exc}")

    def _inject(self, fault: Fault, ready: Callable[[], bool], injected: list[str], stop: threading.Event) -> None:
        if fault is Fault.NONE:
            return
        while not ready() and not stop.is_set():  # mid-run: work in flight, more to come
            time.sleep(0.05)
        if fault is Fault.KILL_WORKERS:
            for _ in range(3):
                if stop.wait(self.rng.uniform(0.5, 1.5)):
                    break
                index = self.rng.randrange(len(self.cluster.workers))
                self.cluster.kill(index)
                self.generation += 1
                self.cluster.prefix = f"f{self.generation}-"
                self.cluster.spawn(index)  # a fresh worker takes the dead one's place
                injected.append(f"killed worker {index}")
        elif fault is Fault.REDIS_RESTART:
            self.redis.restart()
            injected.append("restarted redis")
        elif fault is Fault.DROP_CONNECTIONS:
            admin = redis.Redis.from_url(self.redis.url)
            for _ in range(3):
                killed = admin.client_kill_filter(_type="normal", skipme=True)
                injected.append(f"dropped {killed} connections")
                if stop.wait(1.0):
                    break
            admin.close()
        elif fault is Fault.BROKER_OUTAGE and self.rabbit is not None:
            injected.append(self.rabbit.restart_broker(down_s=3.0))
        elif fault is Fault.BROKER_OUTAGE:
            self.redis.restart(down_s=3.0)
            injected.append("redis down for 3 s")
        elif fault is Fault.SIGTERM_WORKERS:
            for _ in range(2):
                if stop.wait(self.rng.uniform(0.5, 1.5)):
                    break
                index = self.rng.randrange(len(self.cluster.workers))
                injected.append(f"SIGTERM to worker {index}: {self._warm_stop(index)}")
                self.generation += 1
                self.cluster.prefix = f"f{self.generation}-"
                self.cluster.spawn(index)  # a fresh worker takes its place, as a restarted service would
        elif fault is Fault.POISON_FILES:
            injected.append(f"{len(POISON)} poison files, {DEEP_DIRS} nested directories")

    def _warm_stop(self, index: int) -> str:
        """SIGTERM a worker: it finishes the turns it holds and gives the rest back; SIGKILL after a minute."""
        worker = self.cluster.workers[index]
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGTERM)
        try:
            worker.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.cluster.kill(index)
            return "did not stop within 60 s: killed"
        return f"stopped in {time.monotonic() - started:.1f} s"

    # -- judging ---------------------------------------------------------------------------------
    def _outcome(self, fault: Fault, run_id: str, status: RunStatus, injected: list[str], wall: float) -> Outcome:
        ctx = self.client.run(run_id)
        agents = all_agents(ctx)
        report = load_report(self.client, run_id) if status in (RunStatus.COMPLETED, RunStatus.PARTIAL) else None
        # every place of every finding: an aggregated finding's first place moves when files are added
        findings = frozenset((p.file, p.start_line, f.rule, f.severity.value) for f in report.findings
                             for p in f.places()) if report else frozenset()
        if fault is Fault.NONE and report is not None and self.reference is None:
            self.reference = findings  # the first undisturbed review: every later one is held to it
        if fault is Fault.POISON_FILES and report is not None:  # the example's findings, and the poison reviewed
            poisoned = {f[0] for f in findings} & set(POISON)
            findings = frozenset(f for f in findings if f[0] not in POISON and not f[0].startswith("deep/"))
            if poisoned != set(POISON):
                findings = frozenset()  # a poison file went unreviewed: not the same result
        specialists = [a for a in agents if a.spec.startswith("review.") and not a.spec.startswith("review.sub.")
                       and a.spec not in ("review.scan", "review.inventory")]
        reviewers = Counter((a.spec, a.labels.get("file")) for a in specialists)
        running = sum(1 for a in agents if a.status is AgentStatus.RUNNING)
        # A reviewer of a poison file whose findings were cut ends stopped, with the reason, and the review
        # partial (issue 17: "end their agents with a reason and the review completes (partial)").
        budget = [a for a in agents if fault is Fault.POISON_FILES and a.status is AgentStatus.STOPPED
                  and a.labels.get("file") in POISON and (a.reason or "").startswith("findings budget:")]
        return Outcome(
            fault=fault, run_id=run_id, status=status.value, injected=injected,
            same_findings=report is not None and (self.reference is None or findings == self.reference),
            budget_stops=len(budget),
            expected_status=RunStatus.PARTIAL.value if budget else RunStatus.COMPLETED.value,
            agents=len(agents), lost=sum(1 for a in agents if a.status is not AgentStatus.DONE) - len(budget),
            duplicated=sum(n - 1 for n in reviewers.values() if n > 1),
            leases_left=running + int(ctx.state.redis.zcard(ctx.state.keys.leases())),
            turns_lost=sum(a.turns_lost for a in agents), wall_s=wall)


    def _build_outcome(self, fault: Fault, run_id: str, status: RunStatus, injected: list[str], wall: float,
                       bare: Path) -> Outcome:
        ctx = self.client.run(run_id)
        tasks = ctx.state.board.tasks()
        log = _git(bare, "log", "main", f"--format=%(trailers:key={TRAILER},valueonly)")
        commits = Counter(line for line in log.splitlines() if line.startswith(f"{run_id}/"))
        agents = [a for a in ctx.agents.get_many(sorted({i for st in AgentStatus for i in ctx.agents.ids(st)}))
                  if a is not None]
        running = sum(1 for a in agents if a.status is AgentStatus.RUNNING)
        return Outcome(
            fault=fault, run_id=run_id, status=status.value, workflow=Workflow.BUILD, injected=injected,
            same_findings=_git(bare, "rev-parse", "main^{tree}") == self.build_reference, agents=len(agents),
            lost=sum(1 for t in tasks if t.status is not TaskStatus.DONE),
            commits_lost=sum(1 for t in tasks if commits[f"{run_id}/{t.id}"] == 0),
            commits_duplicated=sum(n - 1 for n in commits.values() if n > 1),
            leases_left=running + int(ctx.state.redis.zcard(ctx.state.keys.leases())),
            turns_lost=sum(a.turns_lost for a in agents), wall_s=wall)


def table(outcomes: list[Outcome]) -> str:
    """The faults injected and what came of them, as Markdown."""
    lines = ["| workflow | fault | injected | status | same result | agents | lost | duplicated findings | "
             "commits lost | commits duplicated | leases left | turns redone | wall s |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for o in outcomes:
        lines.append(f"| {o.workflow.value} | {o.scenario or o.fault.value} | {'; '.join(o.injected) or '-'} | "
                     f"{o.status} | "
                     f"{'yes' if o.same_findings else 'NO'} | {o.agents} | {o.lost} | {o.duplicated} | "
                     f"{o.commits_lost} | {o.commits_duplicated} | {o.leases_left} | {o.turns_lost} | "
                     f"{o.wall_s:.1f} |")
    return "\n".join(lines)
