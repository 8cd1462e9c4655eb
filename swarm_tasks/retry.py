"""Re-running the agents of a run that did not finish (``swarm retry``), in the same run.

An agent that failed (a missing key since fixed, a provider outage), was stopped or was cancelled is
started over where it was: same id, spec, input and place in the agent tree, a fresh conversation and
budget, its earlier attempt's spending kept in the run's totals. A run that had ended is reopened
first: it runs again, its end (status, reason, outcome, result) cleared, and when its last agent ends its
workflow decides the end again: a review merges a new report from every agent's result, the retried
ones' included. Every change is a compare-and-set on the run's and the agents' records, so two retries
of the same run at once re-run each agent once.

A build is not retried agent by agent: its cycles, landed commits and the judge's decisions move on
from the branch tip; ``swarm build`` again on the same branch continues from there.
"""

from __future__ import annotations

from collections.abc import Iterable

from coordination.errors import NotFound, VersionConflict
from swarm_tasks.agents.children import initial_messages
from swarm_tasks.agents.services import RunContext, SwarmClient
from swarm_tasks.agents.spec import AgentKind
from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.errors import JobSpecError
from swarm_tasks.launch import watch_idle
from swarm_tasks.models.types import ChatMessage
from swarm_tasks.runs import RunStatus

UNFINISHED = (AgentStatus.FAILED, AgentStatus.STOPPED, AgentStatus.CANCELLED)
RETRYABLE_KINDS = ("review", "agents")


def retry_agents(client: SwarmClient, run_id: str, *, statuses: Iterable[AgentStatus] = UNFINISHED,
                 role: str | None = None) -> list[AgentState]:
    """Start the run's agents in ``statuses`` (of ``role``) over, reopening the run if it ended; returns
    the agents started over (none: nothing to retry, and the run is left as it was)."""
    record = client.runs.get(run_id)
    if record.kind not in RETRYABLE_KINDS:
        raise JobSpecError(f"run {run_id} is a {record.kind}: only a review's or an agent run's agents are retried "
                           "(a build goes on from its branch tip: run `swarm build` again on the same branch)")
    if record.status is RunStatus.FINALIZING:
        raise JobSpecError(f"run {run_id} is writing its end right now: retry it once it has ended")
    wanted = [s for s in statuses if s in UNFINISHED]
    ctx = client.run(run_id)
    ids = sorted({a for s in wanted for a in ctx.agents.ids(s)})
    candidates = [a for a in ctx.agents.get_many(ids) if a is not None and (role is None or a.role == role)]
    if not candidates:
        return []
    if record.status.terminal:
        client.runs.reopen(run_id, f"{len(candidates)} agent(s) retried")
    started = [a for a in (_start_over(client, ctx, agent.id, wanted) for agent in candidates) if a is not None]
    watch_idle(ctx.state)  # its idle wake-up was spent when it ended; after the retried agents, it comes again
    client.schedule(ctx, [a for a in started if a.status is AgentStatus.READY])
    return started


def _start_over(client: SwarmClient, ctx: RunContext, agent_id: str, wanted: list[AgentStatus]) -> AgentState | None:
    for _ in range(8):
        try:
            agent, version = ctx.agents.load(agent_id)
        except NotFound:
            return None
        if agent.status not in wanted:
            return None  # another retry (or the run's own progress) got there first
        try:
            return ctx.agents.reopen(agent, version, _first_messages(ctx, agent),
                                     max_concurrent=ctx.record().limits.max_concurrent_agents)
        except VersionConflict:
            continue
    return None


def _first_messages(ctx: RunContext, agent: AgentState) -> list[ChatMessage]:
    """The conversation the agent was started with: its instructions and its task."""
    spec = ctx.specs.get(agent.spec)
    if spec.kind is AgentKind.PROGRAM:
        return []
    messages = ctx.agents.conversation(agent)
    if len(messages) >= 2 and [m.get("role") for m in messages[:2]] == ["system", "user"]:
        return messages[:2]
    return initial_messages(spec, agent.id, "", agent.input)  # its log was compacted past its start


__all__ = ["UNFINISHED", "retry_agents"]
