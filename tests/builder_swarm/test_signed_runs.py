"""A signed build whose run record was edited in Redis: a fresh worker process refuses to act on it.

Write access to Redis is all the attacker has: they replace the build's check and codemod with their
own command. The workers hold SWARM_TASK_SIGNING_KEY; the record's signature no longer matches, so the
run fails with the reason and the command never runs (it would leave a marker file)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from pydantic import SecretStr

from coordination import codec
from coordination.store import Versioned, Write
from swarm_tasks.agents.services import SwarmClient
from swarm_tasks.agents.state import AgentState
from swarm_tasks.builder.job import BuildJob
from swarm_tasks.builder.workflow import submit_build
from swarm_tasks.celery import celery_config
from swarm_tasks.errors import RecordSignatureError
from swarm_tasks.runs import RunRecord, RunStatus
from swarm_tasks.settings import SwarmSettings
from swarm_tasks.worker import celery_signing
from swarm_tasks.worker.cluster import LocalCluster
from tests.builder_swarm.helpers import make_remote

pytestmark = pytest.mark.slow
KEY = "signed-runs-test-key-4b8e1d2c"


class SenderScheduler:
    """Sends agent steps through a Celery app of this test's own (signed) configuration."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def enqueue(self, agent: AgentState, queue: str, *, countdown_s: float = 0.0) -> None:
        self.app.send_task("swarm.agent.step", (agent.run, agent.id, agent.seq), queue=queue,
                           countdown=countdown_s or None)


@pytest.fixture
def signed(swarm_settings: SwarmSettings, redis_url: str) -> Iterator[tuple[SwarmSettings, SwarmClient]]:
    settings = swarm_settings.model_copy(update={"task_signing_key": SecretStr(KEY)})
    sender = Celery("signed-build", set_as_current=False)
    sender.conf.update(celery_config(settings, redis_url))
    client = redis.Redis.from_url(redis_url)
    yield settings, SwarmClient.create(settings, client, SenderScheduler(sender))
    client.close()
    sender.close()
    celery_signing.uninstall()


def test_a_fresh_worker_refuses_a_build_whose_check_was_changed_in_redis(signed, tmp_path: Path) -> None:
    settings, client = signed
    bare = make_remote(tmp_path / "remote", {"a.txt": "alpha\n"})
    run = submit_build(client, BuildJob(repo=str(bare), goal="touch nothing", codemod="true", check="true",
                                        builders=1, max_cycles=1))
    assert run.signature
    marker = tmp_path / "attacker-ran"
    key = client.runs.keys(run.id).run_record()

    def tamper(current: Versioned | None) -> Write:
        assert current is not None
        record = codec.decode(RunRecord, current.data, key=key)
        spec = {**record.spec, "check": f"touch {marker}", "codemod": f"touch {marker}; true"}  # type: ignore[dict-item]
        return Write(codec.encode(record.model_copy(update={"spec": spec})))

    client.records.update(key, tamper)  # what write access to Redis allows
    with pytest.raises(RecordSignatureError, match="does not match its signature"):
        client.runs.get(run.id)

    with LocalCluster(settings, workers=1, queues=("plan", "work", "judge", "agents", "control"), concurrency=2,
                      name_prefix="signed", log_dir=tmp_path / "logs") as cluster:
        deadline = time.monotonic() + 120
        while (ended := client.runs.list(limit=5)[0]).status is RunStatus.RUNNING:
            assert time.monotonic() < deadline, cluster.tail(cluster.workers[0])
            time.sleep(0.2)
        log = cluster.tail(cluster.workers[0], lines=200)
    assert not marker.exists(), "the command written into Redis ran"
    assert ended.id == run.id and ended.status is RunStatus.FAILED
    assert "does not match its signature" in (ended.reason or "") and "refusing to act on it" in (ended.reason or "")
    assert f"run {run.id}: run {run.id!r} does not match its signature" in log
