"""What any process needs to drive runs, and what a worker adds for agents' turns: the composition root.

:class:`SwarmClient` (Redis, the run records, per-run contexts, a scheduler) serves every process that
starts, reads or drives runs; :class:`AgentServices` adds a worker's model gateway, tools, sandbox and
event loop; :class:`Holder` fences the writes of the one turn that holds an agent. The worker builds them
(:mod:`swarm_tasks.worker.runtime`); the runner and the turn only use them, so nothing here imports either.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import redis

from coordination.errors import LeaseLost, VersionConflict
from coordination.run import RunState
from coordination.store import Limit, Op, RecordStore
from swarm_tasks.agents.spec import SpecBook
from swarm_tasks.agents.state import AgentState, AgentStatus, AgentStore, Usage
from swarm_tasks.agents.toolset import ToolRegistry
from swarm_tasks.errors import BrokerUnavailable
from swarm_tasks.models.types import ChatMessage
from swarm_tasks.runs import RunRecord, RunStatus, RunStore
from swarm_tasks.security import Redactor
from swarm_tasks.settings import SwarmSettings

if TYPE_CHECKING:
    from swarm_tasks.host.sandbox import Sandbox
    from swarm_tasks.models.gateway import ModelGateway

log = logging.getLogger("swarm_tasks.agents")
T = TypeVar("T")


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

    def promote_and_schedule(self, ctx: RunContext, *, deferrable: bool = False) -> int:
        """Give free run slots to queued agents and send their first steps (``deferrable``: see :meth:`send`)."""
        promoted = ctx.agents.promote(ctx.record().limits.max_concurrent_agents)
        if deferrable:
            self.send(ctx, promoted)
        else:
            self.schedule(ctx, promoted)
        return len(promoted)

    def send(self, ctx: RunContext, agents: list[AgentState], *, countdown_s: float = 0.0) -> bool:
        """:meth:`schedule` for a worker, after the agents' READY records are written: a broker that is
        away is logged, not raised (False). The records already say what comes next and the sweeper
        re-sends every READY agent whose step is not taken within ``agent_step_grace_s``; raising would
        make the caller undo or fail what it recorded (a turn retried over its own ending resurrected an
        ended agent, and a build hung after a RabbitMQ restart)."""
        try:
            self.schedule(ctx, agents, countdown_s=countdown_s)
        except BrokerUnavailable as exc:
            log.warning("%s; the sweeper re-sends it within %.0f s", exc, self.settings.agent_step_grace_s)
            return False
        return True


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

    def built_gateway(self) -> ModelGateway | None:
        """The model gateway if it was built already (no hand-off to the tool pool needed), else None."""
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


def run_is_live(record: RunRecord) -> bool:
    return record.status in (RunStatus.RUNNING, RunStatus.FINALIZING)
