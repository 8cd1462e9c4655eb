"""The README's two blocks for going past one Redis (RabbitMQ as the broker; coordination on a Redis
Cluster), run as written with ``bash``: only the URLs are replaced, by this machine's RabbitMQ (a vhost
of the test's own) and the test's Redis / 3-master Redis Cluster. The worker the block starts in the
background does the review; the review must complete. Skipped, with the reason, without RabbitMQ or
where a cluster cannot be started."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bench.rabbitmq import Vhost, rabbitmq_unavailable
from bench.redis_cluster import RedisClusterServers
from swarm_tasks.settings import QUEUES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # a block may take up to 240 s
ROOT = Path(__file__).resolve().parents[2]
SECTION = "### Past one Redis: RabbitMQ and Redis Cluster"


def readme_blocks() -> list[str]:
    section = (ROOT / "README.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def vhost() -> Iterator[Vhost]:
    reason = rabbitmq_unavailable()
    if reason:
        pytest.skip(reason)
    with Vhost("swarm-readme") as vh:
        yield vh


def run_block(block: str, urls: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The block with its URLs replaced, in bash from the repository root; the worker it leaves running in
    the background is stopped with the block's process group."""
    for name, url in urls.items():
        block, n = re.subn(rf"^export {name}=\S+$", f"export {name}={url}", block, flags=re.M)
        assert n == 1, f"the README block sets {name} once"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update({"PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",  # celery and swarm, installed
                "SWARM_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"})
    out, err = tmp_path / "stdout", tmp_path / "stderr"  # files: the background worker keeps a pipe open
    with out.open("w") as stdout, err.open("w") as stderr:
        shell = subprocess.Popen(["bash", "-c", block], cwd=ROOT, env=env, stdout=stdout, stderr=stderr,
                                 start_new_session=True)
    try:
        shell.wait(timeout=240)  # bash ends with the review; the worker it started runs on
    finally:
        stop_group(shell.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            shell.wait(timeout=10)  # reaped: never left to warn in a garbage collection later
    return subprocess.CompletedProcess(shell.args, shell.returncode, out.read_text(), err.read_text())


def stop_group(pgid: int, grace_s: float = 30.0) -> None:
    """SIGTERM the process group (a warm stop for the worker), SIGKILL what is left after ``grace_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def test_the_readme_has_a_block_for_rabbitmq_and_one_for_a_cluster() -> None:
    rabbit, cluster = readme_blocks()
    assert "SWARM_BROKER_URL=amqp://" in rabbit and "redis+cluster://" not in rabbit
    assert "SWARM_REDIS_URL=redis+cluster://" in cluster and "SWARM_BROKER_URL=amqp://" in cluster


def test_the_readme_rabbitmq_block_runs_a_review(vhost: Vhost, redis_url: str, tmp_path: Path) -> None:
    done = run_block(readme_blocks()[0], {"SWARM_REDIS_URL": redis_url, "SWARM_BROKER_URL": vhost.url}, tmp_path)
    assert done.returncode == 0 and re.search(r"\bcompleted\b", done.stdout), done.stdout[-3000:] + done.stderr[-3000:]
    types = vhost.queue_types()  # the steps went through RabbitMQ's quorum queues
    assert {name: types.get(name) for name in QUEUES} == dict.fromkeys(QUEUES, "quorum")
    assert redis.Redis.from_url(redis_url).keys("swarm:{review-*}:run"), "the run was not kept in Redis"


def test_the_readme_cluster_block_runs_a_review(vhost: Vhost, redis_cluster: RedisClusterServers,
                                                tmp_path: Path) -> None:
    redis_cluster.flushall()
    done = run_block(readme_blocks()[1], {"SWARM_REDIS_URL": redis_cluster.url(), "SWARM_BROKER_URL": vhost.url},
                     tmp_path)
    assert done.returncode == 0 and re.search(r"\bcompleted\b", done.stdout), done.stdout[-3000:] + done.stderr[-3000:]
    runs = [key for shard in redis_cluster.shards() for key in shard.master.client().keys("swarm:{review-*}:run")]
    assert len(runs) == 1, f"the run's record on the cluster: {runs}"
    redis_cluster.flushall()
