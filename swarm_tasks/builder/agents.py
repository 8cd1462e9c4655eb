"""The hooks of the build's agents: ``prepare`` makes a model agent's clone present before its turns;
``after_worker`` settles a worker's task whatever way it ended, gives its slot back and starts its
successors. (The programs are in :mod:`swarm_tasks.builder.programs` and :mod:`swarm_tasks.builder.judge`.)
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

from coordination.errors import LeaseLost
from coordination.run import RunState
from swarm_tasks.agents.program import Ending, FollowUp, ProgramContext
from swarm_tasks.agents.spec import AgentKind
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.builder.cycles import CycleBook
from swarm_tasks.builder.gitops import borrowed_objects
from swarm_tasks.builder.job import BuildJob, run_job
from swarm_tasks.builder.landing import open_clone, worker_clone
from swarm_tasks.builder.staffing import Slots, held_lease, staff
from swarm_tasks.errors import GitError, WorkspaceError
from swarm_tasks.runs import RunStore

log = logging.getLogger("swarm_tasks.builder")


def _context(pctx: ProgramContext) -> tuple[BuildJob, RunState, int]:
    return _job(pctx), pctx.state, CycleBook(pctx.state).current().cycle


def _job(pctx: ProgramContext) -> BuildJob:
    return run_job(pctx.run.spec, pctx.state, pctx.settings)


def _runs(pctx: ProgramContext) -> RunStore:
    return RunStore(pctx.state.redis, pctx.state.records, pctx.settings)


# -- prepare hooks: a model agent's clone on whichever machine runs its turn ---------------------------

# Each returns what the turn's shell may read outside the clone: the objects it borrows from a local
# remote, named from the job (trusted), not from the clone's alternates file (the agent can edit it).

def prepare_planner(pctx: ProgramContext) -> list[Path]:
    """A clone at the tip for the first turn, refreshed whenever the planner is woken to plan again."""
    job = _job(pctx)
    if not (pctx.workspace / ".git").is_dir() or pctx.agent.waiting_call or pctx.agent.turn == 0:
        worker_clone(job.remote(), pctx.workspace, pctx.agent.id, job.union_merge)
    return borrowed_objects(job.remote())


def prepare_judge(pctx: ProgramContext) -> list[Path]:
    job = _job(pctx)
    if not (pctx.workspace / ".git").is_dir():
        worker_clone(job.remote(), pctx.workspace, pctx.agent.id, job.union_merge)
    return borrowed_objects(job.remote())


def prepare_worker(pctx: ProgramContext) -> list[Path]:
    """The worker's own clone (made once: its edits live there between turns) and a heartbeat on its
    task's lease, so a worker that keeps taking turns keeps its task."""
    job = _job(pctx)
    if not (pctx.workspace / ".git").is_dir():
        if pctx.agent.turn > 0:  # its edits live in a clone on another machine: a fresh one would lose them
            raise WorkspaceError(f"the clone of worker {pctx.agent.id} is not on this machine ({pctx.workspace}); "
                                 "its task goes back to the board for a fresh worker")
        worker_clone(job.remote(), pctx.workspace, pctx.agent.id, job.union_merge)
    task_id = str((pctx.agent.input or {}).get("task", "")) if isinstance(pctx.agent.input, dict) else ""
    lease = held_lease(pctx.state, task_id, pctx.agent.id) if task_id else None
    if lease is not None:
        with contextlib.suppress(LeaseLost):
            pctx.state.board.heartbeat(lease, lease_s=job.task_lease_s)
    return borrowed_objects(job.remote())


# -- the worker's ending: settle its task, free its slot, start successors ----------------------------

def _unlanded_work(pctx: ProgramContext, job: BuildJob) -> str | None:
    """Why the worker's clone still holds work that did not land, None if it holds none."""
    clone = open_clone(job.remote(), pctx.workspace)
    if clone is None:
        return "its clone is not on this machine"
    with contextlib.suppress(GitError):
        if clone.operation_in_progress():
            return "it left a rebase unfinished"
        ahead = clone.out("rev-list", "--count", f"{clone.upstream_ref}..HEAD")
        if ahead != "0" or clone.dirty_files():
            return "it finished with changes that were never pushed"
        return None
    return "its clone could not be read"


def after_worker(pctx: ProgramContext, ending: Ending) -> FollowUp:
    """However the worker ended: its task is settled (fenced by the lease), its slot freed, and the
    next workers started while tasks are pending."""
    job, state, cycle = _context(pctx)
    data = pctx.agent.input if isinstance(pctx.agent.input, dict) else {}
    task_id = str(data.get("task", ""))
    lease = held_lease(state, task_id, pctx.agent.id) if task_id else None
    if lease is not None:
        with contextlib.suppress(LeaseLost):
            if ending.status is AgentStatus.DONE and pctx.spec.kind is AgentKind.LLM:
                unlanded = _unlanded_work(pctx, job)
                if unlanded is None:
                    state.board.complete(lease, {"landed": False, "note": "finished without a change to land"})
                else:
                    state.board.fail(lease, f"worker {pctx.agent.id} {unlanded}", retry=True)
            else:
                why = ending.reason or f"worker ended {ending.status.value}"
                state.board.fail(lease, f"worker {pctx.agent.id}: {why}"[:2000], retry=True)
    Slots(state, int(data.get("cycle", cycle)), job.builders).give_back(pctx.agent.id)
    shutil.rmtree(pctx.workspace, ignore_errors=True)
    return FollowUp(children=staff(state, _runs(pctx), job, starter=pctx.agent.id))


__all__ = ["after_worker", "prepare_judge", "prepare_planner", "prepare_worker"]
