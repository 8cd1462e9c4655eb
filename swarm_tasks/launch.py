"""Start a run of agents from any process that can reach the Redis, and read its agents back (what every
workflow starts its runs with; how a run ends is its workflow's idle hook: see :mod:`swarm_tasks.plugins`)."""

from __future__ import annotations

import json

from pydantic import JsonValue

from coordination.run import RunState
from coordination.store import Write, wake_when_done
from swarm_tasks.agents.children import ChildRequest, spawn
from swarm_tasks.agents.services import RunContext, SwarmClient
from swarm_tasks.agents.spec import AgentSpec, SpecBook
from swarm_tasks.agents.state import AgentState, AgentStatus, AgentStore
from swarm_tasks.outcome import Tally
from swarm_tasks.runs import RUN_ROOT, RunLimits, RunRecord, RunStatus, RunStore
from swarm_tasks.settings import SwarmSettings


def idle_payload(run_id: str) -> str:
    """The wake-up a run's idle watch posts (the control loop sends the run's ``swarm.run.idle`` task)."""
    return json.dumps({"kind": "run-idle", "run": run_id})


def watch_idle(state: RunState) -> None:
    """Ask for the run's idle wake-up: posted once every agent of the run has ended."""
    k = state.keys
    op = wake_when_done(k.children_open(), RUN_ROOT, k.wake_requests(), k.wakeups(), 100_000,
                        idle_payload(state.run_id))
    state.records.update(k.record("wake", RUN_ROOT), lambda _cur: Write(b"{}", ops=[op]))


def run_limits(settings: SwarmSettings, limits: RunLimits | None) -> RunLimits:
    """The run's limits: what the job set, else ``SWARM_RUN_MAX_*`` of the submitting process (recorded
    in the run, so every worker enforces the same ones)."""
    base = RunLimits(max_agents=settings.run_max_agents, max_concurrent_agents=settings.run_max_concurrent_agents,
                     max_cost_usd=settings.run_max_cost_usd)
    if limits is None:
        return base
    return RunLimits.model_validate({**base.model_dump(), **limits.model_dump(exclude_unset=True)})


def start_agents(services: SwarmClient, specs: list[AgentSpec], roots: list[ChildRequest], *,
                 kind: str = "agents", title: str = "", limits: RunLimits | None = None,
                 models: dict[str, str] | None = None, spec_data: JsonValue = None,
                 run_id: str | None = None) -> RunRecord:
    """Create a run, store its specs, start its root agents and watch for the run going idle."""
    runs: RunStore = services.runs
    run = runs.create(kind, title=title, spec=spec_data, limits=run_limits(services.settings, limits),
                      models=models, run_id=run_id)
    ctx = services.run(run.id)
    ctx.specs.put_all(specs)
    outcome = spawn(ctx.agents, ctx.specs.get, roots, limits=run.limits, parent=None)
    if outcome.refused:
        reasons = "; ".join(f"{r.spec}: {why}" for r, why in outcome.refused)
        runs.transition(run.id, RunStatus.FAILED, reason=f"could not start root agents: {reasons}")
        return runs.get(run.id)
    watch_idle(ctx.state)
    services.schedule(ctx, outcome.started)
    return run


def all_agents(ctx: RunContext) -> list[AgentState]:
    """Every agent of the run (read in pages of 500)."""
    ids = sorted({a for status in AgentStatus for a in ctx.agents.ids(status)})
    out: list[AgentState] = []
    for start in range(0, len(ids), 500):
        out += [a for a in ctx.agents.get_many(ids[start:start + 500]) if a is not None]
    return out


def tally_agents(ctx: RunContext, agents: list[AgentState] | None = None) -> Tally:
    """The run's agents counted by status, role and reason class, with the starts its caps refused."""
    tally = Tally().add_all(all_agents(ctx) if agents is None else agents)
    tally.refuse(int(ctx.agents.usage("run").get("agents_refused", 0)))
    if tally.refused:
        cap = ctx.record().limits.max_agents
        tally.notes.append(f"{tally.refused} agent(s) were never started: the run may start at most {cap} agents "
                           "(raise --max-agents or SWARM_RUN_MAX_AGENTS)")
    return tally


__all__ = ["AgentStore", "RunStore", "SpecBook", "all_agents", "run_limits", "start_agents", "tally_agents",
           "watch_idle"]
