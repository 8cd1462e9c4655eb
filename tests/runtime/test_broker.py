"""The Celery broker apart from the coordination Redis: ``SWARM_BROKER_URL`` (RabbitMQ, or a Redis when
coordination is a cluster). The configuration it makes, the errors it refuses with, what a worker does
while the broker is away, and real worker processes on the machine's RabbitMQ (skipped, with the reason,
where there is none)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from celery import Celery
from kombu import Connection
from pydantic import SecretStr, ValidationError

from bench.common import tasks_started, worker_names
from bench.rabbitmq import Vhost, rabbitmq_unavailable
from coordination.errors import ConfigurationError, InvalidTransition
from swarm_tasks.agents.children import ChildRequest
from swarm_tasks.agents.runner import StepOutcome
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.spec import AgentKind, AgentSpec
from swarm_tasks.agents.state import AgentState, AgentStatus
from swarm_tasks.celery import CeleryScheduler, app, celery_config, ping, use_settings
from swarm_tasks.errors import BrokerUnavailable
from swarm_tasks.launch import start_agents
from swarm_tasks.runs import RUN_ROOT, RunLimits, RunStatus
from swarm_tasks.settings import QUEUES, SwarmSettings
from swarm_tasks.worker.cluster import LocalCluster
from swarm_tasks.worker.control_loop import sweep_agents
from tests.runtime.harness import LocalScheduler

REDIS = "redis://:pw@127.0.0.1:6390/0"
CLUSTER = "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000"
AMQP = "amqp://swarm:pw@rabbit.internal:5672/swarm"


def test_rabbitmq_broker_uses_quorum_queues_confirms_and_redis_for_results() -> None:
    config = celery_config(SwarmSettings(redis_url=SecretStr(REDIS), broker_url=SecretStr(AMQP)), REDIS)
    assert (config["broker_url"], config["result_backend"]) == (AMQP, REDIS)
    assert config["broker_transport_options"] == {"confirm_publish": True}
    assert config["task_default_queue_type"] == "quorum"
    queues = {q.name: q for q in config["task_queues"]}
    assert set(queues) == set(QUEUES)
    for name, queue in queues.items():  # one durable quorum queue per role, on its own exchange
        assert queue.queue_arguments == {"x-queue-type": "quorum"} and queue.durable
        assert (queue.exchange.name, queue.exchange.type, queue.routing_key) == (name, "topic", name)
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1


def test_without_a_broker_url_redis_is_the_broker_as_before() -> None:
    config = celery_config(SwarmSettings(redis_url=SecretStr(REDIS)), REDIS)
    assert (config["broker_url"], config["result_backend"]) == (REDIS, REDIS)
    assert "confirm_publish" not in config["broker_transport_options"]
    assert {q.exchange.type for q in config["task_queues"]} == {"direct"}
    assert all(q.queue_arguments is None for q in config["task_queues"])


def test_a_cluster_cannot_be_the_broker() -> None:
    settings = SwarmSettings(redis_url=SecretStr(CLUSTER))
    with pytest.raises(ConfigurationError, match="set SWARM_BROKER_URL"):
        celery_config(settings, CLUSTER)
    with pytest.raises(ValidationError, match="kombu"):
        SwarmSettings(redis_url=SecretStr(REDIS), broker_url=SecretStr(CLUSTER))
    with pytest.raises(ValidationError, match="SWARM_BROKER_URL must start with"):
        SwarmSettings(broker_url=SecretStr("kafka://broker:9092"))


def test_with_cluster_coordination_results_go_to_a_redis_broker_or_nowhere() -> None:
    with_rabbit = celery_config(SwarmSettings(redis_url=SecretStr(CLUSTER), broker_url=SecretStr(AMQP)), CLUSTER)
    assert (with_rabbit["broker_url"], with_rabbit["result_backend"]) == (AMQP, None)  # no task keeps a result
    with_redis = celery_config(SwarmSettings(redis_url=SecretStr(CLUSTER), broker_url=SecretStr(REDIS)), CLUSTER)
    assert (with_redis["broker_url"], with_redis["result_backend"]) == (REDIS, REDIS)
    flagged = SwarmSettings(redis_url=SecretStr("redis://:pw@10.0.0.1:7000/0"), redis_cluster=True,
                            broker_url=SecretStr(AMQP))
    assert celery_config(flagged, "redis://:pw@10.0.0.1:7000/0")["result_backend"] is None


class AwayBroker(LocalScheduler):
    """The in-process queue, refusing sends while ``away`` as CeleryScheduler does when the broker is down."""

    away = False

    def enqueue(self, agent: AgentState, queue: str, *, countdown_s: float = 0.0) -> None:
        if self.away:
            raise BrokerUnavailable(f"the step of agent {agent.id} was not sent: connection refused")
        super().enqueue(agent, queue, countdown_s=countdown_s)


def test_a_turn_recorded_while_the_broker_is_away_stands_and_its_successor_is_sent_later(local) -> None:
    """Issue 24: a codemod worker ended DONE and started its successor, the successor's send failed (RabbitMQ
    restarting), and the turn was retried over its own ending: the ended agent became READY again, ended a
    second time, and the run's open-agent count dropped twice. The idle wake-up then came while successors
    still ran (ignored as stale) and never again: the build stayed 'running'."""
    broker = AwayBroker()
    local.scheduler = local.runtime.services.scheduler = broker
    spec = AgentSpec(name="relay", role="agent", kind=AgentKind.PROGRAM, program="tests.runtime.programs:relay",
                     tools=())
    run = local.start([spec], [ChildRequest("relay", "3 to go", input=3, key="relay3")])
    agents = local.agents(run.id)
    (first,) = agents.ids(AgentStatus.READY)
    broker.away = True
    assert local.drain() == [StepOutcome.RAN.value]  # not FAILED: the ending was written, only the send failed
    assert agents.get(first).status is AgentStatus.DONE and agents.ids(AgentStatus.READY)  # its successor waits
    _, version = agents.load(first)
    with pytest.raises(InvalidTransition):  # nothing but a retry brings an ended agent back
        agents.save(agents.get(first), version, agents.get(first).evolve(status=AgentStatus.READY))

    broker.away = False  # back: the sweeper sends what was not sent (forced here, as `swarm resume` does)
    ctx = local.services.run(run.id)
    assert sweep_agents(local.services, ctx, now=ctx.state.records.now() + 3600) == 1
    outcomes = local.drain()
    assert outcomes == ["ran", "ran", "ran", f"idle:{run.id}"]  # the idle wake-up once, after the last one
    done = agents.ids(AgentStatus.DONE)
    assert len(done) == 4 and first in done
    assert int(ctx.state.redis.hget(ctx.state.keys.children_open(), RUN_ROOT) or 0) == 0


def test_switching_servers_sends_and_reads_results_on_the_new_one(redis_url: str, tmp_path: Path) -> None:
    use_settings(SwarmSettings(redis_url=SecretStr(redis_url), state_dir=tmp_path))
    first = app.backend
    assert first.connparams["db"] == 0
    other = urlsplit(redis_url)._replace(path="/1").geturl()  # another server, as far as Celery can tell
    use_settings(SwarmSettings(redis_url=SecretStr(other), state_dir=tmp_path))
    assert app.backend is not first and app.backend.connparams["db"] == 1
    use_settings(SwarmSettings(redis_url=SecretStr(redis_url), state_dir=tmp_path))
    assert app.backend.connparams["db"] == 0


def test_a_sub_second_pause_is_sent_to_rabbitmq_as_whole_seconds() -> None:
    """Celery's native delayed delivery (quorum queues) raises ValueError for int(countdown) == 0."""
    on_rabbitmq, on_redis = CeleryScheduler(Celery("amqp", broker=AMQP)), CeleryScheduler(Celery("r", broker=REDIS))
    assert [on_rabbitmq._countdown(s) for s in (0.0, 0.2, 1.0, 1.5)] == [None, 1.0, 1.0, 2.0]
    assert [on_redis._countdown(s) for s in (0.0, 0.2, 1.5)] == [None, 0.2, 1.5]  # Redis keeps them exact


# -- real worker processes on RabbitMQ ------------------------------------------------------------------

@pytest.fixture(scope="module")
def vhost() -> Iterator[Vhost]:
    reason = rabbitmq_unavailable()
    if reason:
        pytest.skip(reason)
    with Vhost("swarm-broker") as vh:
        yield vh


@pytest.mark.slow
def test_workers_on_rabbitmq_run_agents_and_delayed_steps(vhost: Vhost, redis_url: str, tmp_path: Path) -> None:
    use_settings(SwarmSettings(redis_url=SecretStr(redis_url), state_dir=tmp_path))  # a Redis broker first
    assert app.amqp.queues["agents"].exchange.type == "direct"
    settings = SwarmSettings(redis_url=SecretStr(redis_url), broker_url=SecretStr(vhost.url), state_dir=tmp_path,
                             model_guard="local-only", sweep_interval_s=0.2)
    handle = use_settings(settings)  # then, in the same process, RabbitMQ: its own exchanges and queues
    assert app.conf.broker_url == vhost.url and app.conf.result_backend == redis_url
    assert app.amqp.queues["agents"].exchange.type == "topic"
    client = SwarmClient.create(settings, handle.client, CeleryScheduler(app))
    cluster = LocalCluster(settings, workers=2, queues=("agents", "control"), concurrency=8, name_prefix="amqp",
                           log_dir=tmp_path / "logs").start(timeout_s=120)
    try:
        spec = AgentSpec(name="noop", role="agent", kind=AgentKind.PROGRAM, program="bench.dispatch:noop_program",
                         tools=())
        run = start_agents(client, [spec], [ChildRequest("noop", "go", key=f"n{i}") for i in range(30)],
                           limits=RunLimits(max_agents=40, max_concurrent_agents=40))
        deadline = time.monotonic() + 90
        while not client.runs.get(run.id).status.terminal:
            assert time.monotonic() < deadline, "the run did not end on RabbitMQ"
            time.sleep(0.2)
        assert client.runs.get(run.id).status is RunStatus.COMPLETED
        # A countdown on a quorum queue goes through Celery's native delayed delivery (topic exchanges).
        names = worker_names(cluster)
        before = tasks_started(app, names, "swarm.ping")
        sent = time.monotonic()
        ping.apply_async(("later",), queue="agents", countdown=2)
        while tasks_started(app, names, "swarm.ping") == before:
            assert time.monotonic() - sent < 60, "the delayed step never arrived"
            time.sleep(0.2)
        assert time.monotonic() - sent >= 1.5  # it waited for its countdown
        # A turn's retry pause is often under a second: sent as 1 s (Celery's int(0.4) == 0 raised ValueError).
        done = client.run(run.id).agents.get(client.run(run.id).agents.ids(AgentStatus.DONE)[0])
        shadow = f"swarm.agent.step:{done.spec}"  # the name Flower and the workers' counters know it by
        before = tasks_started(app, names, shadow)
        sent = time.monotonic()
        CeleryScheduler(app).enqueue(done, "agents", countdown_s=0.4)
        while tasks_started(app, names, shadow) == before:  # it arrives (and finds the agent ended)
            assert time.monotonic() - sent < 60, "the step sent with a 0.4 s pause never arrived"
            time.sleep(0.2)
        # Every role's queue is a quorum queue, declared by the workers even where none consumes it.
        types = vhost.queue_types()
        assert {name: types.get(name) for name in QUEUES} == dict.fromkeys(QUEUES, "quorum")
        logs = "".join(w.log_path.read_text() for w in cluster.workers)
        assert "Failed to setup delayed delivery" not in logs and "Failed to bind queue" not in logs, logs[-2000:]
    finally:
        cluster.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_task_events_on_rabbitmq_never_stall_a_worker_of_threads(vhost: Vhost, redis_url: str, tmp_path: Path) -> None:
    """Celery 5.7 reads the worker's event connection in its event loop (for broker heartbeats) while a pool
    thread that filled the task-event buffer publishes it and waits on the same socket for the broker's
    confirm: when the loop read that confirm, the thread waited for the next frame (a heartbeat, minutes
    away) holding the dispatcher's lock, and the loop, flushing events, waited for the lock: no step ran
    for ~3 minutes (seen as the README's RabbitMQ block hanging in CI). A thousand agents on 64 threads
    end, and Flower's task events are still published."""
    settings = SwarmSettings(redis_url=SecretStr(redis_url), broker_url=SecretStr(vhost.url), state_dir=tmp_path,
                             model_guard="local-only")
    handle = use_settings(settings)
    client = SwarmClient.create(settings, handle.client, CeleryScheduler(app))
    cluster = LocalCluster(settings, workers=1, queues=("agents", "control"), concurrency=64, name_prefix="events",
                           log_dir=tmp_path / "logs").start(timeout_s=120)
    try:
        received: list[str] = []
        with app.connection_for_read() as conn:
            recv = app.events.Receiver(conn, handlers={"task-succeeded": lambda e: received.append(e["uuid"])})
            with recv.consumer_context() as (connection, _, _):  # the event queue is bound from here on
                spec = AgentSpec(name="noop", role="agent", kind=AgentKind.PROGRAM,
                                 program="bench.dispatch:noop_program", tools=())
                run = start_agents(client, [spec], [ChildRequest("noop", "go", key=f"n{i}") for i in range(1000)],
                                   limits=RunLimits(max_agents=1000, max_concurrent_agents=1000))
                deadline = time.monotonic() + 150
                while not (record := client.runs.get(run.id)).status.terminal:
                    ended = len(client.run(run.id).agents.ids(AgentStatus.DONE))
                    assert time.monotonic() < deadline, f"{ended} of 1000 agents ended in 150 s: the worker stalled"
                    time.sleep(1.0)
                assert record.status is RunStatus.COMPLETED, record.reason
                deadline = time.monotonic() + 30
                while len(received) < 100 and time.monotonic() < deadline:
                    with contextlib.suppress(TimeoutError):
                        connection.drain_events(timeout=1.0)
        assert len(received) >= 100, "the worker published no task events"
    finally:
        cluster.stop()


def test_a_redis_broker_channel_builds_its_client_once_per_pool(redis_url: str) -> None:
    """kombu made a redis.Redis per publish and ack (swarm_tasks/worker/kombu_fixes.py): one per pool now,
    and messages still go through it (swarm_tasks.celery, imported here as by every worker, installs it)."""
    with Connection(redis_url) as conn:
        queue = conn.SimpleQueue("swarm-test-client-reuse")
        channel = queue.channel
        first = channel._create_client()
        assert channel._create_client() is first
        queue.put({"n": 1})
        assert queue.get(timeout=5).payload == {"n": 1}
        assert channel._create_client() is first
        channel._pool = None  # what a reset does: the next pool gets its own client
        assert channel._create_client() is not first
        queue.clear()
        queue.close()
