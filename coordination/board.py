"""The task board of one run: create, claim by compare-and-set, leases, dependencies, wake-ups.

Every change is one compare-and-set of the task record that carries its index updates (status sets,
the per-role ready queue, the lease set, the parent's open-children count, the event) in the same
Lua call, so indexes never disagree with records and no lock is ever taken.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pydantic import JsonValue

from coordination import codec, store
from coordination.errors import (
    ConflictRetriesExhausted,
    InvalidRecord,
    InvalidTransition,
    LeaseLost,
    MalformedRecord,
    NotFound,
    VersionConflict,
)
from coordination.events import EventLog
from coordination.ids import new_id
from coordination.keys import Keys, check_id
from coordination.replies import texts
from coordination.store import Op, RecordStore, Versioned, Write
from coordination.streams import Entry, StreamGroup
from coordination.tasks import Lease, SweepReport, Task, TaskStatus

_WAKE_MAXLEN = 100_000

# Read-only pick of a claim candidate and its record, in one round trip: the member at position
# ARGV[2] mod n of the ready queue (n = its best-scored tier, capped at ARGV[1]; O(log N) whatever the
# cap), then that task's record. The record key is ARGV[3] .. id: not declared in KEYS, but it carries
# the run's hash tag, so it lives in the same cluster slot as the queue. Round trips are what a claim
# costs most in the client, above all with many claimants per core.
_PICK_READY = r"""
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then return false end
local n = math.min(redis.call('ZCOUNT', KEYS[1], first[2], first[2]), tonumber(ARGV[1]))
local i = tonumber(ARGV[2]) % n
local id = redis.call('ZRANGE', KEYS[1], i, i)[1]
local key = ARGV[3] .. id
local t = redis.call('TYPE', key)['ok']
if t ~= 'hash' and t ~= 'none' then return {id, false, false, 1} end
local rec = redis.call('HMGET', key, 'v', 'd')
return {id, rec[1], rec[2]}
"""
# How far the candidate spread may widen under contention (see ``TaskBoard.claim``).
_MAX_SPREAD = 4096


@dataclass(frozen=True, slots=True)
class Wakeup:
    """A parent's request to be woken, delivered once all its children ended."""

    entry_id: str
    parent: str
    payload: str


class TaskBoard:
    """Tasks of one run, shared by every process that can reach the Redis."""

    def __init__(self, records: RecordStore, keys: Keys, events: EventLog, *, lease_s: float = 30.0,
                 max_attempts: int = 3, claim_candidates: int = 32) -> None:
        self.records = records
        self.redis = records.redis
        self.keys = keys
        self.events = events
        self.run = keys.scope
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self.claim_candidates = claim_candidates
        self._pick = self.redis.register_script(_PICK_READY)
        self._spread = claim_candidates  # widened by lost races, narrowed by wins (see claim)

    # -- reading -------------------------------------------------------------------------------
    def get(self, task_id: str) -> Task:
        """The task, or :class:`NotFound`."""
        return self._read(task_id)[0]

    def get_many(self, task_ids: Sequence[str]) -> list[Task | None]:
        keys = [self.keys.task(t) for t in task_ids]
        return [None if rec is None else codec.decode(Task, rec.data, key=rec.key)
                for rec in self.records.get_many(keys)]

    def counts(self) -> dict[TaskStatus, int]:
        """Tasks per status, each an O(1) SCARD."""
        pipe = self.redis.pipeline(transaction=False)
        for status in TaskStatus:
            pipe.scard(self.keys.status(status))
        return {status: int(n) for status, n in zip(TaskStatus, pipe.execute(), strict=True)}

    def ids(self, status: TaskStatus) -> list[str]:
        return sorted(texts(self.redis.smembers(self.keys.status(status))))

    def tasks(self, statuses: Iterable[TaskStatus] = tuple(TaskStatus), *, role: str | None = None) -> list[Task]:
        """Tasks in the given statuses (all by default), oldest first."""
        ids = sorted({tid for status in statuses for tid in self.ids(status)})
        found = [t for t in self.get_many(ids) if t is not None]
        return [t for t in found if role is None or t.role == role]

    def children(self, parent: str) -> list[Task]:
        ids = sorted(texts(self.redis.smembers(self.keys.children(check_id(parent, "parent")))))
        return [t for t in self.get_many(ids) if t is not None]

    def open_children(self, parent: str) -> int:
        raw = self.redis.hget(self.keys.children_open(), check_id(parent, "parent"))
        return int(raw or 0)

    def roles(self) -> list[str]:
        return sorted(texts(self.redis.smembers(self.keys.roles())))

    # -- creating ------------------------------------------------------------------------------
    def create(self, role: str, title: str, body: str = "", *, priority: int = 0,
               depends_on: Sequence[str] = (), parent: str | None = None, max_attempts: int | None = None,
               labels: dict[str, str] | None = None, task_id: str | None = None) -> Task:
        """File a task. It is pending if its dependencies are done, blocked until they are, and
        cancelled at once if one of them already failed. Raises :class:`AlreadyExists` when
        ``task_id`` is taken, :class:`NotFound` for an unknown dependency."""
        if isinstance(depends_on, str):  # tuple("t-1") would be the dependencies ("t", "-", "1")
            raise InvalidRecord(f"depends_on must be a sequence of task ids, not the string {depends_on!r}")
        now = self.records.now()
        draft = codec.build(
            # ``is None``, not ``or``: an empty task id or a max_attempts of 0 is refused, not defaulted.
            Task, id=new_id("t") if task_id is None else task_id, run=self.run, parent=parent, role=role,
            title=title, body=body, priority=priority, depends_on=tuple(depends_on),
            max_attempts=self.max_attempts if max_attempts is None else max_attempts,
            labels=labels or {}, created_at=now, updated_at=now)
        if draft.id in draft.depends_on:
            raise InvalidRecord(f"task {draft.id} cannot depend on itself")
        for attempt in range(self.records.retry.max_attempts):
            deps = self._read_many(draft.depends_on)
            status, error = _status_from_deps(deps)
            task = draft.evolve(status=status, error=error, ended_at=now if status.terminal else None)
            ops = self._index_ops(None, task)
            ops += [store.sadd(self.keys.dependents(dep.id), task.id)
                    for dep, _v in deps if not dep.status.terminal]
            guards = [(self.keys.task(dep.id), version) for dep, version in deps]
            try:
                self.records.create(self.keys.task(task.id), codec.encode(task, what=f"task {task.id}",
                                                                         limit=self.records.max_record_bytes),
                                    ops=ops, guards=guards)
                return task
            except VersionConflict as conflict:
                if conflict.key == self.keys.task(task.id):
                    raise
                self.records.retry.pause(attempt)  # a dependency moved while we read it: look again
        raise ConflictRetriesExhausted(self.keys.task(draft.id), 0, 0, self.records.retry.max_attempts)

    # -- claiming and holding --------------------------------------------------------------------
    def claim(self, claimant: str, role: str, *, lease_s: float | None = None,
              think: Callable[[Task], None] | None = None) -> Lease | None:
        """Take the best eligible task of ``role`` (highest priority, then oldest) by compare-and-set.

        Among equally good candidates one of the oldest ``claim_candidates`` is picked at random, so
        concurrent claimants spread over the queue instead of all racing for its head. Each lost race
        doubles how many of the oldest this board picks from (up to 4096) and each win narrows it again
        by a sixteenth, so the spread follows the contention: near-FIFO when alone, few collisions with
        many claimants. ``think`` runs between reading and writing (an agent choosing); a lost race
        reads again. Returns None when nothing is eligible.
        """
        check_id(claimant, "claimant")
        ready = self.keys.ready(role)
        for attempt in range(self.records.retry.max_attempts):
            picked = self._pick(keys=[ready], args=[self._spread, random.getrandbits(31),
                                                    self.keys.task("t")[:-1]])
            if picked is None:
                return None
            task_id, task, version = self._candidate(picked)
            if task is None:
                self.redis.zrem(ready, task_id)  # a purged record left its index entry: tidy and go on
                continue
            if task.status is not TaskStatus.PENDING:
                self._widen()
                self.records.retry.pause(attempt)
                continue
            if think is not None:
                think(task)
            now = self.records.now()
            claimed = task.evolve(status=TaskStatus.CLAIMED, claimant=claimant, updated_at=now,
                                  lease_expires_at=now + (lease_s or self.lease_s))
            try:
                new_version = self._write(task, version, claimed)
            except VersionConflict:
                self._widen()
                self.records.retry.pause(attempt)
                continue
            self._spread = max(self.claim_candidates, self._spread - self._spread // 16)
            return Lease(claimed, new_version)
        raise ConflictRetriesExhausted(ready, 0, 0, self.records.retry.max_attempts)

    def _widen(self) -> None:
        self._spread = min(_MAX_SPREAD, max(self._spread, self.claim_candidates) * 2)

    def _candidate(self, reply: Sequence[bytes | str | None]) -> tuple[str, Task | None, int]:
        """Decode ``_PICK_READY``'s reply: task id, task (None if the record is gone) and version."""
        task_id = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        key = self.keys.task(task_id)
        if len(reply) > 3:
            raise MalformedRecord(key, "not a versioned record (wrong Redis type)")
        raw_version, data = reply[1], reply[2]
        if data is None:
            return task_id, None, 0
        try:
            version = int(raw_version)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise MalformedRecord(key, f"version field is {raw_version!r}, not an integer") from None
        return task_id, codec.decode(Task, data, key=key), version

    def heartbeat(self, lease: Lease, *, lease_s: float | None = None) -> Lease:
        """Extend the lease; the returned lease carries the new fencing version."""
        now = self.records.now()
        extended = lease.task.evolve(lease_expires_at=now + (lease_s or self.lease_s), updated_at=now)
        return Lease(extended, self._holder_write(lease, extended))

    def complete(self, lease: Lease, result: JsonValue = None) -> Task:
        """Mark the held task done with ``result``; rejected with :class:`LeaseLost` if the claim is gone."""
        now = self.records.now()
        done = lease.task.evolve(status=TaskStatus.DONE, result=result, lease_expires_at=None,
                                 updated_at=now, ended_at=now)
        self._holder_write(lease, done)
        self._settle_dependents(done.id)
        return done

    def fail(self, lease: Lease, error: str, *, retry: bool = False) -> Task:
        """Give the held task up as failed, or back to pending when ``retry`` and attempts remain."""
        now = self.records.now()
        attempts = lease.task.attempts + 1
        if retry and attempts < lease.task.max_attempts:
            new = lease.task.evolve(status=TaskStatus.PENDING, claimant=None, lease_expires_at=None,
                                    attempts=attempts, error=error, updated_at=now)
        else:
            new = lease.task.evolve(status=TaskStatus.FAILED, lease_expires_at=None, attempts=attempts,
                                    error=error, updated_at=now, ended_at=now)
        self._holder_write(lease, new)
        if new.status.terminal:
            self._settle_dependents(new.id)
        return new

    def release(self, lease: Lease) -> Task:
        """Hand the held task back untouched (a clean shutdown): pending again, no attempt counted."""
        new = lease.task.evolve(status=TaskStatus.PENDING, claimant=None, lease_expires_at=None,
                                updated_at=self.records.now())
        self._holder_write(lease, new)
        return new

    def cancel(self, task_id: str, reason: str = "cancelled") -> Task:
        """Cancel a task that has not ended (idempotent); its holder's next write is rejected."""
        def change(task: Task) -> Task | None:
            if task.status.terminal:
                return None
            now = self.records.now()
            return task.evolve(status=TaskStatus.CANCELLED, error=reason, lease_expires_at=None,
                               updated_at=now, ended_at=now)

        task = self._update(task_id, change)
        if task.status is TaskStatus.CANCELLED:
            self._settle_dependents(task_id)
        return task

    def cancel_all(self, reason: str = "run cancelled") -> int:
        """Cancel every task that has not ended; returns how many were cancelled."""
        count = 0
        for status in (TaskStatus.BLOCKED, TaskStatus.PENDING, TaskStatus.CLAIMED):
            for task_id in self.ids(status):
                try:
                    before = self.get(task_id).status
                    if not before.terminal and self.cancel(task_id, reason).status is TaskStatus.CANCELLED:
                        count += 1
                except NotFound:
                    continue
        return count

    # -- lease sweep and dependency repair -----------------------------------------------------
    def sweep(self, *, limit: int = 500) -> SweepReport:
        """Return expired claims to pending (attempts + 1) or fail them after ``max_attempts``;
        re-check blocked tasks whose dependencies may have ended. Safe to run anywhere, any time."""
        report = SweepReport()
        now = self.records.now()
        for task_id in texts(self.redis.zrangebyscore(self.keys.leases(), "-inf", now, start=0, num=limit)):
            try:
                report += self._expire(task_id)
            except NotFound:
                self.redis.zrem(self.keys.leases(), task_id)
        for task_id in self.ids(TaskStatus.BLOCKED)[:limit]:
            report += self._reevaluate(task_id)
        return report

    def _expire(self, task_id: str) -> SweepReport:
        # What *our* last attempt wrote (empty if it wrote nothing): comparing before/after reads would
        # also count an expiry that a concurrent sweeper did, reporting and settling it twice.
        wrote: list[Task] = []

        def change(task: Task) -> Task | None:
            wrote.clear()
            now = self.records.now()
            if task.status is not TaskStatus.CLAIMED or (task.lease_expires_at or 0) > now:
                return None
            attempts = task.attempts + 1
            if attempts >= task.max_attempts:
                new = task.evolve(status=TaskStatus.FAILED, attempts=attempts, lease_expires_at=None,
                                  error=f"lease of {task.claimant} expired; {attempts} attempts used",
                                  updated_at=now, ended_at=now)
            else:
                new = task.evolve(status=TaskStatus.PENDING, attempts=attempts, claimant=None,
                                  lease_expires_at=None, error=f"lease of {task.claimant} expired",
                                  updated_at=now)
            wrote.append(new)
            return new

        self._update(task_id, change)
        if not wrote:
            return SweepReport()
        if wrote[0].status is TaskStatus.FAILED:
            self._settle_dependents(task_id)
            return SweepReport(failed=1)
        return SweepReport(requeued=1)

    def _settle_dependents(self, task_id: str) -> None:
        # A worklist, not recursion: a cancellation cascades down dependency chains of any length.
        ended = [task_id]
        while ended:
            for dependent in texts(self.redis.smembers(self.keys.dependents(ended.pop()))):
                if self._reevaluate(dependent, settle=False).cancelled:
                    ended.append(dependent)

    def _reevaluate(self, task_id: str, *, settle: bool = True) -> SweepReport:
        outcome: list[TaskStatus] = []

        def fn(current: Versioned | None) -> Write | None:
            outcome.clear()  # only the attempt that was written counts (update may call us again)
            if current is None:
                return None
            task = codec.decode(Task, current.data, key=current.key)
            if task.status is not TaskStatus.BLOCKED:
                return None
            deps = self._read_many(task.depends_on)
            status, error = _status_from_deps(deps)
            if status is TaskStatus.BLOCKED:
                return None
            now = self.records.now()
            new = task.evolve(status=status, error=error, updated_at=now,
                              ended_at=now if status.terminal else None)
            outcome[:] = [status]
            return Write(codec.encode(new), ops=self._index_ops(task, new),
                         guards=[(self.keys.task(d.id), v) for d, v in deps])

        self.records.update(self.keys.task(task_id), fn)
        if outcome == [TaskStatus.CANCELLED]:
            if settle:
                self._settle_dependents(task_id)
            return SweepReport(cancelled=1)
        return SweepReport(unblocked=1) if outcome else SweepReport()

    # -- wake-ups ------------------------------------------------------------------------------
    def wake_when_children_end(self, parent: str, payload: str) -> None:
        """Post ``payload`` to the run's wake-up stream once every child of ``parent`` has ended
        (at once if none is open). File the children first, then ask."""
        check_id(parent, "parent")
        op = store.wake_when_done(self.keys.children_open(), parent, self.keys.wake_requests(),
                                  self.keys.wakeups(), _WAKE_MAXLEN, payload)
        stamp = json.dumps({"parent": parent, "payload": payload}).encode()
        self.records.update(self.keys.record("wake", parent), lambda _cur: Write(stamp, ops=[op]))

    def wakeups(self, group: str = "wakers", *, redeliver_after_ms: int = 30_000) -> StreamGroup:
        """The consumer group that delivers wake-ups (each to one consumer, redelivered if it dies)."""
        return StreamGroup(self.redis, self.keys.wakeups(), group, redeliver_after_ms=redeliver_after_ms)

    @staticmethod
    def as_wakeup(entry: Entry) -> Wakeup:
        return Wakeup(entry.id, entry.fields.get("parent", ""), entry.fields.get("payload", ""))

    # -- internals -----------------------------------------------------------------------------
    def _read(self, task_id: str) -> tuple[Task, int]:
        key = self.keys.task(task_id)
        rec = self.records.get(key)
        if rec is None:
            raise NotFound(f"no task {task_id!r} in run {self.run!r}")
        return codec.decode(Task, rec.data, key=key), rec.version

    def _read_many(self, task_ids: Sequence[str]) -> list[tuple[Task, int]]:
        recs = self.records.get_many([self.keys.task(t) for t in task_ids])
        out: list[tuple[Task, int]] = []
        for task_id, rec in zip(task_ids, recs, strict=True):
            if rec is None:
                raise NotFound(f"dependency {task_id!r} is not a task of run {self.run!r}")
            out.append((codec.decode(Task, rec.data, key=rec.key), rec.version))
        return out

    def _write(self, old: Task, version: int, new: Task) -> int:
        data = codec.encode(new, what=f"task {new.id}", limit=self.records.max_record_bytes)
        return self.records.cas(self.keys.task(new.id), version, data, ops=self._index_ops(old, new))

    def _holder_write(self, lease: Lease, new: Task) -> int:
        if lease.task.status is not TaskStatus.CLAIMED:
            raise InvalidTransition(f"task {lease.task_id} is not held by this lease")
        try:
            return self._write(lease.task, lease.version, new)
        except VersionConflict as conflict:
            raise LeaseLost(conflict.key, conflict.expected, conflict.actual, exists=conflict.exists) from None

    def _update(self, task_id: str, change: Callable[[Task], Task | None]) -> Task:
        final: list[Task] = []

        def fn(current: Versioned | None) -> Write | None:
            if current is None:
                raise NotFound(f"no task {task_id!r} in run {self.run!r}")
            task = codec.decode(Task, current.data, key=current.key)
            new = change(task)
            final[:] = [new or task]
            if new is None:
                return None
            return Write(codec.encode(new, limit=self.records.max_record_bytes, what=f"task {task_id}"),
                         ops=self._index_ops(task, new))

        self.records.update(self.keys.task(task_id), fn)
        return final[0]

    def _index_ops(self, old: Task | None, new: Task) -> list[Op]:
        """Index changes that take ``old`` to ``new``: derived from the two records, never by hand."""
        k = self.keys
        ops: list[Op] = []
        if old is None:
            ops.append(store.sadd(k.roles(), new.role))
            if new.parent and not new.status.terminal:
                ops += [store.hincrby(k.children_open(), new.parent, 1)]
            if new.parent:
                ops.append(store.sadd(k.children(new.parent), new.id))
        if old is None or old.status is not new.status:
            if old is not None:
                ops.append(store.srem(k.status(old.status), new.id))
            ops.append(store.sadd(k.status(new.status), new.id))
        if new.status is TaskStatus.PENDING:
            ops.append(store.zadd(k.ready(new.role), -new.priority, new.id))
        elif old is not None and old.status is TaskStatus.PENDING:
            ops.append(store.zrem(k.ready(new.role), new.id))
        if new.status is TaskStatus.CLAIMED:
            ops.append(store.zadd(k.leases(), new.lease_expires_at or 0.0, new.id))
        elif old is not None and old.status is TaskStatus.CLAIMED:
            ops.append(store.zrem(k.leases(), new.id))
        if old is not None and new.parent and new.status.terminal and not old.status.terminal:
            ops.append(store.child_end(k.children_open(), new.parent, k.wake_requests(), k.wakeups(),
                                       _WAKE_MAXLEN))
        if old is None or old.status is not new.status:
            ops.append(self.events.op(f"task.{new.status.value}", new.id, {
                "role": new.role, "title": new.title[:200], "parent": new.parent, "claimant": new.claimant,
                "attempts": new.attempts, "error": (new.error or "")[:500] or None}))
        return ops


def _status_from_deps(deps: Sequence[tuple[Task, int]]) -> tuple[TaskStatus, str | None]:
    for dep, _version in deps:
        if dep.status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            return TaskStatus.CANCELLED, f"dependency {dep.id} ended {dep.status.value}"
    if all(dep.status is TaskStatus.DONE for dep, _ in deps):
        return TaskStatus.PENDING, None
    return TaskStatus.BLOCKED, None
