"""Run agents in-process without Celery: a queue of steps drained by the real runner."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from swarm_tasks.agents.state import AgentState
from swarm_tasks.worker.control_loop import ControlLoop
from swarm_tasks.worker.runtime import WorkerRuntime


@dataclass
class LocalScheduler:
    """Collects steps instead of sending them to Celery."""

    steps: deque[tuple[str, str, int]] = field(default_factory=deque)
    sent: int = 0

    def enqueue(self, agent: AgentState, queue: str, *, countdown_s: float = 0.0) -> None:
        self.steps.append((agent.run, agent.id, agent.seq))
        self.sent += 1


def drain(runtime: WorkerRuntime, scheduler: LocalScheduler, *, max_steps: int = 500) -> list[str]:
    """Run queued steps and wake-ups until nothing is left; returns the step outcomes."""
    control = ControlLoop(runtime.services, on_idle=lambda run_id: outcomes.append(f"idle:{run_id}"))
    outcomes: list[str] = []
    for _ in range(max_steps):
        if scheduler.steps:
            run_id, agent_id, seq = scheduler.steps.popleft()
            outcomes.append(runtime.run_step(run_id, agent_id, seq).value)
            continue
        control._runs_at = 0.0  # always look at the current runs
        handled = sum(control.handle_wakeups(run_id) for run_id in control.live_runs())
        if not handled and not scheduler.steps:
            return outcomes
    raise AssertionError(f"agents still running after {max_steps} steps")
