"""How a build ends: its status, a reason a user can act on, and the result it leaves.

The status says what happened to the work, from the judges' verdicts and the board:

- ``failed``: nothing useful could be done or what was done cannot be trusted: the planner failed
  or filed no task, the check fails on the final tip, nothing landed while tasks failed, the judge
  could not judge;
- ``partial``: some work landed and some did not: tasks failed, the codemod failed on some files,
  the codemod is not idempotent (stopped after one pass instead of applying it twice), the cycles
  or the budget ran out while the judge still saw work to do;
- ``completed``: everything the run needed landed and the judge stopped on an accepted tip.

Whatever the status, the result records the final tip, the commits that landed, each failed task
with its reason (grouped by reason in the run's reason) and the files the command failed on.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from pydantic import JsonValue

from coordination.run import RunState
from coordination.tasks import Task, TaskStatus
from swarm_tasks.builder.cycles import Decision, Verdict
from swarm_tasks.builder.gate import check_counts
from swarm_tasks.builder.gitops import remote_branches
from swarm_tasks.builder.job import TASK_ROLE, BuildJob, BuildMode
from swarm_tasks.builder.landing import top_hotspots
from swarm_tasks.builder.targets import describe as describe_targets
from swarm_tasks.builder.targets import load_targets
from swarm_tasks.errors import GitError
from swarm_tasks.runs import RunRecord, RunStatus

MAX_LISTED = 200
_WORKER_PREFIX = re.compile(r"^worker \S+: ")


class StopReason:
    """Why a build stopped (strings kept in results)."""

    JUDGE = "judge"
    MAX_CYCLES = "max_cycles"
    BUDGET = "budget"
    JUDGE_FAILED = "judge_failed"
    PLANNER = "planner"
    NOT_IDEMPOTENT = "not_idempotent"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Ending:
    status: RunStatus
    reason: str
    result: dict[str, JsonValue]


def landed_commits(tasks: list[Task]) -> list[str]:
    """The commits the run's tasks landed (from their results), oldest task first."""
    found = []
    for task in sorted(tasks, key=lambda t: t.ended_at or 0.0):
        result = task.result if isinstance(task.result, dict) else {}
        commit = result.get("commit")
        if task.status is TaskStatus.DONE and isinstance(commit, str) and commit:
            found.append(commit)
    return list(dict.fromkeys(found))


def failed_tasks(tasks: list[Task]) -> list[dict[str, JsonValue]]:
    return [{"task": t.id, "title": t.title, "status": t.status.value, "attempts": t.attempts,
             "reason": t.error or f"{t.status.value} with no reason given"}
            for t in tasks if t.status in (TaskStatus.FAILED, TaskStatus.CANCELLED)]


def file_failures(tasks: list[Task], history: list[Verdict]) -> dict[str, str]:
    """Files the command failed on: the last judge's pass, else what the tasks reported."""
    if history and history[-1].file_failure_count:
        return dict(history[-1].file_failures)
    found: dict[str, str] = {}
    for task in tasks:
        result = task.result if isinstance(task.result, dict) else {}
        failures = result.get("failed_files")
        if isinstance(failures, dict):
            found.update({str(k): str(v) for k, v in failures.items()})
    return found


def group_reasons(failures: list[dict[str, JsonValue]], limit: int = 3) -> str:
    """``"reason A (12 tasks); reason B (1 task)"``: the most common reasons first."""
    counts = Counter(_WORKER_PREFIX.sub("", str(f["reason"])).strip()[:300] for f in failures)
    parts = [f"{why} ({n} task{'s' if n != 1 else ''})" for why, n in counts.most_common(limit)]
    if len(counts) > limit:
        parts.append(f"{len(counts) - limit} other reason(s)")
    return "; ".join(parts)


def _tip(job: BuildJob, history: list[Verdict]) -> str | None:
    try:
        return remote_branches(job.remote()).get(job.branch) or (history[-1].tip if history else None)
    except GitError:
        return history[-1].tip if history else None


def _files_text(failures: dict[str, str]) -> str:
    shown = "; ".join(f"{path}: {why}" for path, why in list(failures.items())[:5])
    more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
    return f"the command failed on {len(failures)} file(s): {shown}{more}"


def conclude(job: BuildJob, run: RunRecord, history: list[Verdict], stop: str, tasks: list[Task], *,
             failure: str | None = None, planner_problem: str | None = None) -> tuple[RunStatus, str]:
    """The end state and the reason, from the verdicts and the board."""
    last = history[-1] if history else None
    commits = landed_commits(tasks)
    failed = failed_tasks(tasks)
    files = file_failures(tasks, history) if job.mode is BuildMode.CODEMOD else {}
    unchecked = sum(len(v.unchecked) for v in history)
    landed = f"{len(commits)} commit(s) landed" + (
        f" ({unchecked} on a tree their gate check did not run on; the judge's check on the tip covers them)"
        if unchecked else "")
    if failure:
        return RunStatus.FAILED, f"{failure}; {landed}"
    if planner_problem:
        return (RunStatus.PARTIAL if commits else RunStatus.FAILED), f"{planner_problem}; {landed}"
    stopped = _stopped(job, run, stop)
    if last is not None and last.check is not None and not last.check.passed:
        bad = f" (it first fails at commit {last.first_bad[:12]})" if last.first_bad else ""
        return RunStatus.FAILED, (f"the check {last.check.describe()} on the final tip{bad}, after {len(history)} "
                                  f"cycle(s) ({stopped}); {landed}")
    if failed and not commits:
        return RunStatus.FAILED, (f"nothing landed: {len(failed)} of {len(tasks)} task(s) failed: "
                                  f"{group_reasons(failed)}")
    problems = []
    if failed:
        problems.append(f"{len(failed)} of {len(tasks)} task(s) failed: {group_reasons(failed)}")
    if files:
        problems.append(_files_text(files))
    if last is not None and last.repeated_count and job.max_cycles > 1:
        problems.append(f"{last.reason}: it was applied once and the run stopped (make it idempotent, or run it "
                        "with --max-cycles 1 to apply it exactly once)")
    if stop == StopReason.BUDGET:
        problems.append(f"the run's budget (${run.limits.max_cost_usd:g}) was spent with work left")
    if stop == StopReason.MAX_CYCLES and last is not None and last.decision is Decision.CONTINUE:
        problems.append(f"max_cycles ({job.max_cycles}) reached with work left: {last.reason}")
    if problems:
        return RunStatus.PARTIAL, f"{'; '.join(problems)}; {landed}"
    reason = f"{stopped} after {len(history)} cycle(s); {landed}"
    return RunStatus.COMPLETED, reason + (f": {last.reason}" if last is not None else "")


def _stopped(job: BuildJob, run: RunRecord, stop: str) -> str:
    return {StopReason.JUDGE: "the judge stopped the build", StopReason.MAX_CYCLES: f"max_cycles ({job.max_cycles})",
            StopReason.NOT_IDEMPOTENT: "the judge stopped the build",
            StopReason.BUDGET: f"the run's budget (${run.limits.max_cost_usd:g}) is spent"}.get(stop, stop)


def build_result(job: BuildJob, state: RunState, history: list[Verdict], stop: str, tasks: list[Task],
                 usage: dict[str, float]) -> dict[str, JsonValue]:
    """What a finished build leaves in its run record."""
    last = history[-1] if history else None
    commits = landed_commits(tasks)
    failed: list[JsonValue] = list(failed_tasks(tasks))
    unchecked = [sha for v in history for sha in v.unchecked]
    return {"mode": job.mode.value, "repo": job.shown_repo, "branch": job.branch,
            "base": history[0].base if history else None, "tip": _tip(job, history),
            "commits_landed": len(commits), "commits": commits[:MAX_LISTED],
            "unchecked_commits": unchecked[:MAX_LISTED],
            "cycles": [v.model_dump(mode="json") for v in history],
            "tagged": [v.tag for v in history if v.tag],
            "stopped_because": stop,
            "check_passed": None if last is None or last.check is None else last.check.passed,
            "checks_run": dict(check_counts(state)),
            "tasks": dict(Counter(t.status.value for t in tasks)),
            "failed_tasks": failed[:MAX_LISTED],
            "failed_files": dict(list(file_failures(tasks, history).items())[:MAX_LISTED]),
            "targets": describe_targets(load_targets(state)),
            "hot_spots": [[path, n] for path, n in top_hotspots(state, 20)],
            "cost_usd": round(usage.get("cost_usd", 0.0), 6), "agents": int(usage.get("agents_started", 0))}


def left_out(job: BuildJob, tasks: list[Task], history: list[Verdict]) -> list[tuple[str, str]]:
    """The work a build did not do, as (what, why) (for the run's outcome)."""
    items = [(f"task {f['title']}", f"{f['status']}: {f['reason']}") for f in failed_tasks(tasks)]
    if job.mode is BuildMode.CODEMOD:
        items += [(path, f"the command failed: {why}") for path, why in file_failures(tasks, history).items()]
    return items


def board_tasks(state: RunState) -> list[Task]:
    return state.board.tasks(role=TASK_ROLE)
