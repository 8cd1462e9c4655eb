"""Shared fixtures: a real Redis for every test (embedded by default, also ``SWARM_REDIS_URL`` when
set), a real Redis Cluster where one can be started, fakeredis for the fast contract suite, and a guard
that fails any test reaching the network."""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis

from bench.redis_cluster import RedisClusterServers, cluster_unavailable
from coordination.embedded import EmbeddedRedis
from coordination.errors import EmbeddedRedisError
from coordination.run import RunState
from coordination.settings import CoordinationSettings
from coordination.store import RecordStore, RetryPolicy

# The product must never fetch litellm's price map (or anything else) from the network in tests.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

EXTERNAL_URL = os.environ.get("SWARM_REDIS_URL")


# -- the network guard ---------------------------------------------------------------------------

class RealNetworkCall(AssertionError):
    """A test tried to open a connection off this machine (a real model provider, say)."""


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    if not isinstance(address, tuple) or not address:
        return True
    host = address[0]
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname other than localhost means DNS and the outside world


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_local(address):
        raise RealNetworkCall(f"test tried to connect to {address!r}: only loopback is allowed in tests")
    return _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_local(address):
        raise RealNetworkCall(f"test tried to connect to {address!r}: only loopback is allowed in tests")
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True, scope="session")
def network_guard() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


# -- order ----------------------------------------------------------------------------------------

def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a ``slow`` test first, each file's tests kept together and in their order. bin/test hands
    whole files to its test processes in this order (``--dist loadfile``): a long file started last would
    run alone at the end while the other processes sit idle."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the order within each group stays


# Packages whose tests share a package fixture too costly to build in each test process: the multi-host
# harness (three network namespaces with workers in each, a git daemon, a bridged Redis and a reference
# run). Whole, each goes to one process: spread file by file, the harness was built in each process that
# got a file, up to three at once, on a CI box where a loaded worker had already lost its turns.
ONE_PROCESS_PACKAGES = ("tests/multihost/",)


def process_scope(nodeid: str) -> str:
    """What bin/test hands whole to one test process: the file, or the package for those listed above."""
    path = nodeid.split("::", 1)[0]
    return next((package for package in ONE_PROCESS_PACKAGES if path.startswith(package)), path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ByFileOrPackage(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return process_scope(nodeid)

    return ByFileOrPackage(config, log)


# -- Redis ----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def embedded_redis() -> Iterator[EmbeddedRedis]:
    """One real redis-server for the session, owned by the test process."""
    server = EmbeddedRedis().start()
    yield server
    server.stop()


def _real_targets() -> list[str]:
    return ["embedded", "external"] if EXTERNAL_URL else ["embedded"]


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """3 masters with a replica each, started for the session (skipped, with the reason, where it cannot be)."""
    reason = cluster_unavailable()
    if reason:
        pytest.skip(f"no Redis Cluster here: {reason}")
    try:
        servers = RedisClusterServers(masters=3, replicas=1).start()
    except EmbeddedRedisError as exc:
        pytest.skip(f"could not start a Redis Cluster here: {exc}")
    yield servers
    servers.stop()


@pytest.fixture(params=_real_targets())
def redis_url(request: pytest.FixtureRequest, embedded_redis: EmbeddedRedis) -> Iterator[str]:
    """URL of a real Redis, flushed before and after the test. Runs once per configured server."""
    url = embedded_redis.url if request.param == "embedded" else str(EXTERNAL_URL)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url: str) -> CoordinationSettings:
    """Settings pointing at the test's Redis, with short leases so expiry tests stay quick."""
    return CoordinationSettings(redis_url=redis_url, lease_s=5.0, sweep_interval_s=0.2)


@pytest.fixture(params=["real", *(["external"] if EXTERNAL_URL else []), "fake"])
def any_client(request: pytest.FixtureRequest, embedded_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A real Redis client (the embedded server, and SWARM_REDIS_URL's when set) and a fakeredis
    client: the store contract must hold on each."""
    if request.param == "fake":
        client: redis.Redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    else:
        client = redis.Redis.from_url(embedded_redis.url if request.param == "real" else str(EXTERNAL_URL))
        client.flushdb()
    yield client
    if request.param != "fake":
        client.flushdb()
    client.close()


@pytest.fixture
def make_store(any_client: redis.Redis) -> Callable[..., RecordStore]:
    def make(**kwargs: object) -> RecordStore:
        kwargs.setdefault("retry", RetryPolicy(max_attempts=64, base_s=0.0005, cap_s=0.01))
        return RecordStore(any_client, **kwargs)  # type: ignore[arg-type]
    return make


@pytest.fixture
def make_run(redis_client: redis.Redis, settings: CoordinationSettings) -> Callable[..., RunState]:
    """Factory of run states on the real test Redis, each with a fresh run id."""
    def make(run_id: str | None = None, **overrides: object) -> RunState:
        run_settings = settings.model_copy(update=overrides) if overrides else settings
        return RunState(redis_client, run_id or f"run-{uuid.uuid4().hex[:8]}", run_settings)
    return make
