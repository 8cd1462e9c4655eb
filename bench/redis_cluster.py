"""A real Redis Cluster on this machine for tests and benchmarks: N masters with R replicas each.

Each node is a ``redis-server --cluster-enabled yes`` (the embedded server's start-up, password handling
and clean-up, plus the cluster settings) on a free port; ``redis-cli --cluster create`` joins them and
hands out the 16,384 slots, as an operator would. The nodes listen on loopback and, if asked, on more
addresses (a bridge the test's network namespaces reach), and announce ``announce_ip`` to clients.

Used by the coordination contract suite (``tests/coordination/conftest.py``), the failover test
(``tests/coordination/test_cluster_failover.py``) and ``python -m bench dispatch``.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from coordination.embedded import EmbeddedRedis
from coordination.errors import EmbeddedRedisError


def cluster_unavailable() -> str | None:
    """Why a cluster cannot be started here (a reason to skip with), or None."""
    if shutil.which("redis-cli") is None:
        return "redis-cli is not installed (Debian: apt-get install redis-tools); it creates the cluster"
    try:
        from coordination.embedded import find_redis_server

        find_redis_server()
    except EmbeddedRedisError as exc:
        return str(exc)
    return None


class ClusterNode(EmbeddedRedis):
    """One cluster node: the embedded server's configuration plus cluster mode."""

    def __init__(self, data_dir: Path, *, password: str, binds: Sequence[str], announce_ip: str,
                 node_timeout_ms: int) -> None:
        super().__init__(data_dir, password=password)
        self.binds = list(binds)
        self.announce_ip = announce_ip
        self.node_timeout_ms = node_timeout_ms

    def _config(self, port: int) -> str:
        # Later lines win in redis.conf: these widen the embedded server's settings.
        extra = {"bind": " ".join(["127.0.0.1", *self.binds]), "cluster-enabled": "yes",
                 "cluster-config-file": "nodes.conf", "cluster-node-timeout": str(self.node_timeout_ms),
                 "cluster-announce-ip": self.announce_ip, "masterauth": self.password,
                 # A replica keeps serving nothing stale to us (we never read from replicas), and the
                 # whole cluster keeps answering for the shards that are up.
                 "cluster-require-full-coverage": "no"}
        # The password is URL-safe base64 (see RedisClusterServers), so it needs no quoting here.
        return super()._config(port) + "".join(f"{name} {value}\n" for name, value in extra.items())

    def client(self, *, socket_timeout: float = 5.0) -> redis.Redis:
        """A plain (non-cluster) client on this node alone, for administration."""
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=socket_timeout)

    @property
    def address(self) -> str:
        return f"{self.announce_ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class Shard:
    """One master and its replicas, as the cluster sees them now."""

    master: ClusterNode
    replicas: tuple[ClusterNode, ...]
    slots: tuple[tuple[int, int], ...]


class RedisClusterServers:
    """Start, inspect, fail over and stop a Redis Cluster of ``masters`` x (1 + ``replicas``) nodes."""

    def __init__(self, data_dir: Path | None = None, *, masters: int = 3, replicas: int = 1,
                 binds: Sequence[str] = (), announce_ip: str = "127.0.0.1", node_timeout_ms: int = 2000) -> None:
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="swarm-cluster-")
        self.data_dir = Path(data_dir or self._tmp.name)  # type: ignore[union-attr]
        self.password = secrets.token_urlsafe(18)
        self.masters = masters
        self.replicas = replicas
        self.nodes = [ClusterNode(self.data_dir / f"node{i}", password=self.password, binds=binds,
                                  announce_ip=announce_ip, node_timeout_ms=node_timeout_ms)
                      for i in range(masters * (1 + replicas))]

    # -- life cycle ------------------------------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> RedisClusterServers:
        reason = cluster_unavailable()
        if reason:
            raise EmbeddedRedisError(reason)
        try:
            for node in self.nodes:
                _start_node(node)
            # REDISCLI_AUTH, not -a: a password on the command line is visible to every local user.
            env = {**os.environ, "REDISCLI_AUTH": self.password}
            done = subprocess.run(
                ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
            if done.returncode != 0:
                raise EmbeddedRedisError(f"redis-cli --cluster create failed: {done.stdout[-2000:]}{done.stderr}")
            self.wait_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------------
    def url(self, *, seeds: int = 3, host: str | None = None) -> str:
        """``redis+cluster://`` URL naming the first ``seeds`` nodes (at ``host``, default their announce IP)."""
        names = ",".join(f"{host or n.announce_ip}:{n.port}" for n in self.nodes[:seeds])
        return f"redis+cluster://:{self.password}@{names}/0"

    def flushall(self) -> None:
        for shard in self.shards():
            with shard.master.client() as client:
                client.flushall()

    # -- topology --------------------------------------------------------------------------------
    def shards(self) -> list[Shard]:
        """The shards as the first answering node sees them (CLUSTER SHARDS), masters in slot order."""
        by_port = {n.port: n for n in self.nodes}
        for node in self.nodes:
            if not node.alive():
                continue
            try:
                with node.client() as client:
                    raw = client.execute_command("CLUSTER", "SHARDS")
            except redis.RedisError:
                continue
            shards: list[Shard] = []
            for entry in raw:
                info = _pairs(entry)
                members = [_pairs(n) for n in info[b"nodes"]]
                master = next((by_port[int(m[b"port"])] for m in members
                               if m[b"role"] == b"master" and m[b"health"] == b"online"), None)
                if master is None:
                    continue
                replicas = tuple(by_port[int(m[b"port"])] for m in members
                                 if m[b"role"] == b"replica" and int(m[b"port"]) in by_port)
                slots = info[b"slots"]
                shards.append(Shard(master, replicas, tuple(zip(slots[::2], slots[1::2], strict=True))))
            return sorted(shards, key=lambda s: s.slots[0] if s.slots else (1 << 20, 0))
        raise EmbeddedRedisError("no cluster node answers CLUSTER SHARDS")

    def shard_of(self, key: str) -> Shard:
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        return next(s for s in self.shards() if any(lo <= slot <= hi for lo, hi in s.slots))

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        """Until every live node says cluster_state:ok and the masters cover all 16,384 slots."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                states = []
                for node in self.nodes:
                    if node.alive():
                        with node.client() as client:
                            states.append(client.execute_command("CLUSTER", "INFO").decode())
                shards = self.shards()
                covered = sum(hi - lo + 1 for s in shards for lo, hi in s.slots)
                paired = all(len(s.replicas) == self.replicas for s in shards) and len(shards) == self.masters
                if states and all("cluster_state:ok" in s for s in states) and covered == 16384 and paired:
                    return
                last = (f"{covered} slots covered; {[len(s.replicas) for s in shards]} replicas; "
                        f"states {[s.split()[0] for s in states]}")
            except (redis.RedisError, EmbeddedRedisError) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise EmbeddedRedisError(f"the cluster did not become healthy within {timeout_s:.0f}s: {last}")

    def failover(self, shard: Shard, *, mode: str = "", timeout_s: float = 30.0) -> ClusterNode:
        """``CLUSTER FAILOVER [FORCE|TAKEOVER]`` on the shard's first replica; returns the new master
        once it serves the shard's slots."""
        replica = shard.replicas[0]
        with replica.client() as client:
            client.execute_command("CLUSTER", "FAILOVER", *([mode] if mode else []))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                with replica.client() as client:
                    role = client.execute_command("ROLE")[0]
                if role == b"master" and any(s.master is replica for s in self.shards()):
                    return replica
            time.sleep(0.05)
        raise EmbeddedRedisError(f"replica {replica.address} did not take over within {timeout_s:.0f}s")


def _free_pair() -> int:
    """A port at most 55535 that is free, with its cluster bus port (+10000) free too."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 55535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise EmbeddedRedisError("no free port pair (port, port + 10000) for a cluster node")


def _start_node(node: ClusterNode) -> None:
    # The cluster bus listens on port + 10000, so the embedded server's own port choice is not enough.
    last: EmbeddedRedisError | None = None
    for _ in range(5):
        node.port = _free_pair()
        try:
            node.start()
            return
        except EmbeddedRedisError as exc:  # taken between the probe and the bind: another pair
            last = exc
    assert last is not None
    raise last


def _pairs(flat: Sequence[object] | dict[bytes, object]) -> dict[bytes, object]:
    if isinstance(flat, dict):
        return flat
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}  # type: ignore[misc]
