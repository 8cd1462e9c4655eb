"""The build swarm on real Celery worker processes: eight workers racing on one branch with scripted
model edits that overlap, the codemod on 200 files, and a worker killed with SIGKILL mid-task."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from coordination.tasks import TaskStatus
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.builder.codemod import sequential_reference, split_by_file
from swarm_tasks.builder.job import BuildJob
from swarm_tasks.builder.specs import CODEMOD_WORKER, WORKER
from swarm_tasks.builder.workflow import agents_of, submit_build
from swarm_tasks.celery import CeleryScheduler, app, use_settings
from swarm_tasks.runs import RunStatus
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.worker.cluster import LocalCluster
from tests.builder_swarm.helpers import COUNTING, NOTES_CHECK, SCRIPTED, checkout, git, make_remote, show, wait_run

pytestmark = pytest.mark.slow
QUEUES = ("plan", "work", "judge", "agents", "control")


@pytest.fixture
def client(swarm_settings: SwarmSettings) -> Iterator[SwarmClient]:
    handle = use_settings(swarm_settings)
    yield SwarmClient.create(swarm_settings, handle.client, CeleryScheduler(app))


@pytest.fixture
def cluster(swarm_settings: SwarmSettings, tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    started: list[LocalCluster] = []

    def make(workers: int, prefix: str, **overrides: object) -> LocalCluster:
        settings = swarm_settings.model_copy(update=overrides)
        # Two turns per process: no single process can take a whole build before the others start.
        started.append(LocalCluster(settings, workers=workers, queues=QUEUES, concurrency=2, name_prefix=prefix,
                                    log_dir=tmp_path / "logs").start(timeout_s=180))
        return started[-1]

    yield make
    for one in started:
        one.stop()


def no_markers(bare: Path) -> bool:
    found = subprocess.run(["git", "grep", "-nE", "^(<<<<<<<|>>>>>>>|=======$)", "main"], cwd=bare,
                           capture_output=True, text=True, check=False)
    return found.returncode == 1 and not found.stdout


def task_commits(bare: Path, run_id: str) -> list[str]:
    """The task trailer of every commit on the branch (a task landed twice would show twice)."""
    log = git(bare, "log", "main", "--format=%(trailers:key=Swarm-Task,valueonly)")
    return [line for line in log.splitlines() if line.startswith(f"{run_id}/")]


def scripted_build(client: SwarmClient, root: Path) -> tuple[str, Path, list[str]]:
    """Nineteen one-line additions: ten to one file (they overlap and conflict), a dependency, an area
    large enough for a sub-planner."""
    todo = [*(f"shared.txt | entry {i:02d}" for i in range(10)), "first: b.txt | beta",
            "b.txt | gamma | after first", *(f"c.txt | c {i}" for i in range(3)),
            *(f"area/x{i}.txt | x {i}" for i in range(4))]
    bare = make_remote(root, {"TODO.md": "\n".join(todo) + "\n", "shared.txt": "", "b.txt": "alpha\n", "c.txt": ""})
    job = BuildJob(repo=str(bare), goal="add every TODO line", check=NOTES_CHECK, builders=8, max_cycles=2,
                   models={r: f"{SCRIPTED}:{r}" for r in ("planner", "worker", "judge")})
    return submit_build(client, job).id, bare, todo


def codemod_build(client: SwarmClient, root: Path) -> tuple[str, Path, str]:
    """The counting codemod on a generated repository of 200 files, and the tree of the sequential run."""
    files = {f"pkg{i % 7}/mod_{i:03d}.py": f"applied: 0\nvalue = {i}\n" for i in range(200)}
    bare = make_remote(root, {**files, "README.md": "applied: 0\n"})
    reference = checkout(bare, root / "reference")
    expected = sequential_reference(reference, COUNTING, split_by_file(reference, ["*.py"]))
    job = BuildJob(repo=str(bare), goal="count every module once", codemod=COUNTING, files=("*.py",), builders=8,
                   max_cycles=1)
    return submit_build(client, job).id, bare, expected


@pytest.mark.timeout(600)  # its own waits allow 240 s per build; 55 s on a quiet machine, 116 s at load 9
def test_eight_worker_processes_land_overlapping_edits_and_a_200_file_codemod(client, cluster, tmp_path: Path) -> None:
    """Both builds at once on one fleet of eight processes (starting eight costs more than either build)."""
    cluster(8, "b")
    edits, edits_remote, todo = scripted_build(client, tmp_path / "edits")
    codemod, codemod_remote, expected = codemod_build(client, tmp_path / "codemod")

    record = wait_run(client, codemod, 240)
    assert record.status is RunStatus.COMPLETED, record.reason
    assert git(codemod_remote, "rev-parse", "main^{tree}") == expected  # byte for byte, every file applied once
    assert show(codemod_remote, "README.md") == "applied: 0"
    tasks = client.run(codemod).state.board.tasks()
    assert all(t.status is TaskStatus.DONE for t in tasks) and len(tasks) == 23  # 9 files each: 3 per builder
    assert sorted(task_commits(codemod_remote, codemod)) == sorted(f"{codemod}/{t.id}" for t in tasks)

    record = wait_run(client, edits, 240)
    bare = edits_remote
    assert record.status is RunStatus.COMPLETED, record.reason
    assert show(bare, "shared.txt").splitlines() == [f"entry {i:02d}" for i in range(10)]
    assert show(bare, "b.txt").splitlines() == ["alpha", "beta", "gamma"]
    assert show(bare, "c.txt").splitlines() == ["c 0", "c 1", "c 2"]
    assert [show(bare, f"area/x{i}.txt") for i in range(4)] == [f"x {i}" for i in range(4)]
    assert no_markers(bare)
    ctx = client.run(edits)
    tasks = ctx.state.board.tasks()
    assert len(tasks) == len(todo) and all(t.status is TaskStatus.DONE for t in tasks)
    for task in tasks:  # every task's own commit is in the branch's history: none was lost or replaced
        ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", task.result["sha"], "main"], cwd=bare,
                                  check=False)
        assert ancestor.returncode == 0
    assert sorted(task_commits(bare, edits)) == sorted(f"{edits}/{t.id}" for t in tasks)  # each exactly once
    assert sum(t.result["rebases"] for t in tasks) > 0 and record.result["hot_spots"][0][0] == "shared.txt"
    workers = [ctx.agents.get(a) for a in agents_of(ctx, WORKER)]
    assert len({w.last_node.split("@")[0] for w in workers}) >= 3  # the work spread over the processes


def test_a_worker_killed_mid_task_loses_its_lease_and_another_finishes(client, cluster, tmp_path: Path) -> None:
    files = {f"src/m{i:02d}.py": f"applied: 0\nvalue = {i}\n" for i in range(24)}
    bare = make_remote(tmp_path / "r", files)
    reference = checkout(bare, tmp_path / "reference")
    expected = sequential_reference(reference, COUNTING, split_by_file(reference, ["*.py"]))
    victim = cluster(1, "victim", agent_turn_lease_s=4.0)  # alone at first: it surely takes tasks
    slow = f"sleep 0.4; {COUNTING}"  # a task takes seconds: there is time to die holding one
    job = BuildJob(repo=str(bare), goal="count", codemod=slow, files=("*.py",), builders=3, batch_size=3,
                   max_cycles=1, task_lease_s=2.0)
    run = submit_build(client, job)
    ctx = client.run(run.id)
    held: list[tuple[str, str]] = []
    deadline = time.monotonic() + 90
    while not held and time.monotonic() < deadline:
        claimed = ctx.state.board.tasks([TaskStatus.CLAIMED])
        holders = ctx.agents.get_many([t.claimant or "-" for t in claimed])
        held = [(t.id, a.id) for t, a in zip(claimed, holders, strict=True)
                if a is not None and a.status is AgentStatus.RUNNING]
        time.sleep(0.05)
    assert held, "the worker never held a task"
    victim.kill(0)  # SIGKILL to its whole process group, mid-task
    cluster(2, "other", agent_turn_lease_s=4.0)
    record = wait_run(client, run.id, 180)
    assert record.status is RunStatus.COMPLETED, record.reason
    assert git(bare, "rev-parse", "main^{tree}") == expected  # nothing lost, nothing applied twice
    for task_id, agent_id in held:
        task = ctx.state.board.get(task_id)
        assert task.status is TaskStatus.DONE and task.attempts >= 1  # its lease expired: a failed attempt
        assert task.claimant != agent_id  # and another worker finished it
    assert sorted(task_commits(bare, run.id)) == sorted(f"{run.id}/{t.id}" for t in ctx.state.board.tasks())
    assert len(agents_of(ctx, CODEMOD_WORKER)) > len(ctx.state.board.tasks())  # the task was worked twice
