"""Flower's configuration from SwarmSettings, and the queue-depth metric the autoscaler reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flower.options import default_options
from kombu import Queue
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry
from pydantic import SecretStr

from coordination.errors import ConfigurationError
from swarm_tasks.celery import agent_step, app, use_settings
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.worker.flower_config import TASK_COLUMNS, configure, flower_options, open_api
from swarm_tasks.worker.flower_metrics import METRIC, QueueDepth, QueueDepthCollector, queue_depths

URL = "redis://127.0.0.1:1/0"  # never contacted by flower_options


def flower_defaults(**overrides: object) -> dict[str, object]:
    """Flower's options as its config file sees them: defaults, then FLOWER_* and the command line."""
    return {**default_options.as_dict(), **overrides}


def settings(**kwargs: object) -> SwarmSettings:
    kwargs.setdefault("redis_url", SecretStr(URL))
    return SwarmSettings(**kwargs)  # type: ignore[arg-type]


def test_defaults_are_read_only_loopback_with_args_shown_and_basic_auth_from_settings():
    chosen = flower_options(flower_defaults(), settings(flower_basic_auth=SecretStr("ops:pw:with:colons")))
    assert chosen["basic_auth"] == ["ops:pw:with:colons"]
    assert chosen["address"] == "127.0.0.1"
    assert chosen["read_only"] is True
    assert chosen["tasks_columns"] == TASK_COLUMNS and "args" in TASK_COLUMNS.split(",")
    assert chosen["purge_offline_workers"] > 0


def test_command_line_choices_are_kept():
    current = flower_defaults(address="10.0.0.5", auth=".*@example.com", tasks_columns="name,state",
                              purge_offline_workers=60, basic_auth=["a:b"])
    chosen = flower_options(current, settings())
    assert chosen == {"read_only": True}  # nothing else overridden


def test_refuses_to_listen_beyond_loopback_without_authentication():
    with pytest.raises(ConfigurationError, match="no authentication"):
        flower_options(flower_defaults(address="0.0.0.0"), settings())
    assert flower_options(flower_defaults(address="0.0.0.0"), settings(flower_basic_auth=SecretStr("u:p")))
    assert flower_options(flower_defaults(address="::1"), settings()) is not None


@pytest.mark.parametrize("credential", ["nopassword", ":pw", "user:"])
def test_malformed_basic_auth_is_refused(credential: str):
    with pytest.raises(ConfigurationError, match="user:password"):
        flower_options(flower_defaults(), settings(flower_basic_auth=SecretStr(credential)))


def test_refuses_to_start_without_the_shared_redis():
    with pytest.raises(ConfigurationError, match="SWARM_REDIS_URL"):
        flower_options(flower_defaults(), SwarmSettings(redis_url=None))


@pytest.fixture
def broker(redis_url: str, tmp_path) -> Iterator[SwarmSettings]:
    swarm = SwarmSettings(redis_url=SecretStr(redis_url), state_dir=tmp_path / "state")
    use_settings(swarm)
    yield swarm


def test_queue_depth_counts_reserved_messages_that_left_the_list(broker: SwarmSettings, redis_client):
    for i in range(3):
        agent_step.apply_async(("run-1", f"a{i}", 0), queue="agents", argsrepr=f"run=run-1 agent=a{i}")
    agent_step.apply_async(("run-1", "r", 0), queue="review")
    assert queue_depths(redis_client)["agents"] == QueueDepth(ready=3, reserved=0)
    with app.connection_for_read() as conn:
        held = Queue("agents", channel=conn.default_channel).get(no_ack=False)  # as a worker reserves one
        assert held is not None
        depths = queue_depths(redis_client)
        assert depths["agents"] == QueueDepth(ready=2, reserved=1)  # LLEN alone would say 2
        assert depths["review"] == QueueDepth(ready=1, reserved=0)
        assert depths["control"].total == 0

        registry = CollectorRegistry()
        configure(flower_defaults(), broker, registry)
        configure(flower_defaults(), broker, registry)  # Flower may load its config twice: one collector
        text = generate_latest(registry).decode()
        assert f'{METRIC}{{queue="agents",state="ready"}} 2.0' in text
        assert f'{METRIC}{{queue="agents",state="reserved"}} 1.0' in text
        held.ack()
    assert queue_depths(redis_client)["agents"] == QueueDepth(ready=2, reserved=0)


def test_queue_metrics_read_a_separate_redis_broker_and_stay_off_for_rabbitmq(redis_url: str) -> None:
    from urllib.parse import urlsplit

    from swarm_tasks.worker.flower_metrics import install, scrape_client

    cluster = "redis+cluster://:pw@10.0.0.1:7000"
    separate = SwarmSettings(redis_url=SecretStr(cluster), broker_url=SecretStr(redis_url))
    client = scrape_client(separate)  # the broker's lists, not the coordination cluster's
    assert client.connection_pool.connection_kwargs["port"] == urlsplit(redis_url).port
    client.close()
    rabbit = SwarmSettings(redis_url=SecretStr(redis_url), broker_url=SecretStr("amqp://guest:guest@127.0.0.1//"))
    registry = CollectorRegistry()
    assert install(rabbit, registry) is None  # RabbitMQ counts its own: zeros here would read as an idle fleet
    assert METRIC not in generate_latest(registry).decode()


def test_a_failed_scrape_is_an_error_never_zero():
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    collector = QueueDepthCollector(lambda: redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5,
                                                        retry=Retry(NoBackoff(), 0)))
    with pytest.raises(redis.ConnectionError):
        list(collector.collect())


def _task_events(uuid: str) -> dict[str, dict[str, object]]:
    base = {"uuid": uuid, "clock": 1, "pid": 1, "utcoffset": 0}
    step = "swarm.agent.step"
    summary = "run=r1 agent=a1 role=reviewer spec=review.security seq=0"
    return {
        "sent": {**base, "type": "task-sent", "name": step, "args": summary, "hostname": "client@h",
                 "queue": "review"},
        "received": {**base, "type": "task-received", "name": f"{step}:review.security", "args": summary,
                     "hostname": "w1@h"},
        "started": {**base, "type": "task-started", "hostname": "w1@h"},
        "succeeded": {**base, "type": "task-succeeded", "result": "'done'", "runtime": 0.1, "hostname": "w1@h"},
    }


@pytest.mark.parametrize("order", [
    ("sent", "received", "started", "succeeded"),  # as sent
    ("received", "started", "succeeded", "sent"),  # the client's event last
    ("received", "sent", "started", "succeeded"),
    ("started", "succeeded", "received", "sent"),
])
def test_flower_keeps_the_shadow_name_whatever_order_events_arrive_in(order: tuple[str, ...]):
    import time

    from flower.events import EventsState

    from swarm_tasks.worker.flower_config import ShadowNamedTask, install_task_names

    install_task_names()
    state = EventsState()
    assert state.Task is ShadowNamedTask
    events = _task_events("t-1")
    for offset, kind in enumerate(order):
        now = time.time() + offset
        state.event({**events[kind], "timestamp": now, "local_received": now})
    task = state.tasks["t-1"]
    assert task.name == "swarm.agent.step:review.security"
    assert task.args == "run=r1 agent=a1 role=reviewer spec=review.security seq=0"
    assert task.state == "SUCCESS" and task.queue == "review"  # what only task-sent carries is still merged
    assert task.worker.hostname == "w1@h"


@pytest.mark.parametrize(("overrides", "opened"), [
    ({}, True), ({"address": "::1"}, True), ({"unix_socket": "/run/flower.sock", "address": "0.0.0.0"}, True),
    ({"basic_auth": ["ops:pw"]}, False), ({"auth": ".*@example.com"}, False), ({"read_only": False}, False),
    ({"address": "0.0.0.0", "basic_auth": ["ops:pw"]}, False)],
    ids=["loopback", "ipv6-loopback", "unix-socket", "basic-auth", "oauth", "not-read-only", "beyond-loopback"])
def test_the_api_is_opened_only_where_the_pages_answer_anyone_local_and_nothing_can_be_sent(
        overrides: dict[str, object], opened: bool):
    final = flower_defaults(**{"address": "127.0.0.1", "read_only": True, **overrides})  # as Flower ends up
    assert open_api(final) is opened
