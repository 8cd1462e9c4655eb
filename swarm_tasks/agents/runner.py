"""Run one step of an agent: acquire its turn by compare-and-set, run the turn, record it, schedule the next.

A step message names ``(run, agent, seq)``. Only a message whose ``seq`` matches the agent's record
and whose turn nobody holds can run, so a redelivered or duplicated message is a cheap no-op. The
turn is held as a lease (the agent's version is the fencing token, extended while the turn runs); a
worker that dies mid-turn loses the lease, the sweeper hands the agent to another worker, and
whatever the dead worker did not record never happened as far as the swarm is concerned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import redis

from coordination.errors import LeaseLost, NotFound, VersionConflict
from coordination.run import RunState
from coordination.store import Limit, Op, RecordStore
from swarm_tasks.agents.spec import AgentSpec, SpecBook
from swarm_tasks.agents.state import AgentState, AgentStatus, AgentStore, Usage
from swarm_tasks.agents.toolset import ToolRegistry
from swarm_tasks.errors import RecordSignatureError, StoppedBySignal
from swarm_tasks.models.types import ChatMessage
from swarm_tasks.runs import RunRecord, RunStatus, RunStore
from swarm_tasks.security import Redactor
from swarm_tasks.settings import SwarmSettings

if TYPE_CHECKING:
    from swarm_tasks.agents.turn import Turn
    from swarm_tasks.host.sandbox import Sandbox
    from swarm_tasks.models.gateway import ModelGateway

log = logging.getLogger("swarm_tasks.agents")
T = TypeVar("T")


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


class Scheduler(Protocol):
    """Puts an agent's next step on a queue (Celery in production, an in-process queue in tests)."""

    def enqueue(self, agent: AgentState, queue: str, *, countdown_s: float = 0.0) -> None: ...


class RunContext:
    """Everything of one run a worker needs, cached per process (the run record for a second)."""

    def __init__(self, client: redis.Redis, run_id: str, settings: SwarmSettings, records: RecordStore,
                 runs: RunStore) -> None:
        self.run_id = run_id
        self.state = RunState(client, run_id, settings, records=records)
        self.agents = AgentStore(self.state, step_grace_s=settings.agent_step_grace_s)
        self.specs = SpecBook(client, records, self.state.keys, signer=runs.signer)
        self.runs = runs
        self._record: RunRecord | None = None
        self._record_at = 0.0

    def record(self, max_age_s: float = 1.0) -> RunRecord:
        if self._record is None or time.monotonic() - self._record_at > max_age_s:
            self._record = self.runs.get(self.run_id)
            self._record_at = time.monotonic()
        return self._record


@dataclass(kw_only=True)
class SwarmClient:
    """What any process needs to start and drive runs: Redis, runs, per-run contexts, a scheduler."""

    settings: SwarmSettings
    client: redis.Redis
    records: RecordStore
    runs: RunStore
    scheduler: Scheduler | None = None  # None: a read-only client (dashboard, status)
    _contexts: dict[str, RunContext] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: SwarmSettings, client: redis.Redis, scheduler: Scheduler | None = None) -> SwarmClient:
        from coordination.run import record_store

        records = record_store(client, settings)
        return cls(settings=settings, client=client, records=records, runs=RunStore(client, records, settings),
                   scheduler=scheduler)

    def run(self, run_id: str) -> RunContext:
        ctx = self._contexts.get(run_id)
        if ctx is None:
            if len(self._contexts) > 256:
                self._contexts.clear()
            ctx = self._contexts[run_id] = RunContext(self.client, run_id, self.settings, self.records, self.runs)
        return ctx

    def schedule(self, ctx: RunContext, agents: list[AgentState], *, countdown_s: float = 0.0) -> None:
        """Send the next step of every READY agent in ``agents`` to its queue."""
        for agent in agents:
            if agent.status is AgentStatus.READY:
                if self.scheduler is None:
                    raise RuntimeError("this client was made without a scheduler; it cannot send steps")
                spec = ctx.specs.get(agent.spec)
                self.scheduler.enqueue(agent, spec.queue or self.settings.queue_for(spec.role),
                                       countdown_s=countdown_s)

    def promote_and_schedule(self, ctx: RunContext) -> int:
        """Give free run slots to queued agents and send their first steps."""
        promoted = ctx.agents.promote(ctx.record().limits.max_concurrent_agents)
        self.schedule(ctx, promoted)
        return len(promoted)


@dataclass(kw_only=True)
class AgentServices(SwarmClient):
    """Per-process services of a worker: the client plus model gateway, tools and sandbox."""

    gateway_factory: Callable[[], ModelGateway]
    loop: asyncio.AbstractEventLoop  # the process's loop, running in its own thread: model HTTP calls only
    tools: ToolRegistry
    node: str
    tool_executor: ThreadPoolExecutor
    sandbox_factory: Callable[[], Sandbox] | None = None
    _sandbox: Sandbox | None = None
    _gateway: ModelGateway | None = None
    _redactor: Redactor | None = None
    _gateway_once: threading.Lock = field(default_factory=threading.Lock)

    def model_gateway(self) -> ModelGateway:
        """The model gateway, built once on first use: importing litellm costs seconds and ~200 MB, and
        a worker that only runs deterministic agents never needs it. Call it through
        :meth:`Holder.wait` (``services.tool_executor.submit(services.model_gateway)``) from a turn, so
        a slow first import does not let the turn's lease lapse."""
        if self._gateway is None:
            with self._gateway_once:  # in-process once-only construction, not a shared lock
                if self._gateway is None:
                    self._gateway = self.gateway_factory()
        return self._gateway

    def on_loop(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Hand a coroutine (a model call) to the process's event loop, where thousands interleave."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def redactor(self) -> Redactor:
        if self._redactor is None:
            self._redactor = Redactor.from_settings(self.settings)
        return self._redactor

    def redact(self, text: str) -> str:
        """``text`` without configured secrets or secret-shaped strings (reasons shown in events)."""
        return self.redactor()(text)

    def mask_configured(self, text: str) -> str:
        """``text`` with this deployment's own secrets (API key, Redis password, signing key) masked
        literally: applied to every tool result before it enters a transcript. Shapes are not masked
        there: a transcript quotes the code under review, often as JSON that patterns would corrupt."""
        return self.redactor().mask(text)

    def sandbox(self) -> Sandbox | None:
        """The process's shell sandbox, made on first use (probing bubblewrap costs a subprocess)."""
        if self._sandbox is None and self.sandbox_factory is not None:
            self._sandbox = self.sandbox_factory()
        return self._sandbox


class Holder:
    """The current holder of an agent's turn: its record and the version that fences its writes."""

    def __init__(self, ctx: RunContext, agent: AgentState, version: int, lease_s: float) -> None:
        self.ctx = ctx
        self.agent = agent
        self.version = version
        self.lease_s = lease_s

    def save(self, new: AgentState, *, append: list[ChatMessage] | None = None,
             rewrite: list[ChatMessage] | None = None, usage: Usage | None = None,
             extra_ops: list[Op] | None = None, limits: list[Limit] | None = None) -> None:
        try:
            self.version, self.agent = self.ctx.agents.save(self.agent, self.version, new, append=append,
                                                            rewrite=rewrite, usage=usage, extra_ops=extra_ops,
                                                            limits=limits)
        except VersionConflict as exc:
            raise LeaseLost(exc.key, exc.expected, exc.actual, exists=exc.exists) from None

    def extend(self) -> None:
        now = self.ctx.state.records.now()
        self.save(self.agent.evolve(owner_expires_at=now + self.lease_s, due_at=now + self.lease_s))

    def wait(self, future: Future[T]) -> T:
        """Wait for work done elsewhere (a model call on the loop, a tool on the tool pool), extending
        the lease every third of its length meanwhile. Only the holder's own thread ever writes, so
        its version never races; a lost lease raises :class:`LeaseLost` and the turn is abandoned."""
        while True:
            try:
                return future.result(timeout=self.lease_s / 3)
            except FutureTimeout:
                self.extend()


class AgentRunner:
    """Runs steps of agents; one instance per worker process, shared by all its concurrent steps."""

    def __init__(self, services: AgentServices) -> None:
        self.services = services
        self._owner_seq = 0

    def step(self, run_id: str, agent_id: str, seq: int) -> StepOutcome:
        from swarm_tasks.agents.turn import Turn

        services = self.services
        ctx = services.run(run_id)
        try:
            agent, version = ctx.agents.load(agent_id)
        except NotFound:
            return StepOutcome.MISSING
        if agent.status.terminal:
            return StepOutcome.ENDED
        if agent.seq != seq:
            return StepOutcome.STALE
        now = ctx.state.records.now()
        if agent.status is AgentStatus.RUNNING and (agent.owner_expires_at or 0) > now:
            return StepOutcome.BUSY
        if agent.status not in (AgentStatus.READY, AgentStatus.RUNNING):
            return StepOutcome.NOT_READY
        try:  # with signing on, a run or spec changed in Redis since its submitter signed it is refused
            spec = ctx.specs.get(agent.spec)
            record = ctx.record()
            if not run_is_live(record):  # read again before ending an agent for it: a run may be reopened
                record = ctx.record(max_age_s=0.0)
        except RecordSignatureError as exc:
            return self.refuse(ctx, agent, version, exc)
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
            return StepOutcome.LOST_RACE
        turn = Turn(services, ctx, spec, holder)
        try:
            if held.attempts > services.settings.agent_max_turn_attempts:  # it killed or stalled its workers
                turn.give_up()
                return StepOutcome.GAVE_UP
            turn.run(record)
            return StepOutcome.RAN
        except LeaseLost:
            log.warning("agent %s lost its turn lease mid-turn; its work was not recorded", agent_id)
            return StepOutcome.LEASE_LOST
        except Exception as exc:  # the turn raised: retry it a bounded number of times, never endlessly
            return self.failed(turn, exc)

    def failed(self, turn: Turn, exc: Exception) -> StepOutcome:
        """Record a turn that raised: retried after a pause, or, past ``agent_max_turn_attempts``
        attempts, the agent fails with the error as its reason. If even that cannot be written (Redis
        is away), the turn's lease lapses and the sweeper hands it on, still counted."""
        agent = turn.agent
        error = self.services.redact(f"{type(exc).__name__}: {exc}")[:1000]
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
        from swarm_tasks.outcome import ReasonClass

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


def run_is_live(record: RunRecord) -> bool:
    return record.status in (RunStatus.RUNNING, RunStatus.FINALIZING)


def spec_lookup(specs: SpecBook) -> Callable[[str], AgentSpec]:
    return specs.get
