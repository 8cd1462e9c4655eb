"""Who consumes the queues a run needs: a run whose next steps wait on a queue no live worker reads
would otherwise show "running, 1 active" forever (a review on a shared Redis with no worker on ``scan``).

A run needs the queue of every agent of it that waits for a worker (READY: its step is on the queue).
Workers register the queues they consume (``swarm_tasks.worker.control_loop`` heartbeats them, with their load);
a needed queue none of them consumes is *starved*, and the warning says since when: the oldest waiting
agent's wait. The CLI (``status``, ``watch``, ``workers``), the dashboard and the API read it here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coordination.registry import Kind, Registration
from coordination.run import global_registry
from swarm_tasks.agents.services import RunContext, SwarmClient
from swarm_tasks.agents.state import AgentStatus
from swarm_tasks.display import duration

MAX_READ = 2_000  # waiting agents read to place them on queues (the oldest first is what the warning needs)


@dataclass(frozen=True)
class QueueNeed:
    """One queue a run needs now: its waiting agents, the oldest wait, and the live workers reading it."""

    queue: str
    waiting: int  # the run's agents whose step is on this queue
    waiting_s: float  # how long the oldest of them has waited
    consumers: list[str] = field(default_factory=list)  # live workers consuming it (Celery node names)

    @property
    def starved(self) -> bool:
        return self.waiting > 0 and not self.consumers

    def warning(self) -> str:
        """One sentence for a starved queue: what waits, for how long, and what to do."""
        return (f"queue {self.queue} has no consumer: {self.waiting} agent(s) waiting for it, the oldest for "
                f"{duration(self.waiting_s)}; start a worker on it (celery -A swarm_tasks worker -Q {self.queue})")

    def as_json(self) -> dict[str, object]:
        return {"queue": self.queue, "waiting": self.waiting, "waiting_s": round(self.waiting_s, 1),
                "consumers": self.consumers, "starved": self.starved}


def live_workers(client: SwarmClient) -> list[Registration]:
    """The live worker processes, read only (the dashboard's Redis user may not write)."""
    return global_registry(client.client, client.settings).discover(kind=Kind.WORKER, prune=False)


def consumers_by_queue(workers: list[Registration]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for worker in workers:
        for queue in worker.capabilities:
            out.setdefault(queue, []).append(worker.meta.get("celery_name", worker.id))
    return out


def queue_needs(client: SwarmClient, ctx: RunContext, workers: list[Registration] | None = None) -> list[QueueNeed]:
    """The queues the run's waiting agents are on, with their consumers (starved ones first)."""
    ids = ctx.agents.ids(AgentStatus.READY)[:MAX_READ]
    if not ids:
        return []
    now = ctx.state.records.now()
    oldest: dict[str, float] = {}
    count: dict[str, int] = {}
    queues: dict[str, str] = {}  # spec -> queue
    for agent in ctx.agents.get_many(ids):
        if agent is None or agent.status is not AgentStatus.READY:
            continue
        if agent.spec not in queues:
            spec = ctx.specs.get(agent.spec)
            queues[agent.spec] = spec.queue or client.settings.queue_for(spec.role)
        queue = queues[agent.spec]
        count[queue] = count.get(queue, 0) + 1
        oldest[queue] = min(oldest.get(queue, now), agent.updated_at)
    readers = consumers_by_queue(live_workers(client) if workers is None else workers)
    needs = [QueueNeed(queue=q, waiting=n, waiting_s=max(0.0, now - oldest[q]), consumers=sorted(readers.get(q, [])))
             for q, n in count.items()]
    return sorted(needs, key=lambda n: (not n.starved, n.queue))


def starved(client: SwarmClient, ctx: RunContext) -> list[QueueNeed]:
    return [n for n in queue_needs(client, ctx) if n.starved]


__all__ = ["QueueNeed", "consumers_by_queue", "live_workers", "queue_needs", "starved"]
