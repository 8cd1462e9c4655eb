"""Many OS processes on one real Redis: no lost update, no double claim, leases fence the dead.

The processes come from a forkserver (see ``mp_context``); each builds its own Redis client from the
URL. Nothing here asserts on wall-clock speed except the lease-loss bound, which allows wide slack.
"""

from __future__ import annotations

import json
import multiprocessing.context
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
import redis

from coordination.run import RunState
from coordination.store import RecordStore
from coordination.tasks import TaskStatus
from tests.coordination import _workers
from tests.coordination._workers import run_in_processes

MakeRun = Callable[..., RunState]
Ctx = multiprocessing.context.BaseContext

PROCS = 16


@pytest.mark.slow
def test_concurrent_updates_lose_nothing(redis_url: str, redis_client: redis.Redis, mp_context: Ctx) -> None:
    per_proc = 500
    key = f"counter-{uuid.uuid4().hex[:6]}"
    store = RecordStore(redis_client)
    assert store.create(key, json.dumps({"n": 0}).encode()) == 1
    barrier = mp_context.Barrier(PROCS)
    versions = run_in_processes(mp_context, _workers.increment,
                                [(redis_url, key, per_proc, barrier) for _ in range(PROCS)])
    successes = sum(len(v) for v in versions)
    assert successes == PROCS * per_proc == 8000
    final = store.get(key)
    assert final is not None
    assert json.loads(final.data)["n"] == successes
    assert final.version == successes + 1  # + the create
    # Each successful write produced its own version: every one from 2 to 8001, none twice.
    produced = sorted(v for proc in versions for v in proc)
    assert produced == list(range(2, successes + 2))


@pytest.mark.slow
def test_concurrent_claims_take_each_task_exactly_once(redis_url: str, make_run: MakeRun,
                                                       mp_context: Ctx) -> None:
    total = 2000
    run = make_run()
    # Three priority tiers, so claimants also contend on the head of each tier as it drains.
    created = {run.board.create("worker", f"task {i}", priority=i % 3).id for i in range(total)}
    assert len(created) == total
    barrier = mp_context.Barrier(PROCS)
    claimed = run_in_processes(mp_context, _workers.claim_all,
                               [(redis_url, run.run_id, "worker", f"w{i}", barrier) for i in range(PROCS)])
    flat = [tid for proc in claimed for tid in proc]
    dupes = [tid for tid, n in Counter(flat).items() if n > 1]
    assert dupes == []
    assert set(flat) == created
    assert run.board.counts() == {**dict.fromkeys(TaskStatus, 0), TaskStatus.DONE: total}
    assert run.redis.zcard(run.keys.ready("worker")) == 0
    assert run.redis.zcard(run.keys.leases()) == 0
    # Each task's result names the one claimant whose list holds it.
    owner = {tid: f"w{i}" for i, proc in enumerate(claimed) for tid in proc}
    for task in run.board.get_many(sorted(created)[:200]):
        assert task is not None and task.result == {"by": owner[task.id]} and task.claimant == owner[task.id]


@pytest.mark.slow
def test_silent_claimant_loses_its_task_to_the_sweeper(redis_url: str, make_run: MakeRun,
                                                       mp_context: Ctx) -> None:
    lease_s, sweep_every_s = 1.0, 0.2
    slack_s = 10.0  # a shared, loaded 2-core machine: only gross lateness should fail this
    run = make_run()
    task = run.board.create("worker", "the only task", max_attempts=3)
    out = mp_context.Queue()
    go_a, go_b, stop = mp_context.Event(), mp_context.Event(), mp_context.Event()
    a = mp_context.Process(target=_workers.hold_then_complete,
                           args=(redis_url, run.run_id, "worker", "silent", lease_s, out, go_a), daemon=True)
    a.start()
    try:
        _, who, task_id, a_version, a_expires = out.get(timeout=120)
        assert (who, task_id) == ("silent", task.id)
        sweep = mp_context.Process(target=_workers.sweeper, args=(redis_url, run.run_id, sweep_every_s, stop),
                                   daemon=True)
        b = mp_context.Process(target=_workers.claim_when_free,
                               args=(redis_url, run.run_id, "worker", "rescuer", out, go_b), daemon=True)
        sweep.start()
        b.start()
        _, who, b_task, b_version, b_claimed_at = out.get(timeout=120)
        assert (who, b_task) == ("rescuer", task.id)
        # Never handed over before the lease ran out (server clock; an allowance for the error of the
        # clock offset each process measured under load), and not long after it either.
        assert b_claimed_at >= a_expires - 0.5
        assert b_claimed_at - a_expires <= sweep_every_s + slack_s
        assert b_version > a_version
        stop.set()

        go_a.set()  # the silent one wakes up and tries to finish: fenced off
        assert out.get(timeout=120) == ("lease_lost", "silent", a_version, b_version)
        go_b.set()
        assert out.get(timeout=120) == ("completed", "rescuer", task.id)
        final = run.board.get(task.id)
        assert final.status is TaskStatus.DONE
        assert final.result == {"by": "rescuer"} and final.claimant == "rescuer"
        assert final.attempts == 1  # the expired claim counted
        for proc in (a, b, sweep):
            proc.join(timeout=60)
            assert proc.exitcode == 0
    finally:
        stop.set()
        go_a.set()
        go_b.set()
        for proc in multiprocessing.active_children():
            proc.kill()
