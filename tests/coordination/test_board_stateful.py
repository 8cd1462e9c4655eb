"""A model-based test of the task board: random sequences of operations against a real Redis.

Hypothesis drives create / claim / heartbeat / complete / fail / release / cancel / expire-and-sweep /
wake registrations and stale-lease writes; after every step the board must agree with a plain Python
model of what it should hold. Time is a controllable clock installed on the store, so expiry needs no
sleeping.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import pytest
import redis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from coordination.errors import LeaseLost
from coordination.run import RunState
from coordination.settings import CoordinationSettings
from coordination.tasks import Lease, TaskStatus
from tests.coordination.conftest import Clock

S = TaskStatus
ROLES = ("a", "b")
LEASE_S = 10.0
MAX_TASKS = 14


@dataclass
class Model:
    id: str
    role: str
    priority: int
    deps: tuple[str, ...]
    parent: str | None
    max_attempts: int
    status: TaskStatus
    attempts: int = 0
    expires: float | None = None


class BoardMachine(RuleBasedStateMachine):
    client: ClassVar[redis.Redis]
    coordination: ClassVar[CoordinationSettings]

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.run = self.clock.install(RunState(self.client, f"sm-{uuid.uuid4().hex[:10]}", self.coordination))
        self.board = self.run.board
        self.tasks: dict[str, Model] = {}
        self.live: dict[str, Lease] = {}  # task id -> the one lease that may still write
        self.stale: list[Lease] = []
        self.waiting: dict[str, str] = {}  # parent -> payload of its pending wake request
        self.fired: Counter[tuple[str, str]] = Counter()
        self.events = 0
        self.serial = 0

    # -- the model's rules -------------------------------------------------------------------------
    def _status_from_deps(self, deps: tuple[str, ...]) -> TaskStatus:
        if any(self.tasks[d].status in (S.FAILED, S.CANCELLED) for d in deps):
            return S.CANCELLED
        if all(self.tasks[d].status is S.DONE for d in deps):
            return S.PENDING
        return S.BLOCKED

    def _open_children(self, parent: str) -> int:
        return sum(1 for t in self.tasks.values() if t.parent == parent and not t.status.terminal)

    def _move(self, task: Model, status: TaskStatus) -> None:
        """A status change: one event; leaving CLAIMED voids the live lease; ending settles the rest."""
        was_terminal = task.status.terminal
        task.status = status
        self.events += 1
        if status is not S.CLAIMED:
            task.expires = None
            if task.id in self.live:
                self.stale.append(self.live.pop(task.id))
        if status.terminal and not was_terminal:
            self._ended(task)

    def _ended(self, task: Model) -> None:
        if task.parent and self._open_children(task.parent) == 0 and task.parent in self.waiting:
            self.fired[(task.parent, self.waiting.pop(task.parent))] += 1
        for dependent in self.tasks.values():
            if task.id in dependent.deps and dependent.status is S.BLOCKED:
                status = self._status_from_deps(dependent.deps)
                if status is not S.BLOCKED:
                    self._move(dependent, status)

    def _next(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    # -- rules ---------------------------------------------------------------------------------
    @precondition(lambda self: len(self.tasks) < MAX_TASKS)
    @rule(data=st.data(), role=st.sampled_from(ROLES), priority=st.integers(-2, 2),
          max_attempts=st.integers(1, 3))
    def create(self, data: st.DataObject, role: str, priority: int, max_attempts: int) -> None:
        existing = sorted(self.tasks)
        deps: tuple[str, ...] = ()
        parent = None
        if existing:
            deps = tuple(data.draw(st.lists(st.sampled_from(existing), max_size=3, unique=True), label="deps"))
            parent = data.draw(st.none() | st.sampled_from(existing), label="parent")
        task_id = self._next("t")
        expected = self._status_from_deps(deps)
        task = self.board.create(role, f"task {task_id}", priority=priority, depends_on=deps, parent=parent,
                                 max_attempts=max_attempts, task_id=task_id)
        assert task.status is expected
        self.tasks[task_id] = Model(task_id, role, priority, deps, parent, max_attempts, expected)
        self.events += 1

    @rule(role=st.sampled_from(ROLES))
    def claim(self, role: str) -> None:
        lease = self.board.claim(self._next("w"), role, lease_s=LEASE_S)
        eligible = [t for t in self.tasks.values() if t.role == role and t.status is S.PENDING]
        if not eligible:
            assert lease is None
            return
        assert lease is not None
        task = self.tasks[lease.task_id]
        assert task.status is S.PENDING and task.role == role
        assert task.priority == max(t.priority for t in eligible), "claim skipped a higher priority"
        self._move(task, S.CLAIMED)
        task.expires = self.clock.t + LEASE_S
        assert lease.expires_at == task.expires
        self.live[task.id] = lease

    def _pick_live(self, data: st.DataObject) -> Lease:
        return self.live[data.draw(st.sampled_from(sorted(self.live)), label="held task")]

    @precondition(lambda self: bool(self.live))
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        lease = self._pick_live(data)
        renewed = self.board.heartbeat(lease, lease_s=LEASE_S)
        assert renewed.version > lease.version
        self.tasks[lease.task_id].expires = self.clock.t + LEASE_S
        self.stale.append(lease)
        self.live[lease.task_id] = renewed

    @precondition(lambda self: bool(self.live))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        lease = self._pick_live(data)
        assert self.board.complete(lease, {"n": self.serial}).status is S.DONE
        self._move(self.tasks[lease.task_id], S.DONE)

    @precondition(lambda self: bool(self.live))
    @rule(data=st.data(), retry=st.booleans())
    def fail(self, data: st.DataObject, retry: bool) -> None:
        lease = self._pick_live(data)
        task = self.tasks[lease.task_id]
        task.attempts += 1
        expected = S.PENDING if retry and task.attempts < task.max_attempts else S.FAILED
        assert self.board.fail(lease, "boom", retry=retry).status is expected
        self._move(task, expected)

    @precondition(lambda self: bool(self.live))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        lease = self._pick_live(data)
        assert self.board.release(lease).status is S.PENDING
        self._move(self.tasks[lease.task_id], S.PENDING)

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        task = self.tasks[data.draw(st.sampled_from(sorted(self.tasks)), label="cancelled task")]
        before = task.status
        after = self.board.cancel(task.id, "by test").status
        if before.terminal:
            assert after is before
        else:
            assert after is S.CANCELLED
            self._move(task, S.CANCELLED)

    @rule(seconds=st.integers(1, 15))
    def expire_and_sweep(self, seconds: int) -> None:
        self.clock.advance(seconds)
        report = self.board.sweep()
        requeued = failed = 0
        for task in sorted(self.tasks.values(), key=lambda t: t.id):
            if task.status is S.CLAIMED and task.expires is not None and task.expires <= self.clock.t:
                task.attempts += 1
                if task.attempts >= task.max_attempts:
                    failed += 1
                    self._move(task, S.FAILED)
                else:
                    requeued += 1
                    self._move(task, S.PENDING)
        assert (report.requeued, report.failed) == (requeued, failed)
        assert (report.unblocked, report.cancelled) == (0, 0)  # completions already settled them

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data(), action=st.sampled_from(["complete", "fail", "release", "heartbeat"]))
    def stale_lease_is_rejected(self, data: st.DataObject, action: str) -> None:
        lease = data.draw(st.sampled_from(self.stale), label="stale lease")
        with pytest.raises(LeaseLost):
            if action == "complete":
                self.board.complete(lease, "late")
            elif action == "fail":
                self.board.fail(lease, "late", retry=True)
            elif action == "release":
                self.board.release(lease)
            else:
                self.board.heartbeat(lease)

    @precondition(lambda self: bool(self.tasks))
    @rule(data=st.data())
    def wake_when_children_end(self, data: st.DataObject) -> None:
        parent = data.draw(st.sampled_from(sorted(self.tasks)), label="parent")
        payload = self._next("wake")
        self.board.wake_when_children_end(parent, payload)
        if self._open_children(parent) == 0:
            self.fired[(parent, payload)] += 1
            self.waiting.pop(parent, None)
        else:
            self.waiting[parent] = payload  # a newer request replaces the pending one

    # -- invariants ------------------------------------------------------------------------------
    @invariant()
    def records_match_the_model(self) -> None:
        ids = sorted(self.tasks)
        for task, model in zip(self.board.get_many(ids), (self.tasks[i] for i in ids), strict=True):
            assert task is not None
            assert (task.id, task.status, task.attempts) == (model.id, model.status, model.attempts)
            assert task.lease_expires_at == model.expires

    @invariant()
    def counts_match(self) -> None:
        expected = Counter(t.status for t in self.tasks.values())
        assert self.board.counts() == {s: expected.get(s, 0) for s in S}

    @invariant()
    def ready_queues_hold_exactly_the_pending(self) -> None:
        for role in ROLES:
            got = {m.decode(): s for m, s in self.run.redis.zrange(self.run.keys.ready(role), 0, -1,
                                                                    withscores=True)}
            want = {t.id: float(-t.priority) for t in self.tasks.values()
                    if t.role == role and t.status is S.PENDING}
            assert got == want

    @invariant()
    def leases_hold_exactly_the_claimed(self) -> None:
        got = {m.decode(): s for m, s in self.run.redis.zrange(self.run.keys.leases(), 0, -1, withscores=True)}
        assert got == {t.id: t.expires for t in self.tasks.values() if t.status is S.CLAIMED}
        assert set(self.live) == {t.id for t in self.tasks.values() if t.status is S.CLAIMED}

    @invariant()
    def dependencies_are_respected(self) -> None:
        for task in self.tasks.values():
            deps = [self.tasks[d].status for d in task.deps]
            if task.status is S.BLOCKED:
                assert any(not d.terminal for d in deps), f"{task.id} blocked with every dependency ended"
            if any(d in (S.FAILED, S.CANCELLED) for d in deps):
                assert task.status is S.CANCELLED, f"{task.id} outlived a failed dependency"
            if task.status in (S.PENDING, S.CLAIMED, S.DONE):
                assert all(d is S.DONE for d in deps), f"{task.id} ran before its dependencies"

    @invariant()
    def open_children_and_wakeups(self) -> None:
        for parent in self.tasks:
            assert self.board.open_children(parent) == self._open_children(parent)
        entries = self.run.redis.xrange(self.run.keys.wakeups())
        got = Counter((f[b"parent"].decode(), f[b"payload"].decode()) for _i, f in entries)
        assert got == self.fired  # each request fired once, and only once its children all ended
        pending = {k.decode(): v.decode() for k, v in self.run.redis.hgetall(self.run.keys.wake_requests()).items()}
        assert pending == self.waiting

    @invariant()
    def every_status_change_has_an_event(self) -> None:
        assert self.run.events.length() == self.events


def test_board_state_machine(redis_client: redis.Redis, settings: CoordinationSettings) -> None:
    BoardMachine.client = redis_client
    BoardMachine.coordination = settings
    # Modest on purpose: a few seconds on a loaded 2-core machine; CI runs it on every push.
    run_state_machine_as_test(BoardMachine, settings=hypothesis_settings(
        max_examples=80, stateful_step_count=40, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
