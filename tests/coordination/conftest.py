"""Fixtures of the coordination suite: a controllable clock, a cheap way to start OS processes, and a
real Redis Cluster (3 masters, 3 replicas, on loopback) that every test on a real server also runs on."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
from collections.abc import Iterator
from dataclasses import dataclass

import fakeredis
import pytest
import redis
from pydantic import SecretStr

from bench.redis_cluster import RedisClusterServers
from coordination.connection import make_client
from coordination.embedded import EmbeddedRedis
from coordination.run import RunState
from coordination.settings import CoordinationSettings
from tests.conftest import EXTERNAL_URL


@dataclass
class Clock:
    """Stands in for the Redis server clock so lease expiry is driven by the test, not by sleeping."""

    t: float = 1_700_000_000.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def install(self, run: RunState) -> RunState:
        # RecordStore.now is the single source of time for the board and the registry.
        run.records.now = self.now  # type: ignore[method-assign]
        return run


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def mp_context() -> Iterator[multiprocessing.context.BaseContext]:
    """A forkserver context that preloads the package, so each child starts in milliseconds.

    Children never inherit the test's sockets or fixtures: each builds its own client from a URL.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["redis", "pydantic", "coordination", "tests.coordination._workers"])
    yield ctx


# -- a Redis Cluster: the contract must hold on one too ----------------------------------------------

def _cluster_client(url: str) -> redis.Redis:
    return make_client(CoordinationSettings(redis_url=SecretStr(url)), url)


_TARGETS = ["embedded", *(["external"] if EXTERNAL_URL else []), "cluster"]


@pytest.fixture(params=_TARGETS)
def redis_url(request: pytest.FixtureRequest, embedded_redis: EmbeddedRedis) -> Iterator[str]:
    """URL of a real Redis (the embedded server, SWARM_REDIS_URL's, a cluster), flushed before and after."""
    if request.param == "cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        yield cluster.url()
        cluster.flushall()
        return
    url = embedded_redis.url if request.param == "embedded" else str(EXTERNAL_URL)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = _cluster_client(redis_url) if redis_url.startswith("redis+cluster") else redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(params=["real", *(["external"] if EXTERNAL_URL else []), "cluster", "fake"])
def any_client(request: pytest.FixtureRequest, embedded_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    """The store contract holds on a real server, SWARM_REDIS_URL's, a real cluster and fakeredis."""
    if request.param == "fake":
        client: redis.Redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    elif request.param == "cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        client = _cluster_client(cluster.url())
    else:
        client = redis.Redis.from_url(embedded_redis.url if request.param == "real" else str(EXTERNAL_URL))
        client.flushdb()
    yield client
    if request.param == "cluster":
        request.getfixturevalue("redis_cluster").flushall()
    elif request.param != "fake":
        client.flushdb()
    client.close()
