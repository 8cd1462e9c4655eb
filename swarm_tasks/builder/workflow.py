"""Submitting a build and driving its cycles: plan and work, judge, then the next cycle or the end.

A cycle's agents (planners, the workers they start, the workers' successors) all run while the run
has a live agent; when none is left the run goes idle and :func:`on_idle` takes the next step:

    work   -> orphaned claims go back to the board; open tasks get workers; else the judge starts
    judge  -> its verdict is recorded; stop (the judge says so, max_cycles, the run's budget) or
              cycle n+1 with a fresh planner told the earlier verdicts and the conflict hot spots

Each step is a compare-and-set of the cycle record and starts agents with run-wide ids, so an idle
hook delivered twice, or re-run after a crash, starts nothing twice.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import uuid

from coordination.errors import LeaseLost
from coordination.ids import new_id
from coordination.notes import ProgressDoc
from coordination.tasks import TaskStatus
from swarm_tasks.agents.children import ChildRequest, child_id, spawn
from swarm_tasks.agents.services import RunContext, SwarmClient
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.builder.cycles import CycleBook, CycleState, Phase, Verdict
from swarm_tasks.builder.ending import StopReason, board_tasks, build_result, conclude, left_out
from swarm_tasks.builder.job import (
    TASK_ROLE,
    BuildJob,
    BuildMode,
    forget_secret,
    resolve_models,
    run_job,
    store_secret,
    validate_job,
)
from swarm_tasks.builder.judge import judge_id, verdict_of
from swarm_tasks.builder.landing import top_hotspots
from swarm_tasks.builder.specs import CODEMOD_PLANNER, JUDGE, PLANNER, build_specs, planner_task
from swarm_tasks.builder.staffing import held_lease, staff
from swarm_tasks.errors import SwarmError
from swarm_tasks.launch import start_agents, tally_agents, watch_idle
from swarm_tasks.runs import RunRecord, RunStatus

log = logging.getLogger("swarm_tasks.builder")
OPEN = (TaskStatus.PENDING, TaskStatus.BLOCKED, TaskStatus.CLAIMED)


def planner_request(job: BuildJob, cycle: int, history: list[Verdict], hotspots: list[tuple[str, int]]) -> ChildRequest:
    """The root planner of ``cycle`` (a program in codemod mode)."""
    if job.mode is BuildMode.CODEMOD:
        return ChildRequest(CODEMOD_PLANNER, task=f"split the repository by file for cycle {cycle}",
                            input={"cycle": cycle}, key=f"planner:c{cycle}", global_key=True)
    return ChildRequest(PLANNER, task=planner_task(job, cycle, history, hotspots), input={"cycle": cycle},
                        key=f"planner:c{cycle}", global_key=True)


def submit_build(client: SwarmClient, job: BuildJob, *, run_id: str | None = None) -> RunRecord:
    """Validate the job (remote, branch, commands, models), then start cycle 1. Nothing is created for
    a bad job: :class:`JobSpecError` or :class:`GitError` says what is wrong. A password in the URL is
    kept apart from the run record (see :func:`swarm_tasks.builder.job.run_job`)."""
    job, tip = validate_job(job, client.settings)
    job, secret = job.without_secret()
    models = resolve_models(job, client.settings) if job.mode is BuildMode.MODEL else {}
    run_id = run_id or new_id("build")
    client.runs.ensure_new(run_id)
    state = client.run(run_id).state
    store_secret(state, secret)
    CycleBook(state).write(CycleState(cycle=1, phase=Phase.WORK, base=tip), 0)
    title = job.title or f"build {job.shown_repo}@{job.branch}: {job.goal[:80]}"
    return start_agents(client, build_specs(job, models), [planner_request(job, 1, [], [])], kind="build",
                        title=title, limits=job.limits, models=models, spec_data=job.model_dump(mode="json"),
                        run_id=run_id)


def _alive(ctx: RunContext) -> bool:
    return any(n for status, n in ctx.agents.counts().items() if not status.terminal)


def _start(services: SwarmClient, ctx: RunContext, run: RunRecord, requests: list[ChildRequest]) -> None:
    outcome = spawn(ctx.agents, ctx.specs.get, requests, limits=run.limits, parent=None, call_id="cycle")
    if outcome.refused:
        raise SwarmError("could not start " + "; ".join(f"{r.spec}: {why}" for r, why in outcome.refused))
    watch_idle(ctx.state)  # the idle wake-up is one-shot: ask again now that agents run
    # A broker that is away must not fail the build: the agents are recorded READY and the sweeper sends them.
    services.send(ctx, outcome.started)


def requeue_orphans(ctx: RunContext) -> int:
    """Claims whose worker is gone (ended, or never started) go back to the board."""
    claimed = ctx.state.board.tasks([TaskStatus.CLAIMED], role=TASK_ROLE)
    holders = ctx.agents.get_many([t.claimant or "-" for t in claimed])
    count = 0
    for task, agent in zip(claimed, holders, strict=True):
        if agent is not None and not agent.status.terminal:
            continue
        lease = held_lease(ctx.state, task.id, task.claimant or "")
        if lease is not None:
            with contextlib.suppress(LeaseLost):
                ctx.state.board.fail(lease, f"its worker {task.claimant} is gone", retry=True)
                count += 1
    return count


def on_idle(services: SwarmClient, run: RunRecord) -> None:
    """No agent of the build is alive: take the next step of its cycle (see the module docstring)."""
    if run.status is not RunStatus.RUNNING:
        return
    ctx = services.run(run.id)
    if _alive(ctx):
        return  # a stale or duplicated wake-up
    try:
        _advance(services, ctx, run)
    except Exception as exc:
        log.exception("build %s could not go on", run.id)
        job = run_job(run.spec, ctx.state, services.settings)
        history = CycleBook(ctx.state).current().history
        _finish(services, ctx, run, job, history, StopReason.ERROR,
                failure=job.remote().redact(f"build failed: {type(exc).__name__}: {exc}"))


def _advance(services: SwarmClient, ctx: RunContext, run: RunRecord) -> None:
    job = run_job(run.spec, ctx.state, services.settings)
    book = CycleBook(ctx.state)
    cycle, version = book.read()
    n = cycle.cycle
    if cycle.phase is Phase.WORK:
        if ctx.agents.get_many([child_id("run", "global", f"planner:c{n}")])[0] is None:
            _start(services, ctx, run, [planner_request(job, n, cycle.history, top_hotspots(ctx.state))])
            return
        requeue_orphans(ctx)
        if any(ctx.state.board.counts()[s] for s in OPEN):
            workers = staff(ctx.state, services.runs, job, starter=f"idle:c{n}:{uuid.uuid4().hex[:12]}")
            if workers:
                _start(services, ctx, run, workers)
                return
            for task in ctx.state.board.tasks(OPEN, role=TASK_ROLE):  # nothing can take them: do not hang
                ctx.state.board.cancel(task.id, "no worker could take it before the cycle ended")
        problem = planner_problem(ctx, job, n, filed_only=True)
        if problem is not None:  # nothing was filed: there is nothing for a judge to read
            if book.write(cycle.evolve(phase=Phase.DONE), version):
                _finish(services, ctx, run, job, cycle.history, StopReason.PLANNER, planner_problem=problem)
            return
        if book.write(cycle.evolve(phase=Phase.JUDGING), version):
            _start(services, ctx, run, [ChildRequest(JUDGE, task=f"judge cycle {n}", input={"cycle": n},
                                                     key=f"judge:c{n}", global_key=True)])
        return
    if cycle.phase is Phase.JUDGING:
        judge = ctx.agents.get_many([judge_id(n)])[0]
        if judge is None:
            _start(services, ctx, run, [ChildRequest(JUDGE, task=f"judge cycle {n}", input={"cycle": n},
                                                     key=f"judge:c{n}", global_key=True)])
            return
        verdict = verdict_of(ctx.state, n)
        if verdict is None:
            if book.write(cycle.evolve(phase=Phase.DONE), version):
                _finish(services, ctx, run, job, cycle.history, StopReason.JUDGE_FAILED,
                        failure=f"the judge of cycle {n} {judge.status.value}: {judge.reason or 'no verdict'}")
            return
        record_cycle(ctx, verdict)
        history = [*cycle.history, verdict]
        spent = ctx.agents.usage("run").get("cost_usd", 0.0)
        problem = planner_problem(ctx, job, n, filed_only=False)
        stop = (StopReason.PLANNER if problem is not None else
                StopReason.NOT_IDEMPOTENT if verdict.repeated_count else
                StopReason.JUDGE if verdict.decision.value == "stop" else
                StopReason.MAX_CYCLES if n >= job.max_cycles else
                StopReason.BUDGET if spent >= run.limits.max_cost_usd else None)
        if stop is not None:
            if book.write(cycle.evolve(phase=Phase.DONE, history=history), version):
                _finish(services, ctx, run, job, history, stop, planner_problem=problem)
            return
        if book.write(CycleState(cycle=n + 1, phase=Phase.WORK, base=verdict.tip, history=history), version):
            _start(services, ctx, run, [planner_request(job, n + 1, history, top_hotspots(ctx.state))])
        return
    _finish(services, ctx, run, job, cycle.history, StopReason.JUDGE)  # DONE recorded, run not ended: a crash


def planner_problem(ctx: RunContext, job: BuildJob, cycle: int, *, filed_only: bool) -> str | None:
    """Why cycle ``cycle``'s root planner let the run down, None if it did its part: it failed or was
    stopped (with ``filed_only``: and filed no task, so there is nothing to judge), or it filed no
    task at all in the first cycle (the goal is not empty, so a plan with nothing in it is no plan)."""
    planner = ctx.agents.get_many([child_id("run", "global", f"planner:c{cycle}")])[0]
    if planner is None:
        return None
    filed = any(t.labels.get("cycle") == str(cycle) for t in ctx.state.board.tasks(role=TASK_ROLE))
    if planner.status is not AgentStatus.DONE:
        if filed_only and filed:
            return None
        return f"the planner of cycle {cycle} {planner.status.value}: {planner.reason or 'no reason given'}"
    if filed or cycle > 1:
        return None
    said = planner.result.get("summary") if isinstance(planner.result, dict) else None
    what = "the codemod planner found no file" if job.mode is BuildMode.CODEMOD else "the planner filed no task"
    return f"{what} for the goal {job.goal[:200]!r}" + (f" (it said: {str(said)[:500]})" if said else "")


def record_cycle(ctx: RunContext, verdict: Verdict) -> None:
    """The cycle's summary in the run's progress document (the tag on the remote was pushed by the judge)."""
    def change(doc: ProgressDoc) -> ProgressDoc:
        doc.sections[f"cycle {verdict.cycle}"] = verdict.summary()
        doc.summary = f"{verdict.cycle} cycle(s) judged; last: {verdict.decision.value} ({verdict.reason})"[:2000]
        return doc

    ctx.state.progress.update(change, author="build")


def _finish(services: SwarmClient, ctx: RunContext, run: RunRecord, job: BuildJob, history: list[Verdict],
            stop: str, *, failure: str | None = None, planner_problem: str | None = None) -> None:
    tasks = board_tasks(ctx.state)
    status, reason = conclude(job, run, history, stop, tasks, failure=failure, planner_problem=planner_problem)
    result = build_result(job, ctx.state, history, stop, tasks, ctx.agents.usage("run"))
    reason = job.remote().redact(reason)[:2000]
    tally = tally_agents(ctx)  # the counts behind the status; the status is the build's own reading
    for item, why in left_out(job, tasks, history):
        tally.leave_out(job.remote().redact(item), job.remote().redact(why))
    services.runs.transition(run.id, status, reason=reason, result=result, outcome=tally.outcome(status, reason),
                             only_from=(RunStatus.RUNNING,))
    forget_secret(ctx.state)
    shutil.rmtree(services.settings.state_dir / "workspaces" / run.id, ignore_errors=True)


def agents_of(ctx: RunContext, spec: str) -> list[str]:
    """Ids of the run's agents of ``spec`` (for reports and tests)."""
    ids = sorted({a for status in AgentStatus for a in ctx.agents.ids(status)})
    return [a.id for a in ctx.agents.get_many(ids) if a is not None and a.spec == spec]


__all__ = ["BuildJob", "StopReason", "on_idle", "submit_build"]
