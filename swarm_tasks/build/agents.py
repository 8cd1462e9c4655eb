"""What the build's programs do and what its agents' hooks do.

Programs (no model, named as such): the codemod planner (split the repository by file into tasks),
the codemod worker (apply the command to one task's files, commit, land), and the judge (check the
branch tip, record the cycle, decide or hand the signals to a model judge). Hooks: ``prepare`` makes
a model agent's clone present before its turns; ``after_worker`` settles a worker's task whatever way
it ended, gives its slot back and starts its successors.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections import Counter
from pathlib import Path

from pydantic import JsonValue

from coordination.errors import AlreadyExists, LeaseLost
from coordination.run import RunState
from coordination.tasks import TaskStatus
from swarm_tasks.agents.children import ChildRequest, child_id
from swarm_tasks.agents.program import Ending, FollowUp, ProgramContext, ProgramResult
from swarm_tasks.agents.spec import AgentKind
from swarm_tasks.agents.state import AgentStatus, AgentStore
from swarm_tasks.build.check import run_check
from swarm_tasks.build.codemod import apply_codemod, codemod_resolver, split_by_file
from swarm_tasks.build.cycles import CheckSummary, CycleBook, Decision, Verdict, cycle_tag
from swarm_tasks.build.gitops import Clone, borrowed_objects, commit_all
from swarm_tasks.build.job import TASK_ROLE, BuildJob, BuildMode, run_job
from swarm_tasks.build.landing import (
    commit_message,
    landed_commit,
    once_only,
    open_clone,
    record_hotspots,
    worker_clone,
)
from swarm_tasks.build.rebase import PushOutcome, push_with_rebase
from swarm_tasks.build.specs import JUDGE, JUDGE_MODEL, judge_task
from swarm_tasks.build.staffing import LeaseKeeper, Slots, held_lease, staff, task_files
from swarm_tasks.errors import GitError, WorkspaceError
from swarm_tasks.runs import RunStore

log = logging.getLogger("swarm_tasks.build")
MAX_CHANGED_KEPT = 20_000  # files the judge lists as still changed by the codemod (more: "all")
TASKS_PER_BUILDER = 3


def _context(pctx: ProgramContext) -> tuple[BuildJob, RunState, int]:
    return _job(pctx), pctx.state, CycleBook(pctx.state).current().cycle


def _job(pctx: ProgramContext) -> BuildJob:
    return run_job(pctx.run.spec, pctx.state, pctx.settings)


def _runs(pctx: ProgramContext) -> RunStore:
    return RunStore(pctx.state.redis, pctx.state.records, pctx.settings)


def judge_id(cycle: int) -> str:
    return child_id("run", "global", f"judge:c{cycle}")


def judge_model_id(cycle: int) -> str:
    return child_id("run", "global", f"judge-model:c{cycle}")


def outcome_record(outcome: PushOutcome) -> dict[str, JsonValue]:
    return {"landed": outcome.landed, "status": outcome.status.value, "sha": outcome.sha,
            "attempts": outcome.attempts, "rebases": outcome.rebases, "first_try": outcome.first_try,
            "conflicted_files": list(outcome.conflicted_files), "hot_spots": outcome.hot_spots,
            "reason": outcome.reason}


# -- prepare hooks: a model agent's clone on whichever machine runs its turn ---------------------------

# Each returns what the turn's shell may read outside the clone: the objects it borrows from a local
# remote, named from the job (trusted), not from the clone's alternates file (the agent can edit it).

def prepare_planner(pctx: ProgramContext) -> list[Path]:
    """A clone at the tip for the first turn, refreshed whenever the planner is woken to plan again."""
    job = _job(pctx)
    if not (pctx.workspace / ".git").is_dir() or pctx.agent.waiting_call or pctx.agent.turn == 0:
        worker_clone(job.remote(), pctx.workspace, pctx.agent.id)
    return borrowed_objects(job.remote())


def prepare_judge(pctx: ProgramContext) -> list[Path]:
    job = _job(pctx)
    if not (pctx.workspace / ".git").is_dir():
        worker_clone(job.remote(), pctx.workspace, pctx.agent.id)
    return borrowed_objects(job.remote())


def prepare_worker(pctx: ProgramContext) -> list[Path]:
    """The worker's own clone (made once: its edits live there between turns) and a heartbeat on its
    task's lease, so a worker that keeps taking turns keeps its task."""
    job = _job(pctx)
    if not (pctx.workspace / ".git").is_dir():
        if pctx.agent.turn > 0:  # its edits live in a clone on another machine: a fresh one would lose them
            raise WorkspaceError(f"the clone of worker {pctx.agent.id} is not on this machine ({pctx.workspace}); "
                                 "its task goes back to the board for a fresh worker")
        worker_clone(job.remote(), pctx.workspace, pctx.agent.id)
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


# -- codemod mode: programs ----------------------------------------------------------------------------

def _codemod_files(pctx: ProgramContext, clone: Clone, job: BuildJob, cycle: int) -> list[str]:
    files = split_by_file(clone.path, list(job.files) or ["*"])
    if cycle == 1:
        return files
    previous = AgentStore(pctx.state).get_many([judge_id(cycle - 1)])[0]
    result = previous.result if previous is not None and isinstance(previous.result, dict) else {}
    changed = result.get("changed_files")
    if isinstance(changed, list) and len(changed) < MAX_CHANGED_KEPT:  # only what still changes
        wanted = {str(f) for f in changed}
        return [f for f in files if f in wanted]
    return files


def codemod_planner(pctx: ProgramContext) -> ProgramResult:
    """Split the repository by file into tasks (batched: about three per builder) and start workers."""
    job, state, cycle = _context(pctx)
    assert job.codemod is not None
    clone = worker_clone(job.remote(), pctx.workspace, pctx.agent.id)
    try:
        files = _codemod_files(pctx, clone, job, cycle)
    finally:
        shutil.rmtree(clone.path, ignore_errors=True)
    size = job.batch_size or max(1, -(-len(files) // (job.builders * TASKS_PER_BUILDER)))
    batches = [files[i:i + size] for i in range(0, len(files), size)]
    for index, batch in enumerate(batches):
        more = f" and {len(batch) - 1} more" if len(batch) > 1 else ""
        with contextlib.suppress(AlreadyExists):  # a re-run of this planner
            state.board.create(TASK_ROLE, f"codemod on {batch[0]}{more}", f"Run `{job.codemod}` on: "
                               + ", ".join(batch), parent=pctx.agent.id, max_attempts=job.task_attempts,
                               labels={"cycle": str(cycle), "files": json.dumps(batch)},
                               task_id=f"c{cycle}-codemod-{index:05d}")
    children = staff(state, _runs(pctx), job, starter=pctx.agent.id)
    return ProgramResult(result={"files": len(files), "tasks": len(batches), "batch_size": size},
                         children=children)


def codemod_worker(pctx: ProgramContext) -> ProgramResult:
    """Apply the codemod to one task's files in a fresh clone, commit, and land the commit exactly once."""
    job, state, _cycle = _context(pctx)
    assert job.codemod is not None
    task_id = str((pctx.agent.input or {}).get("task", "")) if isinstance(pctx.agent.input, dict) else ""
    lease = held_lease(state, task_id, pctx.agent.id)
    if lease is None:
        return ProgramResult(result={"task": task_id, "landed": False},
                             reason="its claim on the task was gone before it started (another worker has it)")
    base = CycleBook(state).current().base
    run_id = pctx.run.id
    with LeaseKeeper(state, lease, job.task_lease_s) as keeper:
        try:
            clone = worker_clone(job.remote(), pctx.workspace, pctx.agent.id)
            earlier = landed_commit(clone, base, "HEAD", run_id, task_id)
            if earlier:  # a previous holder landed it and died before saying so
                keeper.complete({"landed": True, "sha": earlier, "by": "an earlier attempt"})
                return ProgramResult(result={"task": task_id, "landed": True, "sha": earlier})
            changed = apply_codemod(clone, job.codemod, task_files(lease.task), job.codemod_timeout_s)
            if commit_all(clone, commit_message(lease.task.title, run_id, task_id), paths=changed) is None:
                keeper.complete({"landed": True, "changed": [], "note": "the command changed nothing"})
                return ProgramResult(result={"task": task_id, "landed": True, "changed": 0})
            if not keeper.beat():  # fenced: a worker that lost its task never pushes
                return ProgramResult(status=AgentStatus.FAILED, reason="lost its claim on the task before pushing",
                                     result={"task": task_id, "landed": False})
            resolve = once_only(codemod_resolver(job.codemod, job.codemod_timeout_s), run_id, task_id, base)
            outcome = push_with_rebase(clone, resolve=resolve, overlaps_conflict=True,
                                       max_attempts=job.push_attempts)
        except (GitError, WorkspaceError) as exc:
            keeper.fail(str(exc))
            return ProgramResult(status=AgentStatus.FAILED, reason=str(exc)[:2000], result={"task": task_id})
        record_hotspots(state, outcome)
        record = {"task": task_id, "changed": len(changed), **outcome_record(outcome)}
        if outcome.landed:
            keeper.complete(record)
            return ProgramResult(result=record)
        other = landed_commit(clone, base, clone.upstream_ref, run_id, task_id)
        if other:  # another holder of this task landed it while we raced: ours must not land too
            keeper.complete({**record, "landed": True, "sha": other, "by": "another holder of the task"})
            return ProgramResult(result={**record, "landed": True, "sha": other})
        keeper.fail(outcome.reason)
        return ProgramResult(status=AgentStatus.FAILED, reason=outcome.reason[:2000], result=record)


# -- the judge --------------------------------------------------------------------------------------------

def _push_tag(clone: Clone, tip: str, tag: str) -> str:
    """Record the cycle's tip on the remote; the ref, or why it could not be pushed."""
    pushed = clone.git("push", "--porcelain", "origin", f"{tip}:{tag}", network=True, check=False)
    if pushed.ok:
        return tag
    return clone.spec.redact(f"(not recorded: {pushed.stderr.decode('utf-8', 'replace').strip()[-300:]})")


def decide(job: BuildJob, check: CheckSummary | None, changed: list[str], failed: list[str]) -> tuple[Decision, str]:
    """The deterministic judge: objective signals only."""
    if job.mode is BuildMode.CODEMOD:
        if changed:
            return Decision.CONTINUE, f"the codemod still changes {len(changed)} file(s) on the tip"
        if check is not None and not check.passed:
            return Decision.STOP, f"the codemod changes nothing more, but the check {check.describe()}"
        return Decision.STOP, "the codemod changes nothing more on the tip"
    if check is not None:
        if check.passed:
            return Decision.STOP, "the check passes on the tip"
        return Decision.CONTINUE, f"the check {check.describe()} on the tip"
    if failed:
        return Decision.CONTINUE, f"{len(failed)} task(s) failed and no check says the goal is met"
    return Decision.STOP, "every task landed (no check configured)"


def judge_program(pctx: ProgramContext) -> ProgramResult:
    """Gather the cycle's signals on the branch tip, record the cycle, and decide (or ask a model judge)."""
    job, state, cycle = _context(pctx)
    clone = worker_clone(job.remote(), pctx.workspace, pctx.agent.id)
    try:
        tip = clone.head()
        tag = _push_tag(clone, tip, cycle_tag(pctx.run.id, cycle))
        check = CheckSummary.of(run_check(job.check, clone.path, job.check_timeout_s)) if job.check else None
        changed: list[str] = []
        if job.codemod:
            files = split_by_file(clone.path, list(job.files) or ["*"])
            changed = apply_codemod(clone, job.codemod, files, job.codemod_timeout_s)
    finally:
        shutil.rmtree(clone.path, ignore_errors=True)
    tasks = [t for t in state.board.tasks() if t.labels.get("cycle") == str(cycle)]
    failed = [f"{t.title}: {t.error or t.status.value}"[:300] for t in tasks
              if t.status in (TaskStatus.FAILED, TaskStatus.CANCELLED)]
    decision, reason = decide(job, check, changed, failed)
    verdict = Verdict(cycle=cycle, tip=tip, tag=tag, check=check, decision=decision, reason=reason,
                      judged_by="deterministic judge (program)",
                      tasks=dict(Counter(t.status.value for t in tasks)), failed=failed[:200],
                      changed_files=changed[:200], changed_count=len(changed))
    children: list[ChildRequest] = []
    if pctx.run.models.get("judge") and job.mode is BuildMode.MODEL:
        notes = [f"[{n.kind}] {n.author}: {n.text}" for n in reversed(state.notes.latest("run", limit=20))]
        children.append(ChildRequest(JUDGE_MODEL, task=judge_task(job, verdict, notes), key=f"judge-model:c{cycle}",
                                     global_key=True, detached=True))
    result = verdict.model_dump(mode="json")
    result["changed_files"] = changed[:MAX_CHANGED_KEPT]
    return ProgramResult(result=result, children=children)


def verdict_of(state: RunState, cycle: int) -> Verdict | None:
    """The judge's verdict on ``cycle``: the program's reading, with a model judge's decision if one ran."""
    program, model = AgentStore(state).get_many([judge_id(cycle), judge_model_id(cycle)])
    if program is None or program.status is not AgentStatus.DONE or not isinstance(program.result, dict):
        return None
    verdict = Verdict.model_validate({**program.result, "changed_files": program.result.get("changed_files", [])[:200]})
    if model is None:
        return verdict
    body = model.result.get("result") if isinstance(model.result, dict) else None
    if model.status is AgentStatus.DONE and isinstance(body, dict) and body.get("decision") in ("stop", "continue"):
        return verdict.model_copy(update={"decision": Decision(str(body["decision"])),
                                          "reason": str(body.get("reason", ""))[:2000],
                                          "judged_by": f"model judge ({model.model or 'model'})"})
    return verdict.model_copy(update={"reason": f"{verdict.reason} (the model judge {model.status.value}: "
                                                f"{model.reason or 'no decision'}; deterministic decision used)"})


__all__ = ["JUDGE", "after_worker", "codemod_planner", "codemod_worker", "judge_program", "prepare_judge",
           "prepare_planner", "prepare_worker", "verdict_of"]
