"""Run one step of an agent: acquire its turn by compare-and-set, run the turn, record it, schedule the next.

A step message names ``(run, agent, seq)``. Only a message whose ``seq`` matches the agent's record
and whose turn nobody holds can run, so a redelivered or duplicated message is a cheap no-op. The
turn is held as a lease (the agent's version is the fencing token, extended while the turn runs); a
worker that dies mid-turn loses the lease, the sweeper hands the agent to another worker, and
whatever the dead worker did not record never happened as far as the swarm is concerned.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from enum import StrEnum

from coordination.errors import LeaseLost, NotFound, VersionConflict
from swarm_tasks.agents.services import AgentServices, Holder, RunContext, run_is_live
from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.agents.turn import Turn
from swarm_tasks.errors import RecordSignatureError, StoppedBySignal
from swarm_tasks.outcome import ReasonClass
from swarm_tasks.runs import RunStatus

log = logging.getLogger("swarm_tasks.agents")


class StepOutcome(StrEnum):
    """What a step message led to."""

    RAN = "ran"
    STALE = "stale"  # the message names an old seq: a duplicate or a resend that lost the race
    BUSY = "busy"  # another worker holds the turn
    NOT_READY = "not_ready"  # queued or waiting for sub-agents
    ENDED = "ended"  # the agent had already ended
    LOST_RACE = "lost_race"  # another worker acquired the same turn first
    LEASE_LOST = "lease_lost"  # our hold expired mid-turn; nothing we did was recorded
    MISSING = "missing"
    FAILED = "failed"  # the turn raised; nothing of it was recorded and it is retried after a pause
    GAVE_UP = "gave_up"  # the turn was started too often without being recorded: the agent failed
    REFUSED = "refused"  # its run or spec does not match its signature: nothing was run, the run failed


class AgentRunner:
    """Runs steps of agents; one instance per worker process, shared by all its concurrent steps."""

    def __init__(self, services: AgentServices) -> None:
        self.services = services
        self._owner_seq = 0

    def step(self, run_id: str, agent_id: str, seq: int, *, chain: Callable[[], bool] | None = None) -> StepOutcome:
        """Run the step ``seq`` of the agent. ``chain``: asked whenever the agent goes on at once; while it
        says True the agent's next steps run here, one after another, instead of being sent as messages.
        Each is acquired and recorded as its own turn, so a crash between two loses nothing: the
        sweeper re-sends a recorded step that nobody took."""
        while True:
            outcome, turn = self._step(run_id, agent_id, seq, chain)
            if turn is None or not turn.chained:
                return outcome
            seq = turn.agent.seq

    def _step(self, run_id: str, agent_id: str, seq: int,
              chain: Callable[[], bool] | None) -> tuple[StepOutcome, Turn | None]:
        services = self.services
        ctx = services.run(run_id)
        try:
            agent, version = ctx.agents.load(agent_id)
        except NotFound:
            return StepOutcome.MISSING, None
        if agent.status.terminal:
            return StepOutcome.ENDED, None
        if agent.seq != seq:
            return StepOutcome.STALE, None
        now = ctx.state.records.now()
        if agent.status is AgentStatus.RUNNING and (agent.owner_expires_at or 0) > now:
            return StepOutcome.BUSY, None
        if agent.status not in (AgentStatus.READY, AgentStatus.RUNNING):
            return StepOutcome.NOT_READY, None
        try:  # with signing on, a run or spec changed in Redis since its submitter signed it is refused
            spec = ctx.specs.get(agent.spec)
            record = ctx.record()
            if not run_is_live(record):  # read again before ending an agent for it: a run may be reopened
                record = ctx.record(max_age_s=0.0)
        except RecordSignatureError as exc:
            return self.refuse(ctx, agent, version, exc), None
        lease_s = services.settings.agent_turn_lease_s
        self._owner_seq += 1
        held = agent.evolve(status=AgentStatus.RUNNING, owner=f"{services.node}#{self._owner_seq}",
                            owner_expires_at=now + lease_s, due_at=now + lease_s, updated_at=now,
                            started_at=agent.started_at or now, last_node=services.node,
                            turns_lost=agent.turns_lost + (1 if agent.status is AgentStatus.RUNNING else 0),
                            attempts=agent.attempts + 1)
        holder = Holder(ctx, agent, version, lease_s)
        try:
            holder.save(held)
        except LeaseLost:
            return StepOutcome.LOST_RACE, None
        if agent.status is AgentStatus.RUNNING:  # a worker lost a turn: say whose, and by how much it lapsed
            log.warning("agent %s: took over the turn held by %s, lapsed %.1f s ago (server clock)", agent_id,
                        agent.owner, now - (agent.owner_expires_at or now))
        turn = Turn(services, ctx, spec, holder, chain)
        try:
            if held.attempts > services.settings.agent_max_turn_attempts:  # it killed or stalled its workers
                turn.give_up()
                return StepOutcome.GAVE_UP, None
            turn.run(record)
            return StepOutcome.RAN, turn
        except LeaseLost:
            log.warning("agent %s lost its turn lease mid-turn; its work was not recorded", agent_id)
            return StepOutcome.LEASE_LOST, None
        except Exception as exc:  # the turn raised: retry it a bounded number of times, never endlessly
            outcome = self.failed(turn, exc)
            if turn.chained:  # it went on (recorded) and then raised: its next step is sent after all
                services.send(ctx, [turn.agent])
            return outcome, None

    def failed(self, turn: Turn, exc: Exception) -> StepOutcome:
        """Record a turn that raised: retried after a pause, or, past ``agent_max_turn_attempts``
        attempts, the agent fails with the error as its reason. If even that cannot be written (Redis
        is away), the turn's lease lapses and the sweeper hands it on, still counted."""
        agent = turn.agent
        error = self.services.redact(f"{type(exc).__name__}: {exc}")[:1000]
        if agent.status is not AgentStatus.RUNNING:
            # Its outcome was written (it ended, waits or goes on) and something after that raised: the
            # record stands. Retrying the turn would write over it (an ended agent made READY again is
            # counted as ending twice, and its run's idle wake-up comes while others still run).
            log.warning("after the turn of agent %s was recorded (%s), %s; the record stands", agent.id,
                        agent.status.value, error)
            return StepOutcome.RAN
        limit = self.services.settings.agent_max_turn_attempts
        # counted like any other (no stop signal may redeliver a turn endlessly), but not a crash to trace
        log.warning("turn of agent %s raised (attempt %d of %d): %s", agent.id, agent.attempts, limit, error,
                    exc_info=agent.attempts == 1 and not isinstance(exc, StoppedBySignal))
        try:
            if agent.attempts >= limit:
                turn.give_up(error)
                return StepOutcome.GAVE_UP
            turn.retry_later(error)
        except LeaseLost:
            return StepOutcome.LEASE_LOST
        except Exception as again:  # whatever it is, the lease and the sweeper take over
            log.warning("could not record the failed turn of agent %s: %s: %s", agent.id, type(again).__name__,
                        again)
        return StepOutcome.FAILED


    def refuse(self, ctx: RunContext, agent: AgentState, version: int, exc: RecordSignatureError) -> StepOutcome:
        """Act on nothing of a run whose records do not match their signatures: fail the run and this
        agent with the reason (the same for every agent of the run that gets a turn)."""
        reason = str(exc)
        log.error("run %s: %s", ctx.run_id, reason)
        self.services.runs.transition(ctx.run_id, RunStatus.FAILED, reason=reason,
                                      only_from=(RunStatus.RUNNING, RunStatus.FINALIZING))
        now = ctx.state.records.now()
        with contextlib.suppress(VersionConflict):  # another worker moved it on: it meets the same refusal
            ctx.agents.save(agent, version, agent.evolve(
                status=AgentStatus.FAILED, reason=reason, reason_class=ReasonClass.CRASH, ended_at=now,
                updated_at=now, owner=None, owner_expires_at=None, due_at=None))
        return StepOutcome.REFUSED
