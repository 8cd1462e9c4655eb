"""The task board, one operation at a time, on a real Redis."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import pytest
import redis

from coordination.board import TaskBoard
from coordination.errors import (
    AlreadyExists,
    InvalidTransition,
    LeaseLost,
    NotFound,
    VersionConflict,
)
from coordination.run import RunState
from coordination.tasks import Lease, SweepReport, Task, TaskStatus
from tests.coordination.conftest import Clock

MakeRun = Callable[..., RunState]
S = TaskStatus


def _ready(run: RunState, role: str) -> list[tuple[str, float]]:
    return [(m.decode(), s) for m, s in run.redis.zrange(run.keys.ready(role), 0, -1, withscores=True)]


def _leases(run: RunState) -> dict[str, float]:
    return {m.decode(): s for m, s in run.redis.zrange(run.keys.leases(), 0, -1, withscores=True)}


def _claim(board: TaskBoard, claimant: str, role: str, **kw: object) -> Lease:
    lease = board.claim(claimant, role, **kw)  # type: ignore[arg-type]
    assert lease is not None
    return lease


# -- create and read ------------------------------------------------------------------------------

def test_create_files_a_pending_task_with_its_indexes(make_run: MakeRun) -> None:
    run = make_run()
    task = run.board.create("coder", "write it", "the body", priority=7, labels={"area": "x"}, task_id="t1")
    assert task.status is S.PENDING and task.run == run.run_id and task.attempts == 0
    assert run.board.get("t1") == task
    assert _ready(run, "coder") == [("t1", -7.0)]
    assert run.board.ids(S.PENDING) == ["t1"]
    assert run.board.counts() == {**dict.fromkeys(S, 0), S.PENDING: 1}
    assert run.board.roles() == ["coder"]
    assert run.records.get(run.keys.task("t1")).version == 1  # type: ignore[union-attr]


def test_create_generates_sortable_ids(make_run: MakeRun) -> None:
    run = make_run()
    ids = [run.board.create("r", f"t{i}").id for i in range(5)]
    assert len(set(ids)) == 5
    assert all(i.startswith("t-") for i in ids)


def test_create_with_taken_id_raises_already_exists(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "first", task_id="same")
    with pytest.raises(AlreadyExists):
        run.board.create("r", "second", task_id="same")
    assert run.board.get("same").title == "first"
    assert run.board.counts()[S.PENDING] == 1


def test_get_many_tasks_roles_children(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("a", "1", task_id="t1")
    run.board.create("b", "2", task_id="t2", parent="t1")
    run.board.create("b", "3", task_id="t3", parent="t1")
    assert [t.id if t else None for t in run.board.get_many(["t1", "nope", "t3"])] == ["t1", None, "t3"]
    assert [t.id for t in run.board.tasks(role="b")] == ["t2", "t3"]
    assert [t.id for t in run.board.tasks([S.PENDING])] == ["t1", "t2", "t3"]
    assert run.board.roles() == ["a", "b"]
    assert [t.id for t in run.board.children("t1")] == ["t2", "t3"]
    assert run.board.open_children("t1") == 2
    assert run.board.open_children("t2") == 0


def test_runs_do_not_see_each_other(make_run: MakeRun) -> None:
    one, two = make_run(), make_run()
    one.board.create("r", "only in one", task_id="t1")
    assert two.board.claim("w", "r") is None
    with pytest.raises(NotFound):
        two.board.get("t1")


# -- claim ----------------------------------------------------------------------------------------

def test_claim_takes_highest_priority_first(make_run: MakeRun) -> None:
    run = make_run()
    for tid, prio in [("low", -5), ("mid", 0), ("high", 9), ("mid2", 0)]:
        run.board.create("r", tid, priority=prio, task_id=tid)
    order = [_claim(run.board, "w", "r").task_id for _ in range(4)]
    assert order[0] == "high"
    assert set(order[1:3]) == {"mid", "mid2"}
    assert order[3] == "low"
    assert run.board.claim("w", "r") is None


def test_claim_sets_claimant_lease_and_indexes(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "x", task_id="t1")
    lease = _claim(run.board, "worker-1", "r", lease_s=12.0)
    assert lease.claimant == "worker-1" and lease.task.status is S.CLAIMED
    assert lease.version == 2
    assert lease.expires_at == pytest.approx(lease.task.updated_at + 12.0)
    assert _leases(run) == {"t1": pytest.approx(lease.expires_at)}
    assert _ready(run, "r") == []
    assert run.board.get("t1") == lease.task
    assert run.board.counts()[S.CLAIMED] == 1 and run.board.counts()[S.PENDING] == 0


def test_claim_respects_role(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("reviewer", "x", task_id="t1")
    assert run.board.claim("w", "coder") is None
    assert _claim(run.board, "w", "reviewer").task_id == "t1"


def test_claim_after_losing_race_in_think_takes_another_task(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "a", task_id="a")
    run.board.create("r", "b", task_id="b")
    rival = make_run(run_id=run.run_id)
    stolen: list[str] = []

    def think(task: Task) -> None:
        if not stolen:  # another agent claims the very task we are looking at
            stolen.append(_take(rival, task.id, "rival").task_id)

    mine = _claim(run.board, "me", "r", think=think)
    assert mine.task_id != stolen[0]
    assert {mine.task_id, stolen[0]} == {"a", "b"}
    assert run.board.get(stolen[0]).claimant == "rival"


# -- holding: heartbeat, complete, fail, release ------------------------------------------------------

def test_heartbeat_extends_and_fences_the_old_lease(make_run: MakeRun, clock: Clock) -> None:
    run = clock.install(make_run())
    run.board.create("r", "x", task_id="t1")
    lease = _claim(run.board, "w", "r", lease_s=10)
    assert lease.expires_at == clock.t + 10
    clock.advance(6)
    renewed = run.board.heartbeat(lease, lease_s=10)
    assert renewed.version == lease.version + 1
    assert renewed.expires_at == clock.t + 10
    assert _leases(run) == {"t1": clock.t + 10}
    with pytest.raises(LeaseLost) as err:
        run.board.heartbeat(lease)
    assert isinstance(err.value, VersionConflict)
    assert (err.value.expected, err.value.actual) == (lease.version, renewed.version)
    with pytest.raises(LeaseLost):
        run.board.complete(lease, "stale")
    assert run.board.complete(renewed, "fresh").result == "fresh"


def test_complete_marks_done_and_leaves_every_queue(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "x", task_id="t1")
    lease = _claim(run.board, "w", "r")
    done = run.board.complete(lease, {"answer": 42, "list": [1, "a"]})
    assert done.status is S.DONE and done.ended_at is not None and done.lease_expires_at is None
    assert run.board.get("t1").result == {"answer": 42, "list": [1, "a"]}
    assert _leases(run) == {} and _ready(run, "r") == []
    assert run.board.counts() == {**dict.fromkeys(S, 0), S.DONE: 1}
    with pytest.raises(LeaseLost):
        run.board.complete(lease, "twice")
    assert run.board.claim("w", "r") is None


def test_holder_write_needs_a_claimed_lease(make_run: MakeRun) -> None:
    run = make_run()
    task = run.board.create("r", "x", task_id="t1")
    with pytest.raises(InvalidTransition):
        run.board.complete(Lease(task, 1))
    assert run.board.get("t1").status is S.PENDING


def test_fail_with_retry_requeues_until_attempts_run_out(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "x", task_id="t1", max_attempts=3)
    for expected_attempts in (1, 2):
        lease = _claim(run.board, "w", "r")
        after = run.board.fail(lease, f"try {expected_attempts}", retry=True)
        assert after.status is S.PENDING and after.attempts == expected_attempts and after.claimant is None
        assert _ready(run, "r") == [("t1", 0.0)]
    last = run.board.fail(_claim(run.board, "w", "r"), "third", retry=True)
    assert last.status is S.FAILED and last.attempts == 3 and last.error == "third"
    assert run.board.claim("w", "r") is None
    assert run.board.counts()[S.FAILED] == 1


def test_fail_without_retry_is_final(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "x", task_id="t1", max_attempts=5)
    failed = run.board.fail(_claim(run.board, "w", "r"), "broken")
    assert failed.status is S.FAILED and failed.attempts == 1
    assert run.board.get("t1").error == "broken"


def test_release_returns_task_untouched(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "x", task_id="t1", priority=3)
    lease = _claim(run.board, "w", "r")
    released = run.board.release(lease)
    assert released.status is S.PENDING and released.attempts == 0 and released.claimant is None
    assert _ready(run, "r") == [("t1", -3.0)] and _leases(run) == {}
    with pytest.raises(LeaseLost):
        run.board.release(lease)
    assert _claim(run.board, "other", "r").claimant == "other"


# -- cancel ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("state", ["pending", "blocked", "claimed"])
def test_cancel_from_each_open_state(make_run: MakeRun, state: str) -> None:
    run = make_run()
    run.board.create("r", "dep", task_id="dep")
    lease: Lease | None = None
    if state == "blocked":
        run.board.create("r", "x", task_id="t1", depends_on=["dep"])
    else:
        run.board.cancel("dep")
        run.board.create("r", "x", task_id="t1")
        if state == "claimed":
            lease = _claim(run.board, "w", "r")
    cancelled = run.board.cancel("t1", "not needed")
    assert cancelled.status is S.CANCELLED and cancelled.error == "not needed"
    assert run.board.get("t1").status is S.CANCELLED
    assert "t1" not in dict(_ready(run, "r")) and "t1" not in _leases(run)
    assert "t1" in run.board.ids(S.CANCELLED)
    if lease is not None:
        with pytest.raises(LeaseLost):
            run.board.complete(lease, "too late")
        assert run.board.get("t1").status is S.CANCELLED


def test_cancel_is_idempotent_and_leaves_ended_tasks_alone(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "x", task_id="done")
    run.board.complete(_claim(run.board, "w", "r"))
    assert run.board.cancel("done").status is S.DONE
    run.board.create("r", "y", task_id="c")
    first = run.board.cancel("c", "first")
    again = run.board.cancel("c", "second")
    assert first.status is again.status is S.CANCELLED and again.error == "first"
    assert run.records.get(run.keys.task("c")).version == 2  # type: ignore[union-attr]


def test_cancel_all(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "a", task_id="a")
    run.board.create("r", "b", task_id="b", depends_on=["a"])
    run.board.create("r", "c", task_id="c")
    run.board.create("r", "d", task_id="d")
    run.board.complete(_take(run, "d"))
    _take(run, "c")
    assert run.board.cancel_all("stop") == 3
    assert run.board.counts() == {**dict.fromkeys(S, 0), S.CANCELLED: 3, S.DONE: 1}


def _take(run: RunState, task_id: str, claimant: str = "w") -> Lease:
    """Claim one specific task (releasing others picked on the way)."""
    held: list[Lease] = []
    try:
        while True:
            lease = _claim(run.board, claimant, run.board.get(task_id).role)
            if lease.task_id == task_id:
                return lease
            held.append(lease)
    finally:
        for other in held:
            run.board.release(other)


# -- dependencies ---------------------------------------------------------------------------------

def test_dependency_blocks_until_done(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "first", task_id="a")
    b = run.board.create("r", "second", task_id="b", depends_on=["a"])
    assert b.status is S.BLOCKED
    assert _ready(run, "r") == [("a", 0.0)]
    lease = _claim(run.board, "w", "r")
    assert lease.task_id == "a"
    assert run.board.claim("w", "r") is None  # b is blocked
    run.board.complete(lease)
    assert run.board.get("b").status is S.PENDING
    assert _claim(run.board, "w", "r").task_id == "b"


def test_dependency_on_done_task_is_pending_at_once(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "first", task_id="a")
    run.board.complete(_claim(run.board, "w", "r"))
    assert run.board.create("r", "second", depends_on=["a"]).status is S.PENDING


@pytest.mark.parametrize("how", ["fail", "cancel"])
def test_dependency_on_ended_badly_task_is_cancelled_at_once(make_run: MakeRun, how: str) -> None:
    run = make_run()
    run.board.create("r", "first", task_id="a")
    if how == "fail":
        run.board.fail(_claim(run.board, "w", "r"), "boom")
    else:
        run.board.cancel("a")
    b = run.board.create("r", "second", task_id="b", depends_on=["a"], parent="p")
    assert b.status is S.CANCELLED and "a" in (b.error or "")
    assert run.board.open_children("p") == 0  # never counted as open


def test_waits_for_every_dependency(make_run: MakeRun) -> None:
    run = make_run()
    for tid in ("a", "b"):
        run.board.create("r", tid, task_id=tid)
    run.board.create("r", "joins", task_id="c", depends_on=["a", "b"])
    run.board.complete(_take(run, "a"))
    assert run.board.get("c").status is S.BLOCKED
    run.board.complete(_take(run, "b"))
    assert run.board.get("c").status is S.PENDING


def test_failure_cascades_cancel_down_the_chain(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "root", task_id="a")
    run.board.create("r", "mid", task_id="b", depends_on=["a"])
    run.board.create("r", "leaf", task_id="c", depends_on=["b"])
    run.board.create("r", "other", task_id="d", depends_on=["b"])
    run.board.create("r", "free", task_id="e")
    run.board.fail(_take(run, "a"), "boom")
    for tid in ("b", "c", "d"):
        assert run.board.get(tid).status is S.CANCELLED, tid
    assert run.board.get("e").status is S.PENDING
    assert run.board.counts() == {**dict.fromkeys(S, 0), S.FAILED: 1, S.CANCELLED: 3, S.PENDING: 1}


def test_cancel_cascades_to_blocked_dependents(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "root", task_id="a")
    run.board.create("r", "mid", task_id="b", depends_on=["a"])
    run.board.cancel("a")
    assert run.board.get("b").status is S.CANCELLED


def test_sweep_repairs_a_dependent_left_blocked_by_a_crash(make_run: MakeRun,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run()
    run.board.create("r", "root", task_id="a")
    run.board.create("r", "next", task_id="b", depends_on=["a"])
    # The completer dies between its write and settling dependents.
    monkeypatch.setattr(run.board, "_settle_dependents", lambda task_id: None)
    run.board.complete(_take(run, "a"))
    assert run.board.get("b").status is S.BLOCKED
    monkeypatch.undo()
    assert run.board.sweep() == SweepReport(unblocked=1)
    assert run.board.get("b").status is S.PENDING
    assert run.board.sweep() == SweepReport()


def test_sweep_does_not_report_a_repair_it_lost(make_run: MakeRun, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweeper decides to unblock b, but b is cancelled before its write lands: nothing to report."""
    run = make_run()
    rival = make_run(run_id=run.run_id)
    run.board.create("r", "root", task_id="a")
    run.board.create("r", "next", task_id="b", depends_on=["a"])
    with monkeypatch.context() as patch:
        patch.setattr(run.board, "_settle_dependents", lambda task_id: None)
        run.board.complete(_take(run, "a"))
    real_read_many = run.board._read_many

    def racing(task_ids: Sequence[str]) -> list[tuple[Task, int]]:
        result = real_read_many(task_ids)
        if rival.board.get("b").status is S.BLOCKED:
            rival.board.cancel("b")
        return result

    monkeypatch.setattr(run.board, "_read_many", racing)
    assert run.board.sweep() == SweepReport()
    assert run.board.get("b").status is S.CANCELLED


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth


def test_cancel_cascades_down_a_chain_deeper_than_the_stack(make_run: MakeRun) -> None:
    """A cascade that recursed per level would overflow the stack; the worklist does not."""
    run = make_run()
    depth = 150
    run.board.create("r", "root", task_id="c0")
    for i in range(1, depth):
        run.board.create("r", f"step {i}", task_id=f"c{i}", depends_on=[f"c{i - 1}"])
    # Room for the cancel's own calls (redis-py included), but not for ~2 frames per chain level:
    # a long chain then costs a fraction of a second instead of hundreds of round trips.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + depth)
    try:
        run.board.cancel("c0")
    finally:
        sys.setrecursionlimit(limit)
    assert run.board.counts() == {**dict.fromkeys(S, 0), S.CANCELLED: depth}


# -- lease expiry ---------------------------------------------------------------------------------

def test_sweep_requeues_expired_and_spares_live_leases(make_run: MakeRun, clock: Clock) -> None:
    run = clock.install(make_run())
    run.board.create("r", "x", task_id="t1")
    run.board.create("r", "y", task_id="t2")
    l1 = _take(run, "t1")
    l2 = _take(run, "t2")
    clock.advance(run.board.lease_s - 1)
    l2 = run.board.heartbeat(l2)
    assert run.board.sweep() == SweepReport()
    clock.advance(2)
    assert run.board.sweep() == SweepReport(requeued=1)
    t1 = run.board.get("t1")
    assert t1.status is S.PENDING and t1.attempts == 1 and t1.claimant is None and "expired" in (t1.error or "")
    assert run.board.get("t2").status is S.CLAIMED
    with pytest.raises(LeaseLost):
        run.board.complete(l1)
    run.board.complete(l2)


def test_sweep_fails_after_max_attempts_and_cancels_dependents(make_run: MakeRun, clock: Clock) -> None:
    run = clock.install(make_run())
    run.board.create("r", "x", task_id="t1", max_attempts=2)
    run.board.create("r", "after", task_id="t2", depends_on=["t1"])
    _claim(run.board, "w", "r", lease_s=1)
    clock.advance(5)
    assert run.board.sweep() == SweepReport(requeued=1)
    _claim(run.board, "w", "r", lease_s=1)
    clock.advance(5)
    assert run.board.sweep() == SweepReport(failed=1)
    assert run.board.get("t1").status is S.FAILED and run.board.get("t1").attempts == 2
    assert run.board.get("t2").status is S.CANCELLED
    assert _leases(run) == {}


def test_concurrent_sweepers_count_each_expiry_once(make_run: MakeRun, clock: Clock) -> None:
    """Two sweepers racing on one expired lease: the task is requeued once and reported once."""
    run = clock.install(make_run())
    rival = clock.install(make_run(run_id=run.run_id))
    run.board.create("r", "x", task_id="t1")
    _claim(run.board, "w", "r", lease_s=1)
    clock.advance(5)
    reports: list[SweepReport] = []
    real_read = run.board._read

    def interleaved(task_id: str) -> tuple[Task, int]:
        result = real_read(task_id)
        if not reports:  # the rival sweeps right after we looked
            reports.append(rival.board.sweep())
        return result

    run.board._read = interleaved  # type: ignore[method-assign]
    reports.append(run.board.sweep())
    total = sum(reports, SweepReport())
    assert total == SweepReport(requeued=1)
    assert run.board.get("t1").attempts == 1


# -- wake-ups -------------------------------------------------------------------------------------

def _wakeups(run: RunState) -> list[tuple[str, str]]:
    return [(run.board.as_wakeup(e).parent, run.board.as_wakeup(e).payload)
            for e in run.board.wakeups().read("reader", count=100)]


def test_wake_when_children_end_fires_once_after_the_last(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("lead", "plan", task_id="P")
    for i in range(3):
        run.board.create("r", f"child {i}", task_id=f"c{i}", parent="P")
    assert run.board.open_children("P") == 3
    run.board.wake_when_children_end("P", "resume planning")
    run.board.complete(_take(run, "c0"))
    run.board.fail(_take(run, "c1"), "boom")
    assert _wakeups(run) == []
    assert run.board.open_children("P") == 1
    run.board.cancel("c2")
    group = run.board.wakeups()
    entries = group.read("reader")
    assert [(run.board.as_wakeup(e).parent, run.board.as_wakeup(e).payload) for e in entries] == [
        ("P", "resume planning")]
    assert group.ack(*(e.id for e in entries)) == 1
    assert group.read("reader") == [] and group.pending_count() == 0
    assert run.board.open_children("P") == 0


def test_wake_without_open_children_fires_at_once(make_run: MakeRun) -> None:
    run = make_run()
    run.board.wake_when_children_end("lonely", "now")
    assert _wakeups(run) == [("lonely", "now")]


def test_wake_delivered_to_one_consumer_and_redelivered_if_unacked(make_run: MakeRun) -> None:
    run = make_run()
    run.board.wake_when_children_end("P", "x")
    a = run.board.wakeups(redeliver_after_ms=0)
    first = a.read("a")
    assert len(first) == 1
    b = run.board.wakeups(redeliver_after_ms=60_000)
    assert b.read("b") == []  # held by a, not yet abandoned
    c = run.board.wakeups(redeliver_after_ms=0)
    taken = c.read("c")
    assert [e.id for e in taken] == [first[0].id] and taken[0].deliveries == 2


def test_child_cancelled_by_dependency_does_not_hold_the_wake(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "dep", task_id="d")
    run.board.cancel("d")
    run.board.create("r", "child", task_id="c", parent="P", depends_on=["d"])
    run.board.wake_when_children_end("P", "go")
    assert _wakeups(run) == [("P", "go")]


def test_children_via_blocked_cascade_wake_the_parent(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "root", task_id="a")
    run.board.create("r", "child", task_id="c", parent="P", depends_on=["a"])
    run.board.wake_when_children_end("P", "go")
    assert _wakeups(run) == []
    run.board.fail(_take(run, "a"), "boom")  # c is cancelled by the cascade: P's last child ended
    assert _wakeups(run) == [("P", "go")]


def test_redis_holds_nothing_unexpected(make_run: MakeRun, redis_client: redis.Redis) -> None:
    """Every key the board writes is under the run's prefix and hash tag."""
    run = make_run()
    run.board.create("r", "x", task_id="a", parent="P")
    run.board.complete(_take(run, "a"))
    run.board.wake_when_children_end("P", "go")
    keys = [k.decode() for k in redis_client.scan_iter(match="*")]  # KEYS reaches one node of a cluster
    assert keys and all(k.startswith(f"{run.settings.key_prefix}:{{{run.run_id}}}:") for k in keys)
    assert run.purge() == len(keys)
    assert list(redis_client.scan_iter(match="*")) == []
