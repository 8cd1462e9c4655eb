"""The programs of codemod mode (no model): the planner that splits the run's files into tasks, and
the worker that applies the command to one task's files and lands the result.

The worker lands everything the command changed (the files it was given and any other), leaves out
only the files the command failed on (each reported with its reason; the task still lands the rest),
passes the gate check before its first push (see :mod:`swarm_tasks.builder.gate`), and on a rebase
that meets upstream changes to its files redoes its task on the new tip.
"""

from __future__ import annotations

import contextlib
import json
import shutil

from pydantic import JsonValue

from coordination.errors import AlreadyExists
from coordination.run import RunState
from swarm_tasks.agents.program import ProgramContext, ProgramResult
from swarm_tasks.agents.state import AgentStatus, AgentStore
from swarm_tasks.builder.codemod import apply_codemod, codemod_resolver
from swarm_tasks.builder.cycles import CycleBook
from swarm_tasks.builder.gate import Gate
from swarm_tasks.builder.gitops import Clone, commit_all
from swarm_tasks.builder.job import TASK_ROLE, BuildJob, run_job
from swarm_tasks.builder.judge import MAX_CHANGED_KEPT, judge_id
from swarm_tasks.builder.landing import (
    commit_message,
    landed_commit,
    landing_turns,
    once_only,
    outcome_record,
    record_hotspots,
    worker_clone,
)
from swarm_tasks.builder.rebase import PushOutcome, push_with_rebase
from swarm_tasks.builder.staffing import LeaseKeeper, held_lease, staff, task_files
from swarm_tasks.builder.targets import Targets, choose_targets, load_targets, save_targets
from swarm_tasks.errors import GitError, WorkspaceError
from swarm_tasks.runs import RunStore

TASKS_PER_BUILDER = 3


def _context(pctx: ProgramContext) -> tuple[BuildJob, RunState, int]:
    return run_job(pctx.run.spec, pctx.state, pctx.settings), pctx.state, CycleBook(pctx.state).current().cycle


def _runs(pctx: ProgramContext) -> RunStore:
    return RunStore(pctx.state.redis, pctx.state.records, pctx.settings)


def _cycle_files(pctx: ProgramContext, clone: Clone, targets: Targets, cycle: int) -> list[str]:
    files = targets.select(clone.path)
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
    """Choose the run's files (first cycle), split them into tasks (about three per builder) and start
    workers. A run whose files are none ends here, saying why."""
    job, state, cycle = _context(pctx)
    clone = worker_clone(job.remote(), pctx.workspace, pctx.agent.id, job.union_merge)
    try:
        targets = load_targets(state)
        if targets is None:
            targets = save_targets(state, choose_targets(clone.path, job.codemod_spec(pctx.settings), job.files))
        files = _cycle_files(pctx, clone, targets, cycle)
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
    result: dict[str, JsonValue] = {"files": len(files), "tasks": len(batches), "batch_size": size,
                                    "targets": targets.how, "skipped": targets.describe_skipped()}
    if not files and cycle == 1:
        skipped = f"; left out: {targets.describe_skipped()}" if targets.skipped else ""
        return ProgramResult(status=AgentStatus.FAILED, result=result,
                             reason=f"no file to run the codemod on ({targets.how}){skipped}")
    return ProgramResult(result=result, children=staff(state, _runs(pctx), job, starter=pctx.agent.id))


def _land(pctx: ProgramContext, job: BuildJob, clone: Clone, task_id: str, base: str,
          files: list[str], failures: dict[str, str]) -> PushOutcome:
    """Gate the commit, then push it, redoing the task on the new tip when a rebase meets its files."""
    state, run_id = pctx.state, pctx.run.id
    codemod = job.codemod_spec(pctx.settings)
    gate = Gate(state, clone, job.check, job.check_changed, job.check_timeout_s, pctx.settings)
    resolve = once_only(codemod_resolver(codemod, [f for f in files if f not in failures], failures), run_id,
                        task_id, base)
    # With a check: onto the freshest tip first, so the check runs on what will most likely land.
    return push_with_rebase(clone, resolve=resolve, overlaps_conflict=True, max_attempts=job.push_attempts,
                            check=gate if gate.configured else None, recheck=gate.recheck,
                            check_first=gate.configured, refresh_first=gate.configured,
                            turns=landing_turns(state, clone))


def codemod_worker(pctx: ProgramContext) -> ProgramResult:
    """Apply the codemod to one task's files in a fresh clone, commit, and land the commit exactly once."""
    job, state, _cycle = _context(pctx)
    task_id = str((pctx.agent.input or {}).get("task", "")) if isinstance(pctx.agent.input, dict) else ""
    lease = held_lease(state, task_id, pctx.agent.id)
    if lease is None:
        return ProgramResult(result={"task": task_id, "landed": False},
                             reason="its claim on the task was gone before it started (another worker has it)")
    base = CycleBook(state).current().base
    run_id = pctx.run.id
    files = task_files(lease.task)
    with LeaseKeeper(state, lease, job.task_lease_s) as keeper:
        try:
            clone = worker_clone(job.remote(), pctx.workspace, pctx.agent.id, job.union_merge)
            earlier = landed_commit(clone, base, "HEAD", run_id, task_id)
            if earlier:  # a previous holder landed it and died before saying so
                keeper.complete({"landed": True, "sha": earlier, "commit": earlier, "by": "an earlier attempt"})
                return ProgramResult(result={"task": task_id, "landed": True, "sha": earlier})
            applied = apply_codemod(clone, job.codemod_spec(pctx.settings), files)
            failures = applied.failures
            if failures and len(failures) == len(files):
                raise WorkspaceError(f"the command failed on every file of the task: {applied.describe_failures()}")
            if commit_all(clone, commit_message(lease.task.title, run_id, task_id), paths=applied.changed) is None:
                record: dict[str, JsonValue] = {"task": task_id, "landed": True, "changed": 0, "commit": None,
                                                "failed_files": dict(failures), "note": "the command changed nothing"}
                keeper.complete(record)
                return ProgramResult(result=record)
            if not keeper.beat():  # fenced: a worker that lost its task never pushes
                return ProgramResult(status=AgentStatus.FAILED, reason="lost its claim on the task before pushing",
                                     result={"task": task_id, "landed": False})
            outcome = _land(pctx, job, clone, task_id, base, files, failures)
        except (GitError, WorkspaceError) as exc:
            keeper.fail(str(exc))
            return ProgramResult(status=AgentStatus.FAILED, reason=str(exc)[:2000], result={"task": task_id})
        record_hotspots(state, outcome)
        record = {"task": task_id, "changed": len(applied.changed), "failed_files": dict(failures),
                  **outcome_record(outcome)}
        if outcome.landed:
            keeper.complete(record)
            return ProgramResult(result=record)
        other = landed_commit(clone, base, clone.upstream_ref, run_id, task_id)
        if other:  # another holder of this task landed it while we raced: ours must not land too
            keeper.complete({**record, "landed": True, "sha": other, "commit": other,
                             "by": "another holder of the task"})
            return ProgramResult(result={**record, "landed": True, "sha": other})
        why = outcome.reason
        if outcome.check is not None and not outcome.check.passed:
            tail = " / ".join(line for line in outcome.check.output.strip().splitlines()[-4:] if line.strip())
            why = f"{why}, so its change was not pushed" + (f": {tail}" if tail else "")
        keeper.fail(why)
        return ProgramResult(status=AgentStatus.FAILED, reason=why[:2000], result=record)
