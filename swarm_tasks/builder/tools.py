"""The build's tools: planners file tasks and watch the board; workers check, land, and resolve conflicts.

Failures a model can act on (a failing check, a conflict, a lost claim) come back as tool results.
Landing is fenced: a worker that no longer holds its task's lease is told so and never pushes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, ValidationError

from coordination.errors import AlreadyExists, LeaseLost
from coordination.run import RunState
from coordination.tasks import Lease, Task
from swarm_tasks.agents.tools.base import Tool, ToolArgs, ToolContext, ToolResult
from swarm_tasks.builder.conflicts import abort_rebase, begin_rebase, conflict_view, continue_rebase, rebasing
from swarm_tasks.builder.cycles import CheckSummary, CycleBook, Phase
from swarm_tasks.builder.gate import FULL, QUICK, Gate, render_paths, run_counted
from swarm_tasks.builder.gitops import Clone, commit_all, split_z
from swarm_tasks.builder.job import TASK_ROLE, BuildJob, run_job
from swarm_tasks.builder.landing import (
    commit_message,
    decline,
    describe_hotspots,
    landed_commit,
    landing_turns,
    once_only,
    open_clone,
    outcome_record,
    record_hotspots,
    top_hotspots,
)
from swarm_tasks.builder.mechanical import resolve_insertions
from swarm_tasks.builder.rebase import PushOutcome, PushStatus, push_with_rebase
from swarm_tasks.builder.staffing import held_lease, record_costly, staff, task_files
from swarm_tasks.errors import GitError, ToolError
from swarm_tasks.runs import RunStore

MAX_OUTPUT = 4000


def _build(ctx: ToolContext) -> tuple[BuildJob, RunState]:
    spec = ctx.extras.get("run_spec")
    if ctx.state is None or not isinstance(spec, dict):
        raise ToolError("this tool only works inside a build run")
    try:
        return run_job(spec, ctx.state, ctx.settings), ctx.state
    except ValidationError:
        raise ToolError("this tool only works inside a build run") from None


def _clone(ctx: ToolContext, job: BuildJob) -> Clone:
    clone = open_clone(job.remote(), ctx.workspace)
    if clone is None:
        raise ToolError("your workspace holds no clone of the repository (the worker that held it is gone); "
                        "your edits were lost: call finish with success=false so the task is retried")
    return clone


def _my_task(ctx: ToolContext) -> str:
    data = ctx.extras.get("agent_input")
    task_id = data.get("task") if isinstance(data, dict) else None
    if not isinstance(task_id, str) or not task_id:
        raise ToolError("only a worker holding a task can do this")
    return task_id


def _lease(ctx: ToolContext, state: RunState, job: BuildJob) -> Lease:
    """The worker's lease on its task, extended now; the tool fails if it is gone."""
    task_id = _my_task(ctx)
    lease = held_lease(state, task_id, ctx.agent_id)
    if lease is not None:
        try:
            return state.board.heartbeat(lease, lease_s=job.task_lease_s)
        except LeaseLost:
            pass
    raise ToolError(f"you no longer hold task {task_id}: your claim expired and the task went back to the "
                    "board (another worker may have it). Do not push; call finish with success=false.")


def _tail(text: str) -> str:
    return text if len(text) <= MAX_OUTPUT else "...\n" + text[-MAX_OUTPUT:]


# -- planners -----------------------------------------------------------------------------------------------

class TaskDraft(ToolArgs):
    key: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,40}$",
                            description="Short name that later tasks of this call may list in depends_on.")
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=8000, description="What to change and how to tell it is done; "
                      "the worker sees nothing else.")
    files: list[str] = Field(default_factory=list, max_length=100, description="Files it expects to touch.")
    priority: int = Field(default=0, ge=-100, le=100, description="Higher runs first.")
    depends_on: list[str] = Field(default_factory=list, max_length=50,
                                  description="Keys of earlier tasks of this call, or ids of filed tasks.")


class FileTasksArgs(ToolArgs):
    tasks: list[TaskDraft] = Field(min_length=1, max_length=100)


def hotspot_collisions(drafts: list[TaskDraft], hot: dict[str, int]) -> list[str]:
    """Hot-spot files that two tasks of this call would edit at the same time (no dependency between)."""
    by_file: dict[str, list[TaskDraft]] = {}
    for draft in drafts:
        for path in draft.files:
            by_file.setdefault(path, []).append(draft)
    warnings = []
    for path, editors in sorted(by_file.items()):
        keys = [d.key for d in editors]
        chained = all(any(k and k in d.depends_on for k in keys[:i]) for i, d in enumerate(editors) if i)
        if path in hot and len(editors) > 1 and not chained:
            warnings.append(f"{path} (hot spot, {hot[path]}) is edited by {len(editors)} tasks that may run at "
                            "once: " + "; ".join(d.title for d in editors))
    return warnings


class FileTasksTool(Tool):
    name = "file_tasks"
    description = ("File tasks for workers on the board (with you as their parent) and start workers for them. "
                   "Returns the task ids. Call wait_for_tasks afterwards to be woken when they have ended.")
    Args = FileTasksArgs
    idempotent = True  # task and worker ids derive from this call: a repeated call files nothing twice

    def run(self, args: FileTasksArgs, ctx: ToolContext) -> ToolResult:
        job, state = _build(ctx)
        cycle = CycleBook(state).current()
        if cycle.phase is not Phase.WORK:
            raise ToolError("the cycle is being judged: no tasks can be filed now; call finish")
        ids: dict[str, str] = {}
        plans: list[tuple[str, TaskDraft, list[str]]] = []
        for index, draft in enumerate(args.tasks):
            task_id = "t-" + hashlib.sha1(f"{ctx.agent_id}|{ctx.call_id}|{index}".encode(),
                                          usedforsecurity=False).hexdigest()[:16]
            deps = [ids.get(dep, dep) for dep in draft.depends_on]
            unknown = [d for d in deps if d not in ids.values() and state.board.get_many([d])[0] is None]
            if unknown:
                raise ToolError(f"task {index + 1} ({draft.title}) depends on {', '.join(unknown)}: neither a key "
                                "of an earlier task in this call nor a filed task id; nothing was filed")
            if draft.key:
                ids[draft.key] = task_id
            plans.append((task_id, draft, deps))
        filed: list[Task] = []
        for task_id, draft, deps in plans:
            body = draft.body + (f"\n\nFiles expected to change: {', '.join(draft.files)}" if draft.files else "")
            try:
                filed.append(state.board.create(
                    TASK_ROLE, draft.title, body, priority=draft.priority, depends_on=deps, parent=ctx.agent_id,
                    max_attempts=job.task_attempts, task_id=task_id,
                    labels={"cycle": str(cycle.cycle), "files": json.dumps(draft.files)}))
            except AlreadyExists:
                filed.append(state.board.get(task_id))
        start = ctx.extras.get("start_agents")
        if start is None:
            raise ToolError("file_tasks needs the agent runner (it starts workers)")
        runs = RunStore(state.redis, state.records, ctx.settings)
        started = start(staff(state, runs, job, starter=f"{ctx.agent_id}:{ctx.call_id}"))
        lines = [f"filed {len(filed)} task(s):",
                 *(f"  {t.id} [{t.status.value}] {t.title}" for t in filed),
                 f"{len(started)} worker(s) started now (at most {job.builders} work at once)."]
        warnings = hotspot_collisions(args.tasks, dict(top_hotspots(state, 50)))
        if warnings:
            lines += ["Warning: these tasks collide on hot spots; consider merging them or chaining them with "
                      "depends_on:", *warnings]
        lines.append("Call wait_for_tasks to be woken when your tasks have ended.")
        return ToolResult("\n".join(lines), data={"tasks": [t.id for t in filed], "workers": len(started)})


class TaskBoardArgs(ToolArgs):
    scope: Literal["mine", "cycle"] = Field(default="mine", description="Tasks you filed, or every task of "
                                            "this cycle.")


class TaskBoardTool(Tool):
    name = "task_board"
    description = "Show tasks with their status, attempts and outcome, and the conflict hot spots."
    Args = TaskBoardArgs

    def run(self, args: TaskBoardArgs, ctx: ToolContext) -> ToolResult:
        _job, state = _build(ctx)
        cycle = str(CycleBook(state).current().cycle)
        tasks = (state.board.children(ctx.agent_id) if args.scope == "mine"
                 else [t for t in state.board.tasks() if t.labels.get("cycle") == cycle])
        lines = []
        for t in sorted(tasks, key=lambda t: t.created_at):
            outcome = t.error or (json.dumps(t.result)[:200] if t.result is not None else "")
            lines.append(f"{t.id} [{t.status.value}, {t.attempts} failed attempt(s)] {t.title}"
                         + (f" -> {outcome}" if outcome else ""))
        lines.append(f"Hot spots: {describe_hotspots(top_hotspots(state))}")
        return ToolResult("\n".join(lines or ["no tasks"]))


# -- workers ---------------------------------------------------------------------------------------------------

class NoArgs(ToolArgs):
    pass


class TaskInfoTool(Tool):
    name = "task_info"
    description = "Show your task again, whether you still hold it, and whether its change already landed."
    Args = NoArgs

    def run(self, args: NoArgs, ctx: ToolContext) -> ToolResult:
        job, state = _build(ctx)
        lease = _lease(ctx, state, job)
        task = lease.task
        clone = _clone(ctx, job)
        clone.fetch()
        landed = landed_commit(clone, CycleBook(state).current().base, clone.upstream_ref, ctx.run_id, task.id)
        used = int(state.redis.hget(state.keys.push_rounds(), ctx.agent_id) or 0)
        lines = [f"{task.id}: {task.title}", task.body, f"files: {', '.join(task_files(task)) or 'not listed'}",
                 f"check: {job.check or 'none'}; landing attempts used: {used} of {job.push_attempts}"]
        if landed:
            lines.append(f"This task's change already landed as {landed[:12]}: call finish.")
        return ToolResult("\n".join(lines))


class RunCheckArgs(ToolArgs):
    full: bool = Field(default=False, description="Run the full check instead of the quick one on your changes.")


class RunCheckTool(Tool):
    name = "run_check"
    description = ("Run the repository's check in your workspace (the quick one on the files you changed, when "
                   "the build has one) and show how it ended and its output.")
    Args = RunCheckArgs
    idempotent = False  # a check may write files (caches, reports): not repeated behind the model's back

    def run(self, args: RunCheckArgs, ctx: ToolContext) -> ToolResult:
        job, state = _build(ctx)
        if isinstance(ctx.extras.get("agent_input"), dict) and "task" in ctx.extras["agent_input"]:
            _lease(ctx, state, job)
        if not job.check and not job.check_changed:
            return ToolResult("no check is configured for this build")
        command, kind = job.check, FULL
        if job.check_changed and not args.full:
            clone = _clone(ctx, job)
            changed = split_z(clone.git("status", "--porcelain=v1", "-z", "--untracked-files=all").stdout)
            paths = sorted({e[3:] for e in changed if (clone.path / e[3:]).is_file()}
                           | set(Gate(state, clone, None, job.check_changed, job.check_timeout_s).changed_paths()))
            if not paths:
                return ToolResult("you have changed no file yet: nothing for the quick check to check")
            command, kind = render_paths(job.check_changed, paths), QUICK
        assert command is not None
        result = run_counted(state, kind, command, ctx.workspace, job.check_timeout_s, settings=ctx.settings,
                             reads=ctx.read_only)
        summary = CheckSummary.of(result)
        return ToolResult(f"check `{command}` {summary.describe()}\n{_tail(result.output)}",
                          is_error=not result.passed, data={"passed": result.passed})


class CommitArgs(ToolArgs):
    message: str = Field(min_length=1, max_length=2000, description="Commit message (summary line first).")


class CommitAndPushTool(Tool):
    name = "commit_and_push"
    description = ("Commit every change in your workspace, run the check, and push to the shared branch, "
                   "rebasing onto it when it moved. On conflicts it stops a rebase for you to resolve.")
    Args = CommitArgs
    idempotent = False

    def run(self, args: CommitArgs, ctx: ToolContext) -> ToolResult:
        job, state = _build(ctx)
        task_id = _my_task(ctx)
        _lease(ctx, state, job)
        clone = _clone(ctx, job)
        if rebasing(clone):
            raise ToolError("a rebase is in progress: resolve the conflicts (show_conflicts), call "
                            "continue_rebase, then commit_and_push")
        rounds = int(state.redis.hincrby(state.keys.push_rounds(), ctx.agent_id, 1))
        if rounds > job.push_attempts:
            raise ToolError(f"you have used all {job.push_attempts} landing attempts: call finish with "
                            "success=false (the task goes back to the board for a fresh try)")
        base = CycleBook(state).current().base
        message = commit_message(args.message, ctx.run_id, task_id)
        try:
            commit_all(clone, message)
            ahead = int(clone.out("rev-list", "--count", f"{clone.upstream_ref}..HEAD"))
            if ahead > 1:  # a fix on top of an unpushed commit: the task lands as ONE commit the gate checked
                clone.git("reset", "--quiet", "--soft", clone.out("merge-base", "HEAD", clone.upstream_ref))
                commit_all(clone, message)
                ahead = int(clone.out("rev-list", "--count", f"{clone.upstream_ref}..HEAD"))
        except GitError as exc:
            raise ToolError(str(exc)) from None
        if ahead == 0:
            return ToolResult("nothing to push: your workspace has no change compared with the branch. If the "
                              "task needs no change, call finish.")
        gate = Gate(state, clone, job.check, job.check_changed, job.check_timeout_s, ctx.settings)
        lease = _lease(ctx, state, job)  # fenced: only the holder of the task pushes
        # Onto the freshest tip, then the gate check, then the push; conflicts that are only two
        # insertions at one place are resolved without a model turn.
        resolve = resolve_insertions if job.mechanical_merge else decline
        outcome = push_with_rebase(clone, resolve=once_only(resolve, ctx.run_id, task_id, base),
                                   check=gate if gate.configured else None, recheck=gate.recheck,
                                   check_first=gate.configured, refresh_first=True, max_attempts=job.push_attempts,
                                   turns=landing_turns(state, clone))
        record_hotspots(state, outcome)
        record = outcome_record(outcome)
        if outcome.landed:
            try:
                state.board.complete(lease, record)
                done = "your task is complete"
            except LeaseLost:
                done = "but your claim on the task expired meanwhile"
            return ToolResult(f"landed {str(outcome.sha)[:12]} on {job.branch} after {outcome.attempts} push "
                              f"attempt(s) and {outcome.rebases} rebase(s); {done}. Call finish.", data=record)
        return self.not_landed(ctx, state, job, clone, outcome, base, task_id, rounds)

    def not_landed(self, ctx: ToolContext, state: RunState, job: BuildJob, clone: Clone, outcome: PushOutcome,
                   base: str, task_id: str, rounds: int) -> ToolResult:
        status, reason = outcome.status, outcome.reason
        left = f"{job.push_attempts - rounds} landing attempt(s) left"
        if status is PushStatus.CONFLICT_UNRESOLVED:
            other = landed_commit(clone, base, clone.upstream_ref, ctx.run_id, task_id)
            if other:
                return ToolResult(f"this task's change already landed as {other[:12]} (another worker): do not "
                                  "push again; call finish.")
            try:
                step = begin_rebase(clone)
            except GitError as exc:
                raise ToolError(str(exc)) from None
            record_costly(state, step.conflicted)  # a model resolves these: later tasks on them wait their turn
            if step.done:
                return ToolResult("the branch moved again and your commits now replay cleanly onto it: call "
                                  "commit_and_push again.")
            return ToolResult(
                f"push rejected: the branch moved and your commit '{step.subject}' conflicts with it in "
                f"{', '.join(step.conflicted)}. A rebase is stopped in your workspace; these files hold conflict "
                "markers (between <<<<<<< and ======= is the branch's version, between ======= and >>>>>>> "
                f"yours):\n{conflict_view(clone, step.conflicted)}\nEdit them so both changes survive and no "
                f"marker remains, call continue_rebase, then commit_and_push ({left}).", is_error=True,
                data={"conflicted": step.conflicted})
        if status is PushStatus.CHECK_FAILED:
            output = _tail(outcome.check.output) if outcome.check is not None else ""
            return ToolResult(f"the {reason} on your change (your commits sit on the branch tip): nothing was "
                              f"pushed. Fix it and call commit_and_push again ({left}).\n{output}", is_error=True)
        return ToolResult(f"not landed ({status.value}): {reason}. Call commit_and_push again ({left}) or finish "
                          "with success=false.", is_error=True)


class ShowConflictsTool(Tool):
    name = "show_conflicts"
    description = "Show the conflicted files of the rebase in progress, with their conflict markers."
    Args = NoArgs

    def run(self, args: NoArgs, ctx: ToolContext) -> ToolResult:
        job, _state = _build(ctx)
        clone = _clone(ctx, job)
        if not rebasing(clone):
            return ToolResult("no rebase is in progress: nothing to resolve")
        files = [p for p in clone.git("diff", "--name-only", "--diff-filter=U").stdout.decode().splitlines() if p]
        if not files:
            return ToolResult("every conflicted file is resolved: call continue_rebase")
        return ToolResult(conflict_view(clone, files), data={"conflicted": files})


class ContinueRebaseTool(Tool):
    name = "continue_rebase"
    description = ("After editing the conflicted files: record the resolution and continue the rebase. "
                   "Refused while a conflict marker remains.")
    Args = NoArgs
    idempotent = False

    def run(self, args: NoArgs, ctx: ToolContext) -> ToolResult:
        job, _state = _build(ctx)
        clone = _clone(ctx, job)
        try:
            step = continue_rebase(clone)
        except GitError as exc:
            raise ToolError(str(exc)) from None
        if step.done:
            return ToolResult("the rebase is complete: your commits sit on the branch tip. Call commit_and_push.")
        return ToolResult(f"the next commit '{step.subject}' conflicts too, in {', '.join(step.conflicted)}:\n"
                          f"{conflict_view(clone, step.conflicted)}\nResolve them and call continue_rebase.",
                          is_error=True)


class AbortRebaseTool(Tool):
    name = "abort_rebase"
    description = "Abandon the rebase in progress: your commits go back to how they were before it."
    Args = NoArgs
    idempotent = False

    def run(self, args: NoArgs, ctx: ToolContext) -> ToolResult:
        job, _state = _build(ctx)
        clone = _clone(ctx, job)
        abort_rebase(clone)
        return ToolResult("rebase abandoned; commit_and_push will rebase again (and may conflict again)")


BUILD_TOOLS: tuple[Tool, ...] = (FileTasksTool(), TaskBoardTool(), TaskInfoTool(), RunCheckTool(), CommitAndPushTool(),
                                 ShowConflictsTool(), ContinueRebaseTool(), AbortRebaseTool())
