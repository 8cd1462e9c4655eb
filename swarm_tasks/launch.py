"""Start a run of agents from any process that can reach the Redis, and end it when it goes idle."""

from __future__ import annotations

import json

from pydantic import JsonValue

from coordination.run import RunState
from coordination.store import Write, wake_when_done
from swarm_tasks.agents.children import ChildRequest, spawn
from swarm_tasks.agents.runner import RunContext, SwarmClient
from swarm_tasks.agents.spec import AgentSpec, SpecBook
from swarm_tasks.agents.state import AgentStatus, AgentStore
from swarm_tasks.control import idle_payload
from swarm_tasks.runs import RUN_ROOT, RunLimits, RunRecord, RunStatus, RunStore


def watch_idle(state: RunState) -> None:
    """Ask for the run's idle wake-up: posted once every agent of the run has ended."""
    k = state.keys
    op = wake_when_done(k.children_open(), RUN_ROOT, k.wake_requests(), k.wakeups(), 100_000,
                        idle_payload(state.run_id))
    state.records.update(k.record("wake", RUN_ROOT), lambda _cur: Write(b"{}", ops=[op]))


def start_agents(services: SwarmClient, specs: list[AgentSpec], roots: list[ChildRequest], *,
                 kind: str = "agents", title: str = "", limits: RunLimits | None = None,
                 models: dict[str, str] | None = None, spec_data: JsonValue = None,
                 run_id: str | None = None) -> RunRecord:
    """Create a run, store its specs, start its root agents and watch for the run going idle."""
    runs: RunStore = services.runs
    run = runs.create(kind, title=title, spec=spec_data, limits=limits, models=models, run_id=run_id)
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


def root_results(ctx: RunContext) -> list[dict[str, JsonValue]]:
    agents = ctx.agents
    roots = [a for a in agents.get_many(sorted(agents.ids(AgentStatus.DONE) + agents.ids(AgentStatus.FAILED)
                                               + agents.ids(AgentStatus.STOPPED) + agents.ids(AgentStatus.CANCELLED)))
             if a is not None and a.parent is None]
    return [{"agent": a.id, "spec": a.spec, "status": a.status.value, "reason": a.reason, "result": a.result}
            for a in roots]


def on_idle(services: SwarmClient, run: RunRecord) -> None:
    """Idle hook of plain agent runs: the run is complete; its result is what the root agents returned."""
    ctx = services.run(run.id)
    results = root_results(ctx)
    failed = [r for r in results if r["status"] != AgentStatus.DONE.value]
    status = RunStatus.COMPLETED if not failed else RunStatus.FAILED
    reason = None if not failed else f"{len(failed)} of {len(results)} root agents did not finish: " + json.dumps(
        [r["reason"] for r in failed])[:500]
    services.runs.transition(run.id, status, reason=reason, result={"roots": results},
                             only_from=(RunStatus.RUNNING, RunStatus.FINALIZING))


__all__ = ["AgentStore", "RunStore", "SpecBook", "on_idle", "start_agents", "watch_idle"]
