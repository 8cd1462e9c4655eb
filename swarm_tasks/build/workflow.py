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
from collections import Counter

from pydantic import JsonValue

from coordination.errors import LeaseLost
from coordination.ids import new_id
from coordination.notes import ProgressDoc
from coordination.tasks import TaskStatus
from swarm_tasks.agents.children import ChildRequest, child_id, spawn
from swarm_tasks.agents.runner import RunContext, SwarmClient
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.build.agents import judge_id, verdict_of
from swarm_tasks.build.cycles import CycleBook, CycleState, Phase, Verdict
from swarm_tasks.build.job import (
    TASK_ROLE,
    BuildJob,
    BuildMode,
    forget_secret,
    resolve_models,
    run_job,
    store_secret,
    validate_job,
)
from swarm_tasks.build.landing import top_hotspots
from swarm_tasks.build.specs import CODEMOD_PLANNER, JUDGE, PLANNER, build_specs, planner_task
from swarm_tasks.build.staffing import held_lease, staff
from swarm_tasks.errors import SwarmError
from swarm_tasks.launch import start_agents, watch_idle
from swarm_tasks.runs import RunRecord, RunStatus

log = logging.getLogger("swarm_tasks.build")
OPEN = (TaskStatus.PENDING, TaskStatus.BLOCKED, TaskStatus.CLAIMED)


class StopReason:
    """Why a build stopped (strings kept in results)."""

    JUDGE = "judge"
    MAX_CYCLES = "max_cycles"
    BUDGET = "budget"
    JUDGE_FAILED = "judge_failed"


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
    kept apart from the run record (see :func:`swarm_tasks.build.job.run_job`)."""
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
    services.schedule(ctx, outcome.started)
    watch_idle(ctx.state)  # the idle wake-up is one-shot: ask again now that agents run


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
        services.runs.transition(run.id, RunStatus.FAILED, only_from=(RunStatus.RUNNING,),
                                 reason=job.remote().redact(f"build failed: {type(exc).__name__}: {exc}"))
        forget_secret(ctx.state)


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
        stop = (StopReason.JUDGE if verdict.decision.value == "stop" else
                StopReason.MAX_CYCLES if n >= job.max_cycles else
                StopReason.BUDGET if spent >= run.limits.max_cost_usd else None)
        if stop is not None:
            if book.write(cycle.evolve(phase=Phase.DONE, history=history), version):
                _finish(services, ctx, run, job, history, stop)
            return
        if book.write(CycleState(cycle=n + 1, phase=Phase.WORK, base=verdict.tip, history=history), version):
            _start(services, ctx, run, [planner_request(job, n + 1, history, top_hotspots(ctx.state))])
        return
    _finish(services, ctx, run, job, cycle.history, StopReason.JUDGE)  # DONE recorded, run not ended: a crash


def record_cycle(ctx: RunContext, verdict: Verdict) -> None:
    """The cycle's summary in the run's progress document (the tag on the remote was pushed by the judge)."""
    def change(doc: ProgressDoc) -> ProgressDoc:
        doc.sections[f"cycle {verdict.cycle}"] = verdict.summary()
        doc.summary = f"{verdict.cycle} cycle(s) judged; last: {verdict.decision.value} ({verdict.reason})"[:2000]
        return doc

    ctx.state.progress.update(change, author="build")


def build_result(ctx: RunContext, job: BuildJob, history: list[Verdict], stop: str) -> dict[str, JsonValue]:
    last = history[-1] if history else None
    tasks = Counter(t.status.value for t in ctx.state.board.tasks(role=TASK_ROLE))
    usage = ctx.agents.usage("run")
    return {"mode": job.mode.value, "repo": job.shown_repo, "branch": job.branch,
            "tip": last.tip if last else None, "cycles": [v.model_dump(mode="json") for v in history],
            "stopped_because": stop, "check_passed": None if last is None or last.check is None else last.check.passed,
            "tasks": dict(tasks), "hot_spots": [[path, n] for path, n in top_hotspots(ctx.state, 20)],
            "cost_usd": round(usage.get("cost_usd", 0.0), 6),
            "agents": int(usage.get("agents_started", 0))}


def _finish(services: SwarmClient, ctx: RunContext, run: RunRecord, job: BuildJob, history: list[Verdict],
            stop: str, *, failure: str | None = None) -> None:
    last = history[-1] if history else None
    failed = failure or (f"the check {last.check.describe()} on the final tip"
                         if last is not None and last.check is not None and not last.check.passed else None)
    why = {StopReason.JUDGE: "the judge stopped the build", StopReason.MAX_CYCLES: f"max_cycles ({job.max_cycles})",
           StopReason.BUDGET: f"the run's budget (${run.limits.max_cost_usd:g}) is spent",
           StopReason.JUDGE_FAILED: "the judge failed"}[stop]
    reason = f"{why} after {len(history)} cycle(s)" + (f"; {failed}" if failed else "")
    if last is not None:
        reason += f": {last.reason}"
    status = RunStatus.FAILED if failed else RunStatus.COMPLETED
    services.runs.transition(run.id, status, reason=reason[:2000], result=build_result(ctx, job, history, stop),
                             only_from=(RunStatus.RUNNING,))
    forget_secret(ctx.state)
    shutil.rmtree(services.settings.state_dir / "workspaces" / run.id, ignore_errors=True)


def agents_of(ctx: RunContext, spec: str) -> list[str]:
    """Ids of the run's agents of ``spec`` (for reports and tests)."""
    ids = sorted({a for status in AgentStatus for a in ctx.agents.ids(status)})
    return [a.id for a in ctx.agents.get_many(ids) if a is not None and a.spec == spec]


__all__ = ["BuildJob", "StopReason", "build_result", "on_idle", "submit_build"]
