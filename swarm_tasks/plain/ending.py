"""How a plain agent run ends: completed only if every agent finished; partial if some root finished but an
agent failed or was stopped (or the agent cap refused one); failed if no root finished."""

from __future__ import annotations

import json

from pydantic import JsonValue

from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.launch import all_agents, tally_agents
from swarm_tasks.outcome import decide
from swarm_tasks.runs import RunRecord, RunStatus


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
