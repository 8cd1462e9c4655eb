"""Signed task messages against a real `celery worker` process: a captured message replayed, renamed,
moved to another queue or past its expiry is refused; the original runs once.

Messages are queued before the worker starts, so the test holds a byte-for-byte copy of what the
broker carried, as someone with access to Redis would. A last good message shows that the worker has
been through everything queued before it (one queue: first in, first out).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from pydantic import SecretStr

from swarm_tasks.celery import celery_config
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.signing import SIGNATURE_HEADER, MessageSigner
from swarm_tasks.worker import celery_signing
from swarm_tasks.worker.cluster import LocalCluster

pytestmark = pytest.mark.slow

KEY = "signed-messages-test-key-7f3a9c"


@pytest.fixture
def signed(redis_url: str, tmp_path: Path) -> Iterator[tuple[SwarmSettings, Celery]]:
    settings = SwarmSettings(redis_url=SecretStr(redis_url), state_dir=tmp_path / "state", model_guard="local-only",
                             task_signing_key=SecretStr(KEY))
    sender = Celery("signed-sender", set_as_current=False)
    sender.conf.update(celery_config(settings, redis_url))
    yield settings, sender
    sender.close()
    celery_signing.uninstall()  # this test process signs nothing after it


def raw_message(client: redis.Redis, queue: str, task_id: str) -> dict[str, object]:
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        if message["headers"]["id"] == task_id:
            return message
    raise AssertionError(f"no queued message {task_id} in {queue}")


def push(client: redis.Redis, queue: str, message: dict[str, object]) -> None:
    client.lpush(queue, json.dumps(message))


def ran(client: redis.Redis, settings: SwarmSettings, task_id: str) -> bool:
    return bool(client.exists(MessageSigner.of(KEY, key_prefix=settings.key_prefix).done_key(task_id)))


def wait_ran(client: redis.Redis, settings: SwarmSettings, task_id: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ran(client, settings, task_id):
        assert time.monotonic() < deadline, f"task message {task_id} never ran"
        time.sleep(0.1)


def test_replayed_renamed_moved_and_expired_messages_are_refused(signed, redis_client: redis.Redis,
                                                                 tmp_path: Path) -> None:
    settings, sender = signed
    first, short, moved_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    sender.send_task("swarm.ping", args=["first"], queue="agents", task_id=first)
    sender.send_task("swarm.ping", args=["for work"], queue="work", task_id=moved_id)  # a queue it does not serve
    celery_signing.install(KEY, key_prefix=settings.key_prefix, ttl_s=0.5)  # one message that expires at once
    sender.send_task("swarm.ping", args=["short-lived"], queue="agents", task_id=short)
    celery_signing.install(KEY, key_prefix=settings.key_prefix)
    captured = raw_message(redis_client, "agents", first)
    assert isinstance(captured["headers"], dict) and SIGNATURE_HEADER in captured["headers"]
    moved = raw_message(redis_client, "work", moved_id)
    redis_client.delete("work")
    moved["properties"]["delivery_info"]["routing_key"] = "control"  # type: ignore[index]
    push(redis_client, "control", moved)  # into a queue the worker serves, addressed to it
    time.sleep(0.6)

    cluster = LocalCluster(settings, workers=1, queues=("agents", "control"), concurrency=2, name_prefix="signed",
                           log_dir=tmp_path / "logs")
    with cluster:
        wait_ran(redis_client, settings, first)
        push(redis_client, "agents", captured)  # replayed as it was
        renamed, renamed_id = json.loads(json.dumps(captured)), str(uuid.uuid4())
        renamed["headers"].update(task="swarm.run.idle", id=renamed_id)  # another task, another id
        push(redis_client, "agents", renamed)
        altered = json.loads(json.dumps(captured))
        body = json.loads(base64.b64decode(altered["body"]))
        body["body"] = body["body"].replace("first", "other")
        altered["body"] = base64.b64encode(json.dumps(body).encode()).decode()
        altered["headers"]["id"] = altered_id = str(uuid.uuid4())
        push(redis_client, "agents", altered)
        last = str(uuid.uuid4())
        sender.send_task("swarm.ping", args=["last"], queue="agents", task_id=last)
        sender.send_task("swarm.ping", args=["last"], queue="control", task_id=last + "-c")
        wait_ran(redis_client, settings, last)
        wait_ran(redis_client, settings, last + "-c")
        log = cluster.tail(cluster.workers[0], lines=400)
    for task_id in (short, renamed_id, moved_id, altered_id):
        assert not ran(redis_client, settings, task_id), task_id
    refused = {line.split("refused task message ")[1].split(" ")[0]: line for line in log.splitlines()
               if "refused task message " in line}
    assert "expired" in refused[short]
    assert "a replay" in refused[first]
    assert "does not match" in refused[renamed_id] and "swarm.run.idle" in refused[renamed_id]
    assert "signed for queue 'work'" in refused[moved_id]
    assert "does not match" in refused[altered_id]
    assert set(refused) == {short, first, renamed_id, moved_id, altered_id}
    assert redis_client.llen("agents") == redis_client.llen("control") == 0 == redis_client.hlen("unacked")
