"""The judge of a cycle: objective signals on the branch tip, a decision, and the cycle's tag.

The judge program reads the tip once the cycle's work has ended: the commits the cycle's tasks
landed, the full check (once per cycle: the landing window's check), and in codemod mode the command
run once more over the run's files, which shows what it still changes, which files it fails on, and
whether it changes again what this run already changed (then it is not idempotent and another cycle
would apply it twice). When the check fails on the tip but passed where the cycle began, the cycle's
commits are bisected to name the first one it fails on. Only a cycle whose tip is a state to keep
(see :class:`~swarm_tasks.builder.cycles.Verdict`) gets its tag. A model judge, when configured, then
decides on the same signals.
"""

from __future__ import annotations

import shutil
from collections import Counter

from coordination.run import RunState
from coordination.tasks import Task, TaskStatus
from swarm_tasks.agents.children import ChildRequest, child_id
from swarm_tasks.agents.program import ProgramContext, ProgramResult
from swarm_tasks.agents.state import AgentStatus, AgentStore
from swarm_tasks.builder.codemod import apply_codemod
from swarm_tasks.builder.cycles import MAX_LISTED, CheckSummary, CycleBook, Decision, Verdict, cycle_tag
from swarm_tasks.builder.gate import FULL, run_counted, tip_passes
from swarm_tasks.builder.gitops import Clone, borrowed_objects, split_z
from swarm_tasks.builder.job import TASK_ROLE, BuildJob, BuildMode, run_job
from swarm_tasks.builder.landing import TRAILER, landed_commits, worker_clone
from swarm_tasks.builder.specs import JUDGE_MODEL, judge_task
from swarm_tasks.builder.targets import Targets, load_targets
from swarm_tasks.settings import SwarmSettings

MAX_CHANGED_KEPT = 20_000  # files the judge lists as still changed by the codemod (more: "all")


def judge_id(cycle: int) -> str:
    return child_id("run", "global", f"judge:c{cycle}")


def judge_model_id(cycle: int) -> str:
    return child_id("run", "global", f"judge-model:c{cycle}")


def _push_tag(clone: Clone, tip: str, tag: str) -> str:
    """Record the cycle's tip on the remote; the ref, or why it could not be pushed."""
    pushed = clone.git("push", "--porcelain", clone.spec.git_url, f"{tip}:{tag}", network=True, check=False)
    if pushed.ok:
        return tag
    return clone.spec.redact(f"(not recorded: {pushed.stderr.decode('utf-8', 'replace').strip()[-300:]})")


def decide(job: BuildJob, check: CheckSummary | None, changed: list[str], failed: list[str], *,
           repeated: list[str] | None = None, file_failures: dict[str, str] | None = None,
           landed: int = 1) -> tuple[Decision, str]:
    """The deterministic judge: objective signals only."""
    if failed and not landed:
        return Decision.STOP, (f"no task of this cycle landed and {len(failed)} failed: another cycle would meet "
                               "the same failures")
    if job.mode is BuildMode.CODEMOD:
        if repeated:
            shown = ", ".join(repeated[:5]) + (f" and {len(repeated) - 5} more" if len(repeated) > 5 else "")
            return Decision.STOP, (f"the codemod is not idempotent: run again on the tip it changes {len(repeated)} "
                                   f"file(s) this run already changed ({shown}), so another cycle would apply it "
                                   "twice")
        if changed:
            return Decision.CONTINUE, f"the codemod still changes {len(changed)} file(s) on the tip"
        if check is not None and not check.passed:
            return Decision.STOP, f"the codemod changes nothing more, but the check {check.describe()}"
        if file_failures:
            return Decision.STOP, (f"the codemod changes nothing more on the files it works on, and fails on "
                                   f"{len(file_failures)} file(s)")
        return Decision.STOP, "the codemod changes nothing more on the tip"
    if check is not None:
        if check.passed:
            return Decision.STOP, "the check passes on the tip"
        return Decision.CONTINUE, f"the check {check.describe()} on the tip"
    if failed:
        return Decision.CONTINUE, f"{len(failed)} task(s) failed and no check says the goal is met"
    return Decision.STOP, "every task landed (no check configured)"


def first_failing(state: RunState, clone: Clone, base: str, commits: list[str], command: str,
                  timeout_s: float, *, settings: SwarmSettings | None = None) -> str:
    """The first of ``commits`` (in order, the last one known to fail) on which ``command`` fails, when
    it passes on ``base``; empty if the base fails too. A binary search: log2(n) runs of the check."""
    if not commits or not tip_passes(state, clone, base, command, timeout_s, settings=settings):
        return ""
    low, high = 0, len(commits) - 1  # the answer is in [low, high]; commits[high] fails
    while low < high:
        middle = (low + high) // 2
        if tip_passes(state, clone, commits[middle], command, timeout_s, settings=settings):
            low = middle + 1
        else:
            high = middle
    return commits[high]


def files_changed_by_run(clone: Clone, since: str, upto: str, run_id: str) -> set[str]:
    """Every file a commit of this run changed in ``since..upto``."""
    rev = f"{since}..{upto}" if since else upto
    out = clone.git("log", "--format=", "--name-only", "-z", "--no-renames", "--fixed-strings",
                    f"--grep={TRAILER}: {run_id}/", rev, "--", check=False)
    return set(split_z(out.stdout.replace(b"\n", b"\0")))


def _cycle_tasks(state: RunState, cycle: int) -> list[Task]:
    return [t for t in state.board.tasks(role=TASK_ROLE) if t.labels.get("cycle") == str(cycle)]


def judge_program(pctx: ProgramContext) -> ProgramResult:
    """Gather the cycle's signals on the branch tip, record the cycle, and decide (or ask a model judge)."""
    job = run_job(pctx.run.spec, pctx.state, pctx.settings)
    state = pctx.state
    book = CycleBook(state).current()
    cycle, run_id = book.cycle, pctx.run.id
    run_base = book.history[0].base if book.history and book.history[0].base else book.base
    clone = worker_clone(job.remote(), pctx.workspace, pctx.agent.id, job.union_merge)
    changed: list[str] = []
    repeated: list[str] = []
    file_failures: dict[str, str] = {}
    first_bad = ""
    try:
        tip = clone.head()
        landed = landed_commits(clone, book.base, tip, run_id)
        check = None
        if job.check:
            check = CheckSummary.of(run_counted(state, FULL, job.check, clone.path, job.check_timeout_s,
                                                settings=pctx.settings, reads=borrowed_objects(clone.spec)))
            if not check.passed and book.base and landed:
                first_bad = first_failing(state, clone, book.base, [sha for sha, _ in landed], job.check,
                                          job.check_timeout_s, settings=pctx.settings)
        if job.codemod:
            targets = load_targets(state) or Targets(globs=list(job.files) or ["*"], how="the job's files")
            applied = apply_codemod(clone, job.codemod_spec(pctx.settings), targets.select(clone.path))
            changed, file_failures = applied.changed, applied.failures
            if changed:
                already = files_changed_by_run(clone, run_base, tip, run_id)
                repeated = [f for f in changed if f in already]
        tasks = _cycle_tasks(state, cycle)
        failed = [f"{t.title}: {t.error or t.status.value}"[:300] for t in tasks
                  if t.status in (TaskStatus.FAILED, TaskStatus.CANCELLED)]
        unchecked = [str(t.result["sha"]) for t in tasks if isinstance(t.result, dict)
                     and t.result.get("checked_on_landed_tree") is False and t.result.get("sha")]
        decision, reason = decide(job, check, changed, failed, repeated=repeated, file_failures=file_failures,
                                  landed=len(landed))
        accepted = (check is None or check.passed) and not failed and not file_failures and not repeated
        tag = _push_tag(clone, tip, cycle_tag(run_id, cycle)) if accepted else ""
    finally:
        shutil.rmtree(clone.path, ignore_errors=True)
    verdict = Verdict(cycle=cycle, base=book.base, tip=tip, tag=tag, accepted=accepted, check=check,
                      decision=decision, reason=reason, judged_by="deterministic judge (program)",
                      tasks=dict(Counter(t.status.value for t in tasks)), failed=failed[:MAX_LISTED],
                      landed=[sha for sha, _ in landed][:MAX_LISTED], landed_count=len(landed),
                      unchecked=unchecked[:MAX_LISTED], first_bad=first_bad,
                      changed_files=changed[:MAX_LISTED], changed_count=len(changed),
                      repeated_files=repeated[:MAX_LISTED], repeated_count=len(repeated),
                      file_failures=dict(list(file_failures.items())[:MAX_LISTED]),
                      file_failure_count=len(file_failures))
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
    verdict = Verdict.model_validate({**program.result,
                                      "changed_files": program.result.get("changed_files", [])[:MAX_LISTED]})
    if model is None:
        return verdict
    body = model.result.get("result") if isinstance(model.result, dict) else None
    if model.status is AgentStatus.DONE and isinstance(body, dict) and body.get("decision") in ("stop", "continue"):
        return verdict.model_copy(update={"decision": Decision(str(body["decision"])),
                                          "reason": str(body.get("reason", ""))[:2000],
                                          "judged_by": f"model judge ({model.model or 'model'})"})
    return verdict.model_copy(update={"reason": f"{verdict.reason} (the model judge {model.status.value}: "
                                                f"{model.reason or 'no decision'}; deterministic decision used)"})
