"""A Redis Cluster failing over under a run: what it keeps, what it can lose, and what the fencing does.

Every record operation of the run is recorded in a history (one register per key) and judged by the
project's linearizability checker (``tests/history.py``).

* A manual ``CLUSTER FAILOVER`` on a replica mid-run (the replica catches up before it takes over):
  nothing is lost, every history is linearizable, each task is completed exactly once.
* What asynchronous replication can lose: a replica cut off from its master, the master acknowledging
  a write it never replicated, then ``CLUSTER FAILOVER TAKEOVER`` on the replica. The acknowledged
  write is gone (the checker says so); the client that made it is fenced (its next write names a
  version the record no longer has and is refused), the lease lapses, another worker takes the task
  over and completes it once.
"""

from __future__ import annotations

import multiprocessing.context
import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from bench.redis_cluster import ClusterNode, RedisClusterServers
from coordination.connection import make_client
from coordination.errors import LeaseLost
from coordination.run import RunState
from coordination.settings import CoordinationSettings
from coordination.tasks import TaskStatus
from tests.coordination import _workers
from tests.history import Operation, OpKind, Outcome, check_history, load_history

TASKS = 40


def _state(url: str, out: Path, process: str, run_id: str) -> tuple[RunState, _workers.RecordingStore]:
    settings = CoordinationSettings(redis_url=SecretStr(url), lease_s=3.0)
    client = make_client(settings, url)
    store = _workers.RecordingStore(client, out, process, retry=_workers.PATIENT)
    return RunState(client, run_id, settings, records=store), store


def _histories(out: Path) -> dict[str, list[Operation]]:
    return {(folder / "key").read_text(): load_history(sorted(folder.glob("*.jsonl")))
            for folder in out.iterdir() if folder.is_dir()}


def _completions(ops: list[Operation]) -> list[Operation]:
    return [op for op in ops if op.kind is OpKind.CAS and op.outcome is Outcome.OK and (op.value or "").startswith(
        f"{TaskStatus.DONE.value}:")]


def test_manual_failover_mid_run_loses_nothing_and_completes_each_task_once(
        redis_cluster: RedisClusterServers, mp_context: multiprocessing.context.BaseContext, tmp_path: Path) -> None:
    url, out, run_id = redis_cluster.url(), tmp_path / "history", f"fo-{uuid.uuid4().hex[:8]}"
    run, store = _state(url, out, "parent", run_id)
    for i in range(TASKS):
        run.board.create("worker", f"task {i}", task_id=f"t{i:03d}")
    shard = redis_cluster.shard_of(run.keys.task("t000"))
    stop, results = mp_context.Event(), mp_context.Queue()
    procs = [mp_context.Process(target=_workers.report, args=(results, i, _workers.failover_worker, url, run_id,
                                                              str(out), f"w{i}", 0.05, stop), daemon=True)
             for i in range(4)]
    for proc in procs:
        proc.start()
    try:
        deadline = time.monotonic() + 120
        while run.board.counts()[TaskStatus.DONE] < TASKS // 3:
            assert time.monotonic() < deadline, "the workers did not get going"
            time.sleep(0.05)
        new_master = redis_cluster.failover(shard)  # mid-run: tasks held, more to come
        switched_ns = time.monotonic_ns()
        assert new_master is not shard.master and redis_cluster.shard_of(run.keys.task("t000")).master is new_master
        while run.board.counts()[TaskStatus.DONE] < TASKS:
            assert time.monotonic() < deadline, f"tasks left undone: {run.board.counts()}"
            time.sleep(0.05)
    finally:
        stop.set()
        counts = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(10)
    assert all(status == "ok" for _i, status, _v in counts), counts
    final = [run.board.get(f"t{i:03d}") for i in range(TASKS)]  # recorded reads: they end each history
    store.close()

    histories = _histories(out)
    task_keys = {run.keys.task(f"t{i:03d}") for i in range(TASKS)}
    assert task_keys <= set(histories)
    for key, ops in histories.items():
        verdict = check_history(ops)
        assert verdict.ok, f"{key}: {verdict}"
    assert all(task.status is TaskStatus.DONE for task in final)
    per_task = Counter(key for key in task_keys for _op in _completions(histories[key]))
    assert per_task == dict.fromkeys(task_keys, 1), "a task was completed twice, or never"
    assert sum(v["completed"] for _i, _s, v in counts) == TASKS
    assert any(op.invoke_ns > switched_ns for key in task_keys for op in _completions(histories[key])), \
        "every task ended before the failover: it did not happen mid-run"


def _replicated(master: ClusterNode, replica: ClusterNode, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with master.client() as m, replica.client() as r:
            if m.info("replication")["master_repl_offset"] == r.info("replication")["slave_repl_offset"]:
                return
        time.sleep(0.02)
    raise AssertionError("the replica did not catch up")


def test_takeover_after_a_partition_loses_an_acknowledged_write_and_the_fencing_catches_it(
        redis_cluster: RedisClusterServers, tmp_path: Path) -> None:
    url, out, run_id = redis_cluster.url(), tmp_path / "history", f"lost-{uuid.uuid4().hex[:8]}"
    a, a_store = _state(url, out, "a", run_id)
    b, b_store = _state(url, out, "b", run_id)
    a.board.create("worker", "the task", task_id="t")
    key = a.keys.task("t")
    redis_cluster.wait_healthy()  # an earlier failover's old master may still be rejoining as a replica
    shard = redis_cluster.shard_of(key)
    master, replica = shard.master, shard.replicas[0]
    lease = a.board.claim("a", "worker")
    assert lease is not None
    _replicated(master, replica)
    assert master.process is not None and replica.process is not None

    # The replica stops hearing from its master; the master goes on acknowledging writes.
    os.kill(replica.process.pid, signal.SIGSTOP)
    try:
        with master.client() as admin:
            admin.execute_command("CLIENT", "KILL", "TYPE", "replica")
        held = a.board.heartbeat(lease)  # acknowledged by the master, never replicated
        assert held.version == lease.version + 1
        os.kill(master.process.pid, signal.SIGSTOP)  # and now the master is cut off too
        os.kill(replica.process.pid, signal.SIGCONT)
        with replica.client() as promote:
            promote.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with replica.client() as check:
                if check.execute_command("ROLE")[0] == b"master":
                    break
            time.sleep(0.05)
    finally:
        os.kill(replica.process.pid, signal.SIGCONT)
        os.kill(master.process.pid, signal.SIGCONT)
    redis_cluster.wait_healthy()
    assert redis_cluster.shard_of(key).master is replica

    # The write the master acknowledged is gone: the record is back at the claim.
    assert b.board.get("t").lease_expires_at == lease.task.lease_expires_at
    # Fenced: the holder names the version it was told it has; the record is not there.
    with pytest.raises(LeaseLost):
        a.board.complete(held, {"by": "a"})
    # Its lease lapses (by the server's clock); another worker takes the task over and does it once.
    deadline = time.monotonic() + 30
    taken = None
    while taken is None:
        assert time.monotonic() < deadline, "the lapsed lease was never taken over"
        b.board.sweep()
        taken = b.board.claim("b", "worker")
        time.sleep(0.1)
    b.board.complete(taken, {"by": "b"})
    final = b.board.get("t")
    a_store.close()
    b_store.close()

    assert final.status is TaskStatus.DONE and final.result == {"by": "b"}
    ops = _histories(out)[key]
    assert [op.process for op in _completions(ops)] == ["b"]
    verdict = check_history(ops)
    assert not verdict.ok, "an acknowledged write was lost, and the checker must say so"
    assert any("lost update" in p or "stale" in p for p in verdict.problems), verdict


def test_cluster_clients_never_resend_a_command_whose_reply_may_be_lost(redis_cluster: RedisClusterServers) -> None:
    """redis-py's cluster client resends after a connection error by default: a compare-and-set applied
    but reported lost (tests/reliability/test_linearizability.py). Ours follows only safe redirects."""
    client = make_client(CoordinationSettings(redis_url=SecretStr(redis_cluster.url())), redis_cluster.url())
    try:
        allowed = type(client).ERRORS_ALLOW_RETRY  # type: ignore[attr-defined]
        assert redis.ConnectionError not in allowed and redis.TimeoutError not in allowed
        assert client.retry.get_retries() > 0  # CLUSTERDOWN during an election is waited out
    finally:
        client.close()
