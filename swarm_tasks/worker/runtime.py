"""The per-process runtime of a worker: pool threads run turns; one asyncio loop carries their model calls.

Why this design (measured with ``python -m bench agents``, 2 cores, mock model server, see
bench/README.md). Agents are durable records in Redis, so "thousands of agents per machine" means
thousands alive at once, not thousands of threads: a process only needs as many *turns in flight*
as keep the CPU busy while models answer.

- First design, every turn a coroutine on the process's event loop: the loop blocked on every
  synchronous Redis round trip of every turn (load, acquire, save), so all turns waited for each
  other: 35 turns/s where bare litellm did 137.
- Now: Celery's threads pool runs each step task in its own thread, which does the Redis work,
  tools and bookkeeping (threads release the GIL on I/O and overlap), and hands only the model call
  to this process's single event loop (``run_coroutine_threadsafe``), where thousands of HTTP calls
  interleave on litellm's cheapest path (``acompletion``). The pool thread waits for the reply,
  extending the turn's lease meanwhile, so Celery acknowledges the message after the turn (late ack)
  and Flower shows real durations. 1,000 agents x 3 turns at 1 s: 0.54x the bare ceiling.
- One thread per alive agent does not scale: 2,584 threads per process for 5,136 agents gave 20.6
  turns/s (0.22x), lost to GIL contention. Bounding the pool to 512 in-flight turns per process (the
  default ``SWARM_WORKER_CONCURRENCY``) with all 5,136 agents alive: 85.4 turns/s, 0.91x the bare
  ceiling of 93.6, 828 MB for two workers. At 2 s latency 512 in-flight turns per process already
  exceed what 2 cores drive through litellm; the rest of the agents wait on the queue, costing no
  memory in the worker.
- Not chosen: prefork (one turn per ~90 MB process); gevent (monkey-patching under Celery's Redis
  transport, with known re-delivery and reconnect bugs, FIELD-NOTES).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import redis

from coordination.connection import RedisHandle
from coordination.run import record_store
from swarm_tasks.agents.runner import AgentRunner, StepOutcome
from swarm_tasks.agents.services import AgentServices, Scheduler
from swarm_tasks.agents.toolset import ToolRegistry, default_tools
from swarm_tasks.errors import RecordSignatureError
from swarm_tasks.plugins import Workflows, installed
from swarm_tasks.runs import RunStatus, RunStore
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.worker.control_loop import ControlLoop

if TYPE_CHECKING:
    from swarm_tasks.host.sandbox import Sandbox
    from swarm_tasks.models.gateway import ModelGateway

log = logging.getLogger("swarm_tasks.worker.runtime")


def _make_gateway(settings: SwarmSettings, client: redis.Redis, now: Callable[[], float]) -> ModelGateway:
    from coordination.keys import GLOBAL_SCOPE, Keys
    from coordination.limiter import CallLimiter
    from swarm_tasks.models.gateway import ModelGateway

    # One limiter for every run: a provider's limits are per account, whichever run calls it.
    return ModelGateway(settings, limiter=CallLimiter(client, Keys(settings.key_prefix, GLOBAL_SCOPE), now))


def _make_sandbox(settings: SwarmSettings) -> Sandbox:
    from swarm_tasks.host.sandbox import make_sandbox

    return make_sandbox(settings)


async def _cancel_pending() -> None:
    if "litellm" in sys.modules:  # stop litellm's logging worker first: it re-queues what is cancelled under it
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

        with contextlib.suppress(Exception):
            await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), 2.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(GLOBAL_LOGGING_WORKER.stop(), 2.0)
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


class StepStats:
    """This process's agent steps: in flight now, and run since it started (what ``swarm workers`` shows
    per worker, as Flower shows active and processed tasks)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()  # counters shared by the pool threads of this one process
        self.active = 0
        self.processed = 0
        self.started_at = time.time()

    def begin(self) -> None:
        with self._guard:
            self.active += 1

    def end(self) -> None:
        with self._guard:
            self.active -= 1
            self.processed += 1

    def snapshot(self) -> dict[str, str]:
        """As registry metadata (strings): active, processed, load average, start time."""
        load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else ""
        return {"active": str(self.active), "processed": str(self.processed), "load": load,
                "started_at": f"{self.started_at:.0f}"}


def node_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class WorkerRuntime:
    """Redis, the model gateway, tools, the agent runner, the event loop and the control loop of one process,
    with the workflows it runs (their tools in its registry, their idle hooks in :attr:`workflows`)."""

    def __init__(self, settings: SwarmSettings, handle: RedisHandle, scheduler: Scheduler, *,
                 workflows: Workflows | None = None, tools: ToolRegistry | None = None, node: str | None = None,
                 on_idle: Callable[[str], None] | None = None, control: bool = True,
                 queues: list[str] | None = None, celery_name: str | None = None) -> None:

        self.settings = settings
        self.handle = handle
        self.workflows = installed() if workflows is None else workflows
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._run_loop, name="swarm-agents-loop", daemon=True)
        self._loop_thread.start()
        records = record_store(handle.client, settings)
        self.services = AgentServices(
            settings=settings, client=handle.client, records=records,
            runs=RunStore(handle.client, records, settings),
            gateway_factory=lambda: _make_gateway(settings, handle.client, records.now),
            loop=self.loop,
            tools=tools or self.tool_registry(self.workflows), scheduler=scheduler, node=node or node_name(),
            tool_executor=ThreadPoolExecutor(max_workers=64, thread_name_prefix="swarm-tool"),
            sandbox_factory=lambda: _make_sandbox(settings))
        self.runner = AgentRunner(self.services)
        self.stats = StepStats()
        self.control: ControlLoop | None = None
        if control:  # a worker: warm up before its control loop says it is ready
            self.workflows.warm_up()
            # What is loaded by now (litellm, Celery, the analyzers: hundreds of thousands of objects) lives as
            # long as the worker: kept out of the collector's full passes, which otherwise walk all of it
            # again and again while a run allocates (a tenth of a second each in a review's report).
            gc.freeze()
            self.control = ControlLoop(self.services, on_idle or (lambda _run: None), queues=queues,
                                       celery_name=celery_name, stats=self.stats.snapshot)
            self.control.start()

    @staticmethod
    def tool_registry(workflows: Workflows) -> ToolRegistry:
        """The agent runtime's tools and every workflow's."""
        return default_tools(workflows.tools())

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run_step(self, run_id: str, agent_id: str, seq: int, *, chain_s: float = 0.0,
                 stopping: Callable[[], bool] = lambda: False) -> StepOutcome:
        """Run one step in the calling (pool) thread; its model call goes through the process's loop.
        ``chain_s``: for that long the agent's following steps, when it goes on at once, run here too
        instead of being sent, unless ``stopping`` says the worker is shutting down."""
        chain = None
        if chain_s > 0:
            until = time.monotonic() + chain_s

            def chain() -> bool:
                return time.monotonic() < until and not stopping()

        self.stats.begin()
        try:
            return self.runner.step(run_id, agent_id, seq, chain=chain)
        finally:
            self.stats.end()

    def run_idle(self, run_id: str) -> str:
        """A run has no live agent: the idle hook of its kind's workflow decides what comes next. Returns the
        run's status and reason afterwards (what Flower shows as the ``swarm.run.idle`` task's result)."""
        runs = self.services.runs
        try:
            run = runs.get(run_id)
        except RecordSignatureError as exc:  # changed in Redis since it was signed: its workflow acts on nothing
            runs.transition(run_id, RunStatus.FAILED, reason=str(exc),
                            only_from=(RunStatus.RUNNING, RunStatus.FINALIZING))
            return f"refused: {exc}"
        workflow = self.workflows.get(run.kind)
        if workflow is None:
            return f"no workflow plug-in for run kind {run.kind!r} on this worker"
        workflow.on_idle(self.services, run)
        after = runs.get(run_id)
        return after.status.value + (f": {after.reason}" if after.reason else "")

    def close(self) -> None:
        if self.control is not None:
            self.control.stop()
        if self.loop.is_running():
            # Cancel what still runs on the loop (litellm's logging worker, stray turns) before
            # stopping it, so nothing is destroyed while pending.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_cancel_pending(), self.loop).result(5)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(5)
        if not self.loop.is_running():
            self.loop.close()
        self.services.tool_executor.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            self.handle.client.close()
