"""Pointing the coordination layer at a Redis Cluster: the URL forms, clear errors, and where a run's
keys go (one slot per run, runs spread over the shards). The contract suites run on a cluster too
(the ``cluster`` parameter of ``redis_url`` and ``any_client``, tests/coordination/conftest.py)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from pydantic import SecretStr, ValidationError
from redis.crc import key_slot

from bench.redis_cluster import RedisClusterServers
from coordination.connection import cluster_seeds, connect, is_cluster
from coordination.errors import ConfigurationError
from coordination.run import RunState
from coordination.settings import CoordinationSettings


def test_cluster_url_names_its_seed_nodes() -> None:
    first, seeds = cluster_seeds("redis+cluster://app:s3cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002/0?x=1")
    assert first == "redis://app:s3cret@10.0.0.1:7000/0?x=1"
    assert seeds == [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002)]
    assert cluster_seeds("rediss+cluster://redis.internal")[0] == "rediss://redis.internal:6379/0"


@pytest.mark.parametrize(("url", "message"), [
    ("redis+cluster://:pw@h:7000/2", "only database 0"),
    ("redis+cluster://:pw@h:notaport", "bad node"),
    ("redis+cluster://:pw@/0", "at least one node"),
])
def test_bad_cluster_urls_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as err:
        connect(CoordinationSettings(redis_url=SecretStr(url)))
    assert "pw" not in str(err.value)


def test_cluster_flag_needs_a_url_and_marks_a_plain_one() -> None:
    with pytest.raises(ValidationError, match="SWARM_REDIS_CLUSTER"):
        CoordinationSettings(redis_cluster=True)
    flagged = CoordinationSettings(redis_url=SecretStr("redis://:pw@10.0.0.1:7000/0"), redis_cluster=True)
    assert flagged.cluster and is_cluster(flagged, "redis://:pw@10.0.0.1:7000/0")
    plain = CoordinationSettings(redis_url=SecretStr("redis://:pw@10.0.0.1:7000/0"))
    assert not plain.cluster and CoordinationSettings(redis_url=SecretStr("redis+cluster://h:1")).cluster


def test_unreachable_cluster_is_a_clear_error_without_the_password() -> None:
    settings = CoordinationSettings(redis_url=SecretStr("redis+cluster://:hunter2hunter2@127.0.0.1:1/0"),
                                    redis_connect_timeout_s=1)
    with pytest.raises(ConfigurationError, match="cannot reach the Redis Cluster") as err:
        connect(settings)
    assert "hunter2" not in str(err.value) and "***" in str(err.value)


def test_plain_url_with_the_cluster_flag_reaches_the_cluster(redis_cluster: RedisClusterServers) -> None:
    node = redis_cluster.nodes[0]
    url = f"redis://:{redis_cluster.password}@127.0.0.1:{node.port}/0"
    with connect(CoordinationSettings(redis_url=SecretStr(url), redis_cluster=True)) as handle:
        for i in range(20):  # keys of every shard, each routed to the master serving its slot
            handle.client.set(f"{{k{i}}}", str(i))
            with redis_cluster.shard_of(f"{{k{i}}}").master.client() as owner:
                assert owner.get(f"{{k{i}}}") == str(i).encode()
        handle.client.delete(*[f"{{k{i}}}" for i in range(20)])


def test_each_run_lives_in_one_slot_and_runs_spread_over_the_shards(redis_cluster: RedisClusterServers) -> None:
    redis_cluster.flushall()
    url = redis_cluster.url()
    settings = CoordinationSettings(redis_url=SecretStr(url))
    runs = [f"run-{i:02d}" for i in range(24)]  # fixed ids: their slots, and so the spread, are fixed
    with connect(settings) as handle:
        for run_id in runs:  # a bit of everything a run writes
            state = RunState(handle.client, run_id, settings)
            task = state.board.create("worker", "t", parent="P")
            lease = state.board.claim("w", "worker")
            assert lease is not None and lease.task_id == task.id
            state.board.complete(lease)
            state.board.wake_when_children_end("P", "go")
            state.mailboxes.send("a", "b", "hello")
            state.notes.append("scope", "note", author="w")
            state.progress.update(lambda doc: doc, author="w")
            state.events.emit("test", run_id, {})
    where: dict[str, set[tuple[int, int]]] = defaultdict(set)  # run -> {(master port, slot)}
    for shard in redis_cluster.shards():
        with shard.master.client() as client:
            for raw in client.scan_iter(match="swarm:*", count=1000):
                key = raw.decode()
                run_id = key.split("{", 1)[1].split("}", 1)[0]
                where[run_id].add((shard.master.port, key_slot(raw)))
    assert set(where) == set(runs)
    assert all(len(places) == 1 for places in where.values()), {r: p for r, p in where.items() if len(p) > 1}
    masters = {port for places in where.values() for port, _slot in places}
    assert len(masters) == 3, f"24 runs landed on {len(masters)} of 3 shards"
    redis_cluster.flushall()
