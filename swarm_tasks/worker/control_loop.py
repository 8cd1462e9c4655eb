"""The control loop every worker process runs beside its tasks: wake-ups, sweeps, promotions.

Any number of processes run it at once; every change it makes is a compare-and-set, so two
sweepers never both act. It (a) wakes agents whose sub-agents all ended and hands idle runs to
their workflow, (b) returns expired task-board claims, (c) re-sends steps that went missing and
takes turns back from workers that died holding them, and (d) gives free run slots to queued agents.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from coordination.errors import CoordinationError, NotFound, VersionConflict
from coordination.registry import Kind
from coordination.replies import texts
from coordination.run import global_registry
from coordination.store import OUTAGE_ERRORS, RECONNECT
from coordination.streams import StreamGroup
from swarm_tasks.agents.children import all_ended
from swarm_tasks.agents.services import AgentServices, RunContext, SwarmClient
from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.errors import BrokerUnavailable
from swarm_tasks.launch import watch_idle
from swarm_tasks.models.preflight import advertised_names
from swarm_tasks.runs import RUN_ROOT, RunStatus

log = logging.getLogger("swarm_tasks.worker.control_loop")

WAITING_RECHECK_S = 300.0
_AWAY: tuple[type[Exception], ...] = (*OUTAGE_ERRORS, BrokerUnavailable)  # a restart or failover


class ControlLoop:
    """Wake-ups and sweeps for every live run, in a daemon thread of a worker process."""

    def __init__(self, services: AgentServices, on_idle: Callable[[str], None], *, group: str = "control",
                 queues: list[str] | None = None, celery_name: str | None = None,
                 stats: Callable[[], dict[str, str]] | None = None) -> None:
        self.services = services
        self.stats = stats or dict
        self.registry = global_registry(services.client, services.settings)
        self.queues = queues or []
        self.celery_name = celery_name or services.node
        self._beat_at = 0.0
        self._model_env = advertised_names(services.settings)  # names only: a submitter checks for keys
        self.on_idle = on_idle
        self.group = group
        self.consumer = services.node
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runs: list[str] = []
        self._newest: str | None = None
        self._runs_at = 0.0
        self._swept_at = 0.0
        self._groups: dict[str, StreamGroup] = {}
        self.blocking = services.client  # wake-ups are read with a short block

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="swarm-control", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with contextlib.suppress(Exception):
            self.registry.deregister(self.services.node)

    def heartbeat(self) -> None:
        """Keep this worker process discoverable (``swarm workers``); it vanishes 15 s after it dies."""
        if time.monotonic() - self._beat_at < 5.0:
            return
        self._beat_at = time.monotonic()
        self.registry.register(self.services.node, kind=Kind.WORKER, role="worker", node=self.services.node,
                               capabilities=[q for q in self.queues if q], ttl_s=15.0,
                               meta={"celery_name": self.celery_name, "pid": str(os.getpid()),
                                     "host": socket.gethostname(), "model_env": self._model_env, **self.stats()})

    def _loop(self) -> None:
        outage = 0  # failed cycles in a row while Redis (or the broker) is unreachable
        away = "Redis"
        while not self._stop.is_set():
            try:
                self.cycle(block_ms=500)
            except _AWAY as exc:  # a restart or failover: wait for it as clients do
                if outage == 0:  # one line, no traceback; an unsent idle hook stays pending and is read again
                    away = "the broker" if isinstance(exc, BrokerUnavailable) else "Redis"
                    log.warning("%s unreachable (%s); the control loop retries until it is back", away, exc)
                self._stop.wait(RECONNECT.delay_s(outage))
                outage += 1
                continue
            except Exception:  # keep the loop alive through bugs; say so
                log.exception("control loop cycle failed; retrying")
                self._stop.wait(1.0)
            if outage:
                log.warning("%s is back; the control loop goes on", away)
                outage = 0

    # -- one cycle -------------------------------------------------------------------------------
    def live_runs(self) -> list[str]:
        # A full listing every 2 s, and at once when a new run appears: a short run's idle wake-up
        # otherwise waited up to 2 s for the loop to learn of the run (most of a small review's time).
        runs = self.services.runs
        head = texts(runs.redis.zrevrange(runs.index_key, 0, 0))
        newest = head[0] if head else None
        if time.monotonic() - self._runs_at > 2.0 or newest != self._newest:
            self._runs = [r.id for r in runs.list(limit=200)
                          if r.status in (RunStatus.RUNNING, RunStatus.FINALIZING)]
            self._newest = newest
            self._runs_at = time.monotonic()
        return self._runs

    def cycle(self, *, block_ms: int = 0) -> None:
        self.heartbeat()
        runs = self.live_runs()
        for run_id in runs:
            self.handle_wakeups(run_id)
        if time.monotonic() - self._swept_at >= self.services.settings.sweep_interval_s:
            self._swept_at = time.monotonic()
            for run_id in runs:
                self.sweep(run_id)
        if block_ms and not runs:
            self._stop.wait(block_ms / 1000)
        elif block_ms:
            self._stop.wait(min(block_ms, 200) / 1000)

    def handle_wakeups(self, run_id: str) -> int:
        ctx = self.services.run(run_id)
        group = self._groups.get(run_id)
        if group is None:
            group = self._groups[run_id] = ctx.state.board.wakeups(self.group)
        handled = 0
        for entry in group.read(self.consumer, count=100):
            wake = ctx.state.board.as_wakeup(entry)
            try:
                payload = json.loads(wake.payload)
            except json.JSONDecodeError:
                payload = {}
            if payload.get("kind") == "agent":
                self.wake_agent(ctx, str(payload.get("agent")))
            elif payload.get("kind") == "run-idle" or wake.parent == RUN_ROOT:
                self.run_idle(ctx)
            group.ack(entry.id)
            handled += 1
        return handled

    def run_idle(self, ctx: RunContext) -> None:
        """The run's idle wake-up: hand it to its workflow, unless agents were started in it since (the
        run was reopened by ``swarm retry``): then the wake-up is stale, and is asked for again."""
        if not has_open_agents(ctx):
            self.on_idle(ctx.run_id)
            return
        watch_idle(ctx.state)

    # -- agents ----------------------------------------------------------------------------------
    def wake_agent(self, ctx: RunContext, agent_id: str) -> bool:
        return wake_agent(self.services, ctx, agent_id)

    def sweep(self, run_id: str) -> None:
        ctx = self.services.run(run_id)
        try:
            ctx.state.board.sweep()
            sweep_agents(self.services, ctx)
            self.services.promote_and_schedule(ctx, deferrable=True)
        except CoordinationError as exc:
            log.warning("sweep of run %s failed: %s", run_id, exc)


def has_open_agents(ctx: RunContext) -> bool:
    """Does the run have an agent that has not ended (its idle wake-up would be stale)?"""
    return int(ctx.state.redis.hget(ctx.state.keys.children_open(), RUN_ROOT) or 0) > 0


def wait_over(ctx: RunContext, agent: AgentState) -> bool:
    """Every sub-agent the agent waits for has ended (and, waiting for tasks, every task it filed)."""
    if not all_ended(ctx.agents, agent.waiting_on):
        return False
    return not agent.waiting_tasks or ctx.state.board.open_children(agent.id) == 0


def wake_agent(client: SwarmClient, ctx: RunContext, agent_id: str) -> bool:
    """A waiting agent whose sub-agents (or tasks) all ended becomes READY and its step is sent."""
    for _ in range(8):
        try:
            agent, version = ctx.agents.load(agent_id)
        except NotFound:
            return False
        if agent.status is not AgentStatus.WAITING or not wait_over(ctx, agent):
            return False
        now = ctx.state.records.now()
        new = agent.evolve(status=AgentStatus.READY, seq=agent.seq + 1, updated_at=now,
                           due_at=now + client.settings.agent_step_grace_s)
        try:
            _, saved = ctx.agents.save(agent, version, new)
        except VersionConflict:
            continue
        client.send(ctx, [saved])
        return True
    return False


def sweep_agents(client: SwarmClient, ctx: RunContext, *, now: float | None = None) -> int:
    """Act on agents whose deadline passed: resend lost steps, reclaim dead turns, recheck waits.
    ``now`` later than the clock forces the sweep (``swarm resume``)."""
    acted = 0
    settings = client.settings
    horizon = now if now is not None else ctx.state.records.now()
    for agent_id in ctx.agents.due(horizon, limit=10_000 if now is not None else 200):
        try:
            agent, version = ctx.agents.load(agent_id)
        except NotFound:
            continue
        clock = ctx.state.records.now()
        if agent.due_at is None or agent.due_at > horizon or agent.status.terminal:
            continue
        if agent.status is AgentStatus.WAITING:
            if wait_over(ctx, agent):
                acted += wake_agent(client, ctx, agent_id)
                continue
            new = agent.evolve(due_at=clock + WAITING_RECHECK_S)
        elif agent.status is AgentStatus.RUNNING:  # its worker died (or stalled past its lease)
            if (agent.owner_expires_at or 0) > clock:
                continue  # a forced sweep never takes a live turn
            new = agent.evolve(status=AgentStatus.READY, seq=agent.seq + 1, owner=None, owner_expires_at=None,
                               turns_lost=agent.turns_lost + 1, due_at=clock + settings.agent_step_grace_s,
                               updated_at=clock)
        elif agent.status is AgentStatus.READY:  # its step message went missing or waits long
            new = agent.evolve(resent=agent.resent + 1, due_at=clock + settings.agent_step_grace_s)
        else:
            continue
        try:
            _, saved = ctx.agents.save(agent, version, new)
        except VersionConflict:
            continue  # someone else acted on it first
        if agent.status is AgentStatus.RUNNING:  # a worker lost a turn: say whose, and by how much it lapsed
            log.warning("agent %s: the turn held by %s lapsed %.1f s ago (server clock); handed on", agent_id,
                        agent.owner, clock - (agent.owner_expires_at or clock))
        if saved.status is AgentStatus.READY:
            log.info("re-sending step of agent %s (%s)", agent_id, agent.status.value)
            client.send(ctx, [saved])
            acted += 1
    return acted
