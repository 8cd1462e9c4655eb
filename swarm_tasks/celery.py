"""The Celery app: ``celery -A swarm_tasks worker -Q agents,review`` works as Celery users expect.

Broker and result backend are the configured Redis (``SWARM_REDIS_URL``) or, when none is set, an
embedded server this process starts and owns. ``SWARM_BROKER_URL`` moves the broker elsewhere: to
RabbitMQ (``amqp://``: durable quorum queues, publisher confirms, per-consumer prefetch) with Redis kept
for coordination and results, or to a single Redis when coordination is a Redis Cluster (kombu cannot
use one). JSON only (pickle refused), late acks with reject-on-worker-lost, prefetch 1, task events on
(Flower sees everything), one queue per role.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import ssl
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

from amqp import exceptions as amqp_errors
from celery import Celery, signals
from celery.worker import state as worker_state
from kombu import pools as kombu_pools
from kombu.entity import Exchange, Queue
from kombu.exceptions import OperationalError
from pydantic import SecretStr

from coordination.connection import RedisHandle, client_options, connect, redact_url
from coordination.settings import CoordinationSettings
from coordination.store import OUTAGE_ERRORS, RECONNECT
from swarm_tasks.agents.runner import StepOutcome
from swarm_tasks.agents.state import AgentState
from swarm_tasks.errors import BrokerUnavailable
from swarm_tasks.runs import RunStatus
from swarm_tasks.security import install_log_redaction
from swarm_tasks.settings import QUEUES, SwarmSettings, get_settings
from swarm_tasks.worker.kombu_fixes import guard_closed_channel, reuse_pool_clients
from swarm_tasks.worker.runtime import WorkerRuntime
from swarm_tasks.worker.task_events import EventsFromTheLoop

log = logging.getLogger("swarm_tasks")


class _Process:
    """This process's Redis connection and worker runtime, made on first use."""

    def __init__(self) -> None:
        self.settings: SwarmSettings | None = None
        self.handle: RedisHandle | None = None
        self.runtime: WorkerRuntime | None = None
        self.celery_name: str | None = None
        self.main_pid = os.getpid()
        self.queues: list[str] = []
        self.guard = threading.Lock()  # once-only initialisation inside one process, not a distributed lock

    def redis(self) -> RedisHandle:
        with self.guard:
            if self.handle is None:
                self.settings = get_settings()
                self.handle = connect(self.settings)
                if self.handle.is_embedded:
                    log.warning(embedded_notice(self.handle))
            return self.handle


def embedded_notice(handle: RedisHandle) -> str:
    """What a worker without SWARM_REDIS_URL says about its Redis: where it is and how others find it
    (the password is never logged: ``swarm redis-url`` prints the whole URL to whoever may read it)."""
    local = handle.local
    if local is None:
        return (f"SWARM_REDIS_URL is not set: started a private embedded Redis at {redact_url(handle.url)}; it "
                "stops with this worker")
    who = "started here" if local.started_here else f"run by process {local.info.owner if local.info else '?'}"
    return (f"SWARM_REDIS_URL is not set: using the embedded Redis of {local.data_dir} ({redact_url(handle.url)}, "
            f"{who}). Workers and swarm commands on this machine with the same SWARM_STATE_DIR use it by "
            "themselves; for others, `swarm redis-url` prints its URL with the password (also in "
            f"{local.data_dir / 'server.json'}, mode 0600). It lives while one of them runs.")


PROCESS = _Process()


def use_settings(settings: SwarmSettings) -> RedisHandle:
    """Point this process's app at ``settings`` (for clients that build their settings in code, and
    tests). Call before sending tasks; switching servers later resets the app's connection pool."""
    with PROCESS.guard:
        PROCESS.settings = settings
        PROCESS.handle = connect(settings)
        url = PROCESS.handle.url
    config = celery_config(settings, url)
    if (app.conf.broker_url, app.conf.result_backend) != (config["broker_url"], config["result_backend"]):
        app.conf.update(config)
        # Connections and producers of the previous broker must not be reused (kombu keeps closed
        # pools registered, and the producer pool would still point at one).
        if app._pool is not None:
            app._pool.force_close_all()
            app._pool = None
        kombu_pools.reset()
        # Nor its result store: Celery keeps the backend it made first (per thread), so a result sent or read
        # after switching went to the previous server (``python -m bench all`` failed on one that had stopped).
        app._backend_cache = None
        app._local = threading.local()
        # Nor its queue declarations and routes (a RabbitMQ broker's exchanges are topic, a Redis one's
        # direct): Celery builds them once per app, so the whole AMQP part is made again.
        app.__dict__.pop("amqp", None)
    return PROCESS.handle


def _is_amqp(url: str) -> bool:
    return urlsplit(url).scheme in ("amqp", "amqps", "pyamqp")


def celery_config(settings: SwarmSettings, url: str) -> dict[str, Any]:
    """Every Celery setting we rely on, in one place (``url``: the coordination Redis)."""
    broker = settings.celery_broker_url(url)
    backend = settings.celery_result_url(url)
    amqp = _is_amqp(broker)
    # RabbitMQ: each queue a durable quorum queue (replicated, survives a broker restart) on its own topic
    # exchange (a direct one works too, but Celery's native delayed delivery, which countdowns need with
    # quorum queues, only routes through topic exchanges). Redis: a direct exchange per queue.
    exchange_type = "topic" if amqp else "direct"
    queue_args = {"x-queue-type": "quorum"} if amqp else None
    return {
        "broker_url": broker,
        "result_backend": backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": False,  # Flower uses events; a STARTED write per task is a wasted round trip
        "task_ignore_result": True,
        "result_expires": 86_400,
        "broker_connection_retry_on_startup": True,
        # Redis: re-delivery of unacked messages. RabbitMQ: publisher confirms (a send returns once the
        # broker has the message; on a quorum queue, once a majority of its replicas do).
        "broker_transport_options": {"confirm_publish": True} if amqp else
        {"visibility_timeout": settings.broker_visibility_timeout_s},
        "result_backend_transport_options": {"visibility_timeout": settings.broker_visibility_timeout_s},
        "task_default_queue": "agents",
        # Each queue on its own exchange and routing key: with Celery's defaults every queue would be
        # bound to the default exchange with one key, and a message for one queue reach them all.
        "task_queues": [Queue(name, Exchange(name, type=exchange_type), routing_key=name, queue_arguments=queue_args)
                        for name in QUEUES],
        "task_default_exchange": "agents",
        "task_default_exchange_type": exchange_type,
        "task_default_routing_key": "agents",
        "task_default_queue_type": "quorum" if amqp else "classic",
        "task_routes": {"swarm.run.*": {"queue": "control"}},
        "worker_pool": settings.worker_pool,
        "worker_concurrency": settings.worker_concurrency,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_consumer": "celery.worker.consumer:Consumer",  # the signed one when signing (below)
        # TLS for rediss:// URLs; with SWARM_TASK_SIGNING_KEY, signed messages only (overrides the JSON above).
        **_wire_options(settings, broker, backend),
    }


def celery_wire_options(settings: CoordinationSettings, url: str) -> dict[str, Any]:
    """Celery settings for TLS (``rediss://`` URLs: the certificate checked against ``SWARM_REDIS_SSL_CA_CERTS``)
    and, when ``SWARM_TASK_SIGNING_KEY`` is set, signed task messages only (:mod:`swarm_tasks.signing`: the body,
    task name, id, queue and an expiry under one HMAC; replays refused)."""
    options: dict[str, Any] = {}
    if urlsplit(url).scheme == "rediss":
        # Celery's redis backend refuses rediss:// without ssl_cert_reqs; kombu would not verify at all.
        tls: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        tls.update({k: v for k, v in client_options(settings, url).items() if k.startswith("ssl_")})
        options["broker_use_ssl"] = tls
        options["redis_backend_use_ssl"] = dict(tls)
    key = getattr(settings, "task_signing_key", None)
    if key is not None and key.get_secret_value():
        from swarm_tasks.worker import celery_signing as signing  # Celery's worker modules: only where signing is on

        signing.install(key.get_secret_value(), key_prefix=settings.key_prefix,
                        ttl_s=float(getattr(settings, "task_signature_ttl_s", 86_400.0)))
        options.update({"task_serializer": signing.SIGNED_SERIALIZER, "result_serializer": signing.SIGNED_SERIALIZER,
                        "accept_content": [signing.SIGNED_CONTENT_TYPE],
                        "result_accept_content": [signing.SIGNED_CONTENT_TYPE],
                        # Refuses a message whose signature does not hold for its name, id, queue and expiry,
                        # and one that already ran, before Celery looks at it.
                        "worker_consumer": "swarm_tasks.worker.celery_signing:SignedConsumer"})
    elif "swarm_tasks.worker.celery_signing" in sys.modules:  # a process that signed before: not for this app
        sys.modules["swarm_tasks.worker.celery_signing"].uninstall()
    return options


def _wire_options(settings: SwarmSettings, broker: str, backend: str | None) -> dict[str, Any]:
    """Message signing, and TLS for whichever of broker and backend is a ``rediss://`` server."""
    options = celery_wire_options(settings, broker)  # signing; TLS when the broker is rediss://
    options.pop("redis_backend_use_ssl", None)
    # Asked again for the backend's URL (installing the same signing key again changes nothing).
    if backend is not None and "redis_backend_use_ssl" in (tls := celery_wire_options(settings, backend)):
        options["redis_backend_use_ssl"] = tls["redis_backend_use_ssl"]
    return options


def _lazy_config() -> dict[str, Any]:
    handle = PROCESS.redis()
    assert PROCESS.settings is not None
    return celery_config(PROCESS.settings, handle.url)


guard_closed_channel()  # before any worker connects: see swarm_tasks/worker/kombu_fixes.py
reuse_pool_clients()
app = Celery("swarm_tasks")
app.add_defaults(_lazy_config)
app.steps["consumer"].add(EventsFromTheLoop)  # see swarm_tasks/worker/task_events.py


# What a publish raises once Celery's own retries gave up on the broker (kombu wraps most connection
# errors as OperationalError; py-amqp's own ones and a refused publisher confirm can come through bare).
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError, OSError, amqp_errors.ConnectionError, amqp_errors.RecoverableConnectionError,
    amqp_errors.MessageNacked)


class CeleryScheduler:
    """Sends agent steps as Celery tasks, named so Flower shows who runs what. A broker that is away
    raises :class:`BrokerUnavailable` (the caller decides: a worker leaves it to the sweeper)."""

    def __init__(self, celery_app: Celery) -> None:
        self.app = celery_app

    def enqueue(self, agent: AgentState, queue: str, *, countdown_s: float = 0.0) -> None:
        try:
            agent_step.apply_async(
                (agent.run, agent.id, agent.seq), queue=queue, countdown=self._countdown(countdown_s),
                shadow=f"swarm.agent.step:{agent.spec}",
                argsrepr=f"run={agent.run} agent={agent.id} role={agent.role} spec={agent.spec} seq={agent.seq}")
        except BROKER_ERRORS as exc:
            raise BrokerUnavailable(f"the step of agent {agent.id} was not sent: {type(exc).__name__}: {exc}") from exc

    def run_idle(self, run_id: str) -> None:
        try:
            run_idle.apply_async((run_id,), queue="control", argsrepr=f"run={run_id}")
        except BROKER_ERRORS as exc:
            raise BrokerUnavailable(f"the idle hook of run {run_id} was not sent: {type(exc).__name__}: {exc}") from exc

    def _countdown(self, countdown_s: float) -> float | None:
        if countdown_s <= 0:
            return None
        # RabbitMQ (quorum queues) delays through Celery's native delayed delivery, which counts whole
        # seconds and raises ValueError for int(countdown) == 0: a 0.5 s pause failed every send of it.
        return float(math.ceil(countdown_s)) if _is_amqp(str(self.app.conf.broker_url or "")) else countdown_s


def runtime() -> WorkerRuntime:
    """This worker process's runtime (made on first use, after any fork)."""
    if PROCESS.runtime is None:
        handle = PROCESS.redis()
        with PROCESS.guard:
            if PROCESS.runtime is None:
                assert PROCESS.settings is not None
                scheduler = CeleryScheduler(app)
                node = PROCESS.celery_name or None
                if node and os.getpid() != PROCESS.main_pid:
                    node = f"{node}-{os.getpid()}"  # prefork children: one runtime each
                install_log_redaction(PROCESS.settings)  # worker logs never show configured secrets
                PROCESS.runtime = WorkerRuntime(PROCESS.settings, handle, scheduler, on_idle=scheduler.run_idle,
                                                node=node, queues=PROCESS.queues, celery_name=PROCESS.celery_name)
    return PROCESS.runtime


# A step message also runs the agent's following turns, when it goes on at once, for this long: each saves
# a broker round trip (publish, consume, ack and three task events, about a fifth of a worker's CPU per
# model call in `python -m bench review`). Bounded so a delivery is acked long before a broker gives up on
# it (RabbitMQ's consumer timeout is 30 minutes); a worker shutting down stops chaining and sends them.
CHAIN_S = 30.0


def _stopping() -> bool:
    """The worker is shutting down (Celery sets these, to an exit code that may be 0)."""
    return any(flag is not None and flag is not False for flag in (worker_state.should_stop,
                                                                   worker_state.should_terminate))


@app.task(name="swarm.agent.step", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def agent_step(run_id: str, agent_id: str, seq: int) -> str:
    """One turn of one agent, and its next ones for up to ``CHAIN_S`` (a duplicate or stale message is a
    no-op)."""
    return runtime().run_step(run_id, agent_id, seq, chain_s=CHAIN_S, stopping=_stopping).value


@app.task(name="swarm.ping", acks_late=True, ignore_result=True)
def ping(token: str = "") -> str:
    """Does nothing: a health check for a worker, and the baseline of ``python -m bench dispatch``."""
    return token


@app.task(name="swarm.run.idle", acks_late=True, ignore_result=True)
def run_idle(run_id: str, attempt: int = 0) -> str:
    """A run has no live agent: its workflow decides what comes next (finish, next cycle, report).
    Returns the run's status and reason afterwards (what Flower shows as the task's result). It never leaves
    the run hanging: while Redis is away it is retried with a growing pause; a workflow hook that raises
    otherwise fails the run with the reason (it would raise the same way again: nothing else would end it)."""
    try:
        return runtime().run_idle(run_id)
    except OUTAGE_ERRORS as exc:  # a fresh message (signed task ids run once), or `swarm resume` if even that fails
        if attempt >= 10:
            raise
        log.warning("the idle hook of run %s met a Redis outage (%s); trying again", run_id, exc)
        run_idle.apply_async((run_id, attempt + 1), queue="control",
                             countdown=math.ceil(RECONNECT.cap_s * (attempt + 1)),
                             argsrepr=f"run={run_id} attempt={attempt + 1}")
        return f"retrying: {exc}"
    except Exception as exc:
        log.exception("the idle hook of run %s raised", run_id)
        reason = f"finishing the run failed: {type(exc).__name__}: {exc}"[:2000]
        runtime().services.runs.transition(run_id, RunStatus.FAILED, reason=reason,
                                           only_from=(RunStatus.RUNNING, RunStatus.FINALIZING))
        return f"failed: {reason}"


@signals.celeryd_after_setup.connect
def _remember_identity(sender: str, instance: Any, **_kwargs: object) -> None:
    PROCESS.celery_name = sender
    PROCESS.main_pid = os.getpid()
    with contextlib.suppress(Exception):
        PROCESS.queues = sorted(instance.app.amqp.queues.consume_from or [])


@signals.celeryd_after_setup.connect
def _declare_every_queue(sender: str, instance: Any, **_kwargs: object) -> None:
    """On RabbitMQ, declare every queue (and its exchange) before the worker starts consuming.

    Celery's native delayed delivery (countdowns on quorum queues) binds *every* queue of the app to
    its delay exchanges when a worker starts, and gives up on all of them if one exchange is missing;
    a worker consuming only some queues would not have declared the others. Declared here, they also
    hold messages sent before any worker of that queue exists.
    """
    if not _is_amqp(str(instance.app.conf.broker_url or "")):
        return
    with instance.app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in instance.app.amqp.queues.values():
            queue.bind(channel).declare()


@signals.worker_ready.connect
def _start_runtime(**_kwargs: object) -> None:
    runtime()  # start the control loop even before the first task arrives


@signals.worker_process_init.connect
def _start_child_runtime(**_kwargs: object) -> None:
    # A forked (prefork) child must not reuse the parent's loop thread or sockets; it reconnects to
    # the parent's server (an embedded one stays owned by the parent).
    PROCESS.runtime = None
    if PROCESS.handle is not None and PROCESS.settings is not None:
        PROCESS.settings = PROCESS.settings.model_copy(update={"redis_url": SecretStr(PROCESS.handle.url)})
        PROCESS.handle = connect(PROCESS.settings)


@signals.worker_shutdown.connect
def _stop_runtime(**_kwargs: object) -> None:
    if PROCESS.runtime is not None:
        PROCESS.runtime.close()


__all__ = ["CeleryScheduler", "StepOutcome", "agent_step", "app", "celery_config", "ping", "run_idle", "runtime"]
