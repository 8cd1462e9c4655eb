"""Start a run of agents from any process that can reach the Redis, and end it when it goes idle."""

from __future__ import annotations

import json

from pydantic import JsonValue

from coordination.run import RunState
from coordination.store import Write, wake_when_done
from swarm_tasks.agents.children import ChildRequest, spawn
from swarm_tasks.agents.runner import RunContext, SwarmClient
from swarm_tasks.agents.spec import AgentSpec, SpecBook
from swarm_tasks.agents.state import AgentState, AgentStatus, AgentStore
from swarm_tasks.control import idle_payload
from swarm_tasks.outcome import Tally, decide
from swarm_tasks.runs import RUN_ROOT, RunLimits, RunRecord, RunStatus, RunStore
from swarm_tasks.settings import SwarmSettings


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


def root_results(agents: list[AgentState], budget_bytes: int = 256_000) -> list[dict[str, JsonValue]]:
    """What each root agent ended with, for the run's result. The run record has a size budget, so results
    beyond ``budget_bytes`` in all are named, not copied (``{"stored_with_agent": id, "bytes": n}``: read
    them with ``RunHandle.agents()``); a run of huge results used to fail its own ending and never end."""
    out: list[dict[str, JsonValue]] = []
    left = budget_bytes
    for a in agents:
        if a.parent is None and a.status.terminal:
            size = len(json.dumps(a.result, separators=(",", ":"), default=str))
            result: JsonValue = a.result if size <= left else {"stored_with_agent": a.id, "bytes": size}
            left -= size if size <= left else 0
            out.append({"agent": a.id, "spec": a.spec, "status": a.status.value, "reason": a.reason,
                        "result": result})
    return out


def on_idle(services: SwarmClient, run: RunRecord) -> None:
    """Idle hook of plain agent runs: completed only if every agent finished; partial if some root finished
    but an agent failed or was stopped (or the agent cap refused one); failed if no root finished."""
    ctx = services.run(run.id)
    agents = all_agents(ctx)
    results = root_results(agents, services.settings.max_record_bytes // 4)
    outcome = decide(tally_agents(ctx, agents), useful=any(r["status"] == AgentStatus.DONE.value for r in results))
    services.runs.transition(run.id, outcome.status, reason=outcome.reason, result={"roots": results},
                             outcome=outcome, only_from=(RunStatus.RUNNING, RunStatus.FINALIZING))


__all__ = ["AgentStore", "RunStore", "SpecBook", "all_agents", "on_idle", "start_agents", "tally_agents",
           "watch_idle"]
