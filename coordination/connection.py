"""Turn settings into a Redis connection: the configured URL (one server or a Redis Cluster), or an
embedded server: the state directory's (kept and shared, :mod:`coordination.local_server`) or, with no
directory configured, a private one in a temporary directory.

A cluster is named by the scheme ``redis+cluster://`` (``rediss+cluster://`` for TLS) with one or more
seed nodes separated by commas, or by a plain URL with ``SWARM_REDIS_CLUSTER=1``. Every key of one run
carries the run's hash tag (``coordination/keys.py``), so a run lives in one slot of one shard and its
Lua scripts stay atomic; different runs spread over the shards.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError
from redis.retry import Retry

from coordination.embedded import EmbeddedRedis
from coordination.errors import ConfigurationError, RedisUnreachable
from coordination.local_server import LocalServer
from coordination.settings import CLUSTER_SCHEMES, CoordinationSettings

# Up to the *last* '@' of the URL: redis-py accepts a raw '@' in a password (the host follows the last
# one), so stopping at the first would log the rest of the password. Over-redacting is the safe side.
_PASSWORD_IN_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):\S*@")


def redact_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (safe to log)."""
    return _PASSWORD_IN_URL.sub(r"\1:***@", text)


def _without_password(detail: str, url: str) -> str:
    """An error message about ``url``, or a generic one if it quotes any piece of the URL's password."""
    found = _PASSWORD_IN_URL.search(url)
    password = url[found.end(1) + 1:found.end() - 1] if found else ""
    if any(piece and piece in detail for piece in re.split(r"[/?#@:]", password)):
        return "it does not parse; percent-encode reserved characters (/ ? # @ :) in the password"
    return detail


def _sentence(text: str) -> str:
    """An error message to be followed by more words: no trailing full stop (redis-py ends with one)."""
    return text.strip().rstrip(".")


def client_options(settings: CoordinationSettings, url: str) -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis.from_url`` (timeouts, TLS files)."""
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout_s,
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "health_check_interval": 15,
    }
    if urlsplit(url).scheme in ("rediss", "rediss+cluster"):
        for name, path in (("ssl_ca_certs", settings.redis_ssl_ca_certs),
                           ("ssl_certfile", settings.redis_ssl_certfile),
                           ("ssl_keyfile", settings.redis_ssl_keyfile)):
            if path is not None:
                if not path.exists():
                    raise ConfigurationError(f"{name} file {path} does not exist")
                options[name] = str(path)
    return options


def is_cluster(settings: CoordinationSettings, url: str) -> bool:
    """Does ``url`` name a Redis Cluster (its scheme, or ``SWARM_REDIS_CLUSTER`` for the configured URL)?"""
    return urlsplit(url).scheme in CLUSTER_SCHEMES or (settings.redis_cluster and settings.redis_url is not None
                                                       and url == settings.redis_url.get_secret_value())


def cluster_seeds(url: str) -> tuple[str, list[tuple[str, int]]]:
    """A cluster URL's first node as a plain ``redis://``/``rediss://`` URL, and every seed (host, port).

    ``redis+cluster://user:pw@h1:7000,h2:7001/0``: credentials and options apply to every node; the
    database can only be 0 (a cluster has one).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.removesuffix("+cluster")
    if scheme not in ("redis", "rediss"):
        raise ConfigurationError(f"a Redis Cluster URL must be redis+cluster:// or rediss+cluster://, not "
                                 f"{parts.scheme}://")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    seeds: list[tuple[str, int]] = []
    for item in filter(None, hosts.split(",")):
        host, colon, number = item.rpartition(":") if not item.endswith("]") else (item, "", "")
        if not colon:
            host, number = item, "6379"
        try:
            seeds.append((host.strip("[]"), int(number)))
        except ValueError:
            raise ConfigurationError(f"bad node {item!r} in the Redis Cluster URL: use host:port") from None
    if not seeds:
        raise ConfigurationError("a Redis Cluster URL needs at least one node: redis+cluster://host:port")
    if parts.path.strip("/") not in ("", "0"):
        raise ConfigurationError(f"a Redis Cluster has only database 0, not {parts.path.strip('/')!r}")
    auth = f"{userinfo}@" if userinfo else ""
    host, port = seeds[0]
    first = f"{scheme}://{auth}{'[' + host + ']' if ':' in host else host}:{port}/0"
    return first + (f"?{parts.query}" if parts.query else ""), seeds


class _Cluster(RedisCluster):
    """redis-py's cluster client, resending a command only when the server surely did not run it.

    redis-py also resends after a connection error or timeout, when the command may have run: a
    compare-and-set applied, its reply lost, then resent, is reported as a conflict although it won
    (tests/reliability/test_linearizability.py shows the checker catching exactly that). Redirects
    (MOVED, ASK, TRYAGAIN) are followed either way; a lost reply reaches the caller, as on one server.
    """

    # narrower than redis-py's own tuple on purpose (see above), so its declared type does not fit
    ERRORS_ALLOW_RETRY = (ClusterDownError, SlotNotCoveredError)  # type: ignore[assignment]


def _cluster_retry() -> Retry:
    # Rides out an election (CLUSTERDOWN for about the node timeout); redis-py also waits 0.25 s per try.
    return Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 20)


def _seeds(url: str) -> tuple[str, list[tuple[str, int]]]:
    # A plain URL flagged by SWARM_REDIS_CLUSTER is read as its +cluster form.
    return cluster_seeds(url if urlsplit(url).scheme in CLUSTER_SCHEMES else url.replace("://", "+cluster://", 1))


def make_client(settings: CoordinationSettings, url: str) -> redis.Redis:
    """A client on a blocking pool: hundreds of agent threads share it, and redis-py's default pool
    raises "Too many connections" past 100 where waiting a moment for a free one is right.

    For a cluster, a :class:`redis.cluster.RedisCluster` with one such pool per node. It answers the same
    commands (routing each by its key's slot), so callers keep the ``redis.Redis`` type.
    """
    if is_cluster(settings, url):
        first, seeds = _seeds(url)
        client = _Cluster(url=first, startup_nodes=[ClusterNode(h, p) for h, p in seeds[1:]],
                          connection_pool_class=redis.BlockingConnectionPool,
                          max_connections=settings.redis_max_connections, timeout=settings.redis_socket_timeout_s,
                          retry=_cluster_retry(), **client_options(settings, url))
        return cast(redis.Redis, client)
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=settings.redis_max_connections,
                                                 timeout=settings.redis_socket_timeout_s,
                                                 **client_options(settings, url))
    return redis.Redis.from_pool(pool)


def make_async_client(settings: CoordinationSettings, url: str) -> redis.asyncio.Redis:
    """An asyncio client on the same server or cluster (for readers that block on streams)."""
    options = client_options(settings, url)
    if not is_cluster(settings, url):
        return redis.asyncio.Redis.from_url(url, **options)
    options.pop("health_check_interval")  # not an option of the cluster client
    first, seeds = _seeds(url)
    nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in seeds[1:]]
    return cast(redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster.from_url(
        first, startup_nodes=nodes or None, **options))


@dataclass
class RedisHandle:
    """A connected client, the URL other processes can use, and the embedded server if we run one
    (``embedded``: the server process; ``local``: set when it is a state directory's, see
    :mod:`coordination.local_server`, whose server this process may run or only use)."""

    url: str
    client: redis.Redis
    embedded: EmbeddedRedis | None
    settings: CoordinationSettings
    local: LocalServer | None = None

    @property
    def is_embedded(self) -> bool:
        """No ``SWARM_REDIS_URL``: the server is an embedded one (ours or our state directory's)."""
        return self.embedded is not None or self.local is not None

    def new_client(self) -> redis.Redis:
        """Another client on the same server (for a thread or a blocking reader)."""
        return make_client(self.settings, self.url)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.local is not None:
            self.local.close()  # stops the server too if this process runs it
        elif self.embedded is not None:
            self.embedded.stop()

    def __enter__(self) -> RedisHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _abandon(embedded: EmbeddedRedis | None, local: LocalServer | None) -> None:
    """Stop what connect() started before it failed."""
    if local is not None:
        local.close()
    elif embedded is not None:
        embedded.stop()


def connect(settings: CoordinationSettings | None = None, *, check: bool = True) -> RedisHandle:
    """Connect to ``SWARM_REDIS_URL``, or start an embedded server when none is configured."""
    settings = settings or CoordinationSettings()
    embedded: EmbeddedRedis | None = None
    local: LocalServer | None = None
    if settings.redis_url is not None:
        url = settings.redis_url.get_secret_value()
    elif settings.embedded_dir is not None:  # the state directory's server: kept, shared, started on demand
        local = LocalServer(settings.embedded_dir).open()
        url, embedded = local.url, local.server
    else:
        embedded = EmbeddedRedis(None, appendonly=settings.embedded_appendonly).start()
        url = embedded.url
    try:
        client = make_client(settings, url)
    except ValueError as exc:
        _abandon(embedded, local)
        # Not chained: redis-py's message can quote a piece of a password that holds '/', '?' or '#'.
        raise ConfigurationError(f"bad Redis URL {redact_url(url)}: {_without_password(str(exc), url)}") from None
    except (RedisClusterException, redis.RedisError) as exc:
        # The cluster client connects while it is built, to learn which node serves which slots.
        raise ConfigurationError(
            f"cannot reach the Redis Cluster at {redact_url(url)}: {_without_password(str(exc), url)}. Check that "
            "its nodes are up and that the URL names at least one of them") from exc
    if check:
        try:
            client.ping()
        except redis.AuthenticationError as exc:
            _abandon(embedded, local)
            raise ConfigurationError(f"Redis at {redact_url(url)} refused the credentials: "
                                     f"{_sentence(str(exc))}. Fix the user and password in SWARM_REDIS_URL") from exc
        except redis.RedisError as exc:
            _abandon(embedded, local)
            raise RedisUnreachable(
                f"cannot reach Redis at {redact_url(url)}: {_sentence(str(exc))}. Start Redis there, fix "
                "SWARM_REDIS_URL, or unset it to use the embedded server") from exc
    return RedisHandle(url=url, client=client, embedded=embedded, settings=settings, local=local)
