"""The narrow store contract: versioned records written by compare-and-set, never under a lock.

Everything shared between agents goes through :class:`RecordStore`: ``create`` (if absent), ``get``
(value and version), ``cas`` (naming the version read), ``delete_if_version`` and ``update(fn)``
(read, apply, compare-and-set, bounded jittered retries). A write may carry *guards* (other records
that must still be at a version) and *ops* (index updates applied in the same Lua call).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
from redis.crc import key_slot

from coordination import lua
from coordination.backoff import Backoff
from coordination.errors import (
    AlreadyExists,
    ConflictRetriesExhausted,
    CrossSlotWrite,
    LimitReached,
    MalformedRecord,
    PayloadTooLarge,
    VersionConflict,
)
from coordination.replies import blob

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Versioned:
    """A record's bytes and the version they were read at."""

    key: str
    data: bytes
    version: int


# -- ops: index updates that ride along with a record write ------------------------------------


@dataclass(frozen=True, slots=True)
class Op:
    """One index update; ``keys`` are Redis keys, ``args`` plain values (see ``lua.PRELUDE``)."""

    name: str
    keys: tuple[str, ...]
    args: tuple[str, ...] = ()


def zadd(key: str, score: float, member: str) -> Op:
    return Op("ZADD", (key,), (repr(float(score)), member))


def zrem(key: str, member: str) -> Op:
    return Op("ZREM", (key,), (member,))


def sadd(key: str, member: str) -> Op:
    return Op("SADD", (key,), (member,))


def srem(key: str, member: str) -> Op:
    return Op("SREM", (key,), (member,))


def hset(key: str, name: str, value: str) -> Op:
    return Op("HSET", (key,), (name, value))


def hdel(key: str, name: str) -> Op:
    return Op("HDEL", (key,), (name,))


def hincrby(key: str, name: str, by: int) -> Op:
    return Op("HINCRBY", (key,), (name, str(int(by))))


def hincrbyfloat(key: str, name: str, by: float) -> Op:
    return Op("HINCRBYFLOAT", (key,), (name, repr(float(by))))


def rpush(key: str, *values: str | bytes) -> Op:
    """Append values to a list (conversation logs: appended atomically with the record that counts them)."""
    return Op("RPUSH", (key,), tuple(v.decode() if isinstance(v, bytes) else v for v in values))


def set_value(key: str, value: str | bytes) -> Op:
    return Op("SET", (key,), (value,))  # type: ignore[arg-type]  # bytes pass to Lua unchanged


def pexpire(key: str, ms: int) -> Op:
    return Op("PEXPIRE", (key,), (str(int(ms)),))


def delete(key: str) -> Op:
    return Op("DEL", (key,))


VERSION_PLACEHOLDER = "$VERSION$"


def xadd(key: str, fields: dict[str, str], maxlen: int) -> Op:
    """Append to a stream, trimmed to about ``maxlen``; a value ``$VERSION$`` becomes the new version."""
    flat: list[str] = []
    for name, value in fields.items():
        flat += [name, value]
    return Op("XADD", (key,), (str(int(maxlen)), *flat))


def child_end(counter: str, parent: str, waits: str, stream: str, maxlen: int) -> Op:
    """Count one child of ``parent`` as ended; if none is open and a wake was asked for, post it."""
    return Op("CHILD_END", (counter, waits, stream), (parent, str(int(maxlen))))


def wake_when_done(counter: str, parent: str, waits: str, stream: str, maxlen: int, payload: str) -> Op:
    """Ask for ``payload`` on ``stream`` once ``parent`` has no open child (at once if it has none)."""
    return Op("WAKE_WHEN_DONE", (counter, waits, stream), (parent, str(int(maxlen)), payload))


def release(reservations: str, totals: str, holder: str, total_field: str) -> Op:
    """Give back ``holder``'s reservation: drop it from ``reservations`` and from the total in ``totals``
    (see :mod:`coordination.budget`)."""
    return Op("RELEASE", (reservations, totals), (holder, total_field))


# Positions of key arguments within each op's Lua argument list (1-based; see lua.PRELUDE).
_KEY_SLOTS: dict[str, tuple[int, ...]] = {
    "CHILD_END": (1, 3, 4),
    "WAKE_WHEN_DONE": (1, 3, 4),
    "RELEASE": (1, 2),
}


@dataclass(frozen=True, slots=True)
class Limit:
    """An admission check: the hash ``field`` at ``key`` must be below ``cap`` for the write to happen."""

    key: str
    field: str
    cap: int


@dataclass(frozen=True, slots=True)
class Write:
    """What an ``update`` function asks to write: new bytes, plus guards, limits and ops."""

    data: bytes
    ops: Sequence[Op] = ()
    guards: Sequence[tuple[str, int]] = ()
    limits: Sequence[Limit] = ()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with full jitter: sleep U(0, min(cap, base * 2**attempt))."""

    max_attempts: int = 64
    base_s: float = 0.001
    cap_s: float = 0.05

    def delay_s(self, attempt: int) -> float:
        """How long to wait before retry number ``attempt`` (0-based): the project's one backoff."""
        return Backoff(self.base_s, self.cap_s).delay(attempt)

    def pause(self, attempt: int) -> None:
        time.sleep(self.delay_s(attempt))


# Redis is away (restarting, failing over, a network blip): worth waiting for, unlike a refused command.
# BusyLoadingError (a restarted server replaying its AOF) is a ConnectionError.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
# How everyone waits for Redis to come back: workers' control loops and clients following a run alike.
RECONNECT = RetryPolicy(max_attempts=1_000_000, base_s=0.05, cap_s=2.0)


def ride_out(fn: Callable[[], T], *, within_s: float, policy: RetryPolicy = RECONNECT,
             on_wait: Callable[[float, BaseException | None], None] | None = None) -> T:
    """``fn()``, called again while Redis is unreachable, with ``policy``'s jittered backoff, for up to
    ``within_s`` seconds of outage (then its last error is raised). ``on_wait(waited_s, error)`` hears of
    each failed try, and once more with ``error=None`` when Redis answered again."""
    started: float | None = None
    attempt = 0
    while True:
        try:
            result = fn()
        except OUTAGE_ERRORS as exc:
            now = time.monotonic()
            started = now if started is None else started
            if now - started >= within_s:
                raise
            if on_wait is not None:
                on_wait(now - started, exc)
            policy.pause(attempt)
            attempt += 1
            continue
        if started is not None and on_wait is not None:
            on_wait(time.monotonic() - started, None)
        return result


@dataclass(slots=True)
class ServerClock:
    """Time as the Redis server sees it, so leases mean the same on every machine.

    Read with ``TIME`` every ``refresh_s`` and carried forward in between on this process's monotonic
    clock: the worker's wall clock is never read, so a host whose clock is minutes off, or is stepped
    mid-run, still judges every lease as the server does (tests/multihost/test_clock_skew.py). On a
    cluster ``TIME`` comes from one of its nodes: keep the servers' clocks in sync (NTP), not the workers'.
    """

    client: redis.Redis
    refresh_s: float = 60.0
    _server_at: float = 0.0  # server time at the last reading...
    _measured_at: float = field(default=-1e18)  # ...and this process's monotonic clock at that moment

    def now(self) -> float:
        elapsed = time.monotonic() - self._measured_at
        if elapsed > self.refresh_s:
            before = time.monotonic()
            secs, micros = self.client.time()
            after = time.monotonic()
            self._server_at, self._measured_at = secs + micros / 1e6, (before + after) / 2
            elapsed = after - self._measured_at
        return self._server_at + elapsed


class RecordStore:
    """Versioned records on one Redis database. Safe to share between threads."""

    def __init__(self, client: redis.Redis, *, max_record_bytes: int = 1_048_576,
                 retry: RetryPolicy | None = None) -> None:
        self.redis = client
        self.max_record_bytes = max_record_bytes
        self.retry = retry or RetryPolicy()
        self.clock = ServerClock(client)
        self._create = client.register_script(lua.CREATE)
        self._cas = client.register_script(lua.CAS)
        self._delete = client.register_script(lua.DELETE)

    # -- reads ---------------------------------------------------------------------------------
    def get(self, key: str) -> Versioned | None:
        """The record at ``key`` with its version, or None if absent (or deleted)."""
        try:
            version, data = self.redis.hmget(key, "v", "d")
        except redis.ResponseError as exc:
            raise MalformedRecord(key, f"not a versioned record ({exc})") from exc
        return _decode(key, blob(version), blob(data))

    def get_many(self, keys: Sequence[str]) -> list[Versioned | None]:
        """Several records in one round trip; absent ones are None."""
        if not keys:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, "v", "d")
        replies = pipe.execute(raise_on_error=False)
        out: list[Versioned | None] = []
        for key, reply in zip(keys, replies, strict=True):
            if isinstance(reply, Exception):
                raise MalformedRecord(key, f"not a versioned record ({reply})")
            out.append(_decode(key, reply[0], reply[1]))
        return out

    def version(self, key: str) -> int:
        """The current version (the tombstone's for a deleted record, 0 if never written)."""
        record = self.get(key)
        if record is not None:
            return record.version
        raw = self.redis.hget(key, "v")
        return int(raw) if raw is not None else 0

    def now(self) -> float:
        """Seconds since the epoch on the Redis server's clock."""
        return self.clock.now()

    # -- writes --------------------------------------------------------------------------------
    def create(self, key: str, data: bytes, *, ops: Sequence[Op] = (),
               guards: Sequence[tuple[str, int]] = (), limits: Sequence[Limit] = ()) -> int:
        """Write ``data`` if no live record is at ``key``; return the new version.

        Raises :class:`AlreadyExists` when one is, :class:`LimitReached` when a limit is.
        """
        return self._run(self._create, key, 0, data, ops, guards, limits, creating=True)

    def cas(self, key: str, expected: int, data: bytes, *, ops: Sequence[Op] = (),
            guards: Sequence[tuple[str, int]] = (), limits: Sequence[Limit] = ()) -> int:
        """Write ``data`` only if the record is at version ``expected``; return the new version.

        Raises :class:`VersionConflict` (carrying expected and actual versions) otherwise.
        """
        return self._run(self._cas, key, expected, data, ops, guards, limits)

    def delete_if_version(self, key: str, expected: int, *, ops: Sequence[Op] = (),
                          guards: Sequence[tuple[str, int]] = ()) -> int:
        """Delete the record if it is at version ``expected``; return the tombstone's version."""
        return self._run(self._delete, key, expected, b"", ops, guards, ())

    def update(self, key: str, fn: Callable[[Versioned | None], Write | None]) -> int | None:
        """Read, apply ``fn``, compare-and-set; retry on conflict with jittered backoff.

        ``fn`` gets the current record (None if absent) and returns a :class:`Write`, or None to
        write nothing. It may run several times, so it must not have side effects. Returns the
        new version, or None if ``fn`` declined. Raises :class:`ConflictRetriesExhausted`.
        """
        last: VersionConflict | None = None
        for attempt in range(self.retry.max_attempts):
            current = self.get(key)
            write = fn(current)
            if write is None:
                return None
            try:
                if current is None:
                    return self.create(key, write.data, ops=write.ops, guards=write.guards, limits=write.limits)
                return self.cas(key, current.version, write.data, ops=write.ops, guards=write.guards,
                                limits=write.limits)
            except VersionConflict as conflict:
                last = conflict
                self.retry.pause(attempt)
        assert last is not None
        raise ConflictRetriesExhausted(key, last.expected, last.actual, self.retry.max_attempts)

    # -- internals -----------------------------------------------------------------------------
    def _run(self, script: Any, key: str, expected: int, data: bytes, ops: Sequence[Op],
             guards: Sequence[tuple[str, int]], limits: Sequence[Limit], *, creating: bool = False) -> int:
        if len(data) > self.max_record_bytes:
            raise PayloadTooLarge(f"record {key!r}", len(data), self.max_record_bytes)
        keys: list[str] = [key]
        index: dict[str, int] = {key: 1}
        slot = key_slot(key.encode())

        def ref(k: str) -> str:
            if k not in index:
                # Checked on every server, not only on a cluster: a write spanning slots fails in tests
                # on one Redis just as it would fail (CROSSSLOT) on a cluster.
                if key_slot(k.encode()) != slot:
                    raise CrossSlotWrite([*keys, k])
                keys.append(k)
                index[k] = len(keys)
            return str(index[k])

        argv: list[str | bytes] = [str(int(expected)), data, str(len(guards))]
        for gkey, gversion in guards:
            argv += [ref(gkey), str(int(gversion))]
        argv.append(str(len(limits)))
        for limit in limits:
            argv += [ref(limit.key), limit.field, str(int(limit.cap))]
        argv.append(str(len(ops)))
        for op in ops:
            args = _op_args(op, ref)
            argv += [op.name, str(len(args)), *args]
        try:
            reply = script(keys=keys, args=argv)
        except redis.ResponseError as exc:
            raise MalformedRecord(key, f"write refused by Redis ({exc})") from exc
        code, version, exists, key_index = (int(reply[0]), int(reply[1]), reply[2], reply[3])
        if code == 1:
            return version
        where = keys[int(key_index) - 1]
        if code == 2:
            field = reply[4].decode() if isinstance(reply[4], bytes) else str(reply[4])
            cap = next(lim.cap for lim in limits if lim.key == where and lim.field == field)
            raise LimitReached(where, field, cap, version)
        if code == -1:
            if where == key or where in dict(guards):
                raise MalformedRecord(where, "not a versioned record (wrong Redis type or version field)")
            raise MalformedRecord(where, "wrong Redis type for an index update riding on this write")
        if creating and where == key:
            raise AlreadyExists(key, 0, version, exists=bool(exists))
        wanted = expected if where == key else dict(guards)[where]
        raise VersionConflict(where, wanted, version, exists=bool(exists))


def _op_args(op: Op, ref: Callable[[str], str]) -> list[str]:
    """Lua argument list of one op: key slots hold KEYS indexes, the rest are plain values."""
    slots = _KEY_SLOTS.get(op.name, (1,))
    total = len(op.keys) + len(op.args)
    keys, values = iter(op.keys), iter(op.args)
    return [ref(next(keys)) if pos in slots else next(values) for pos in range(1, total + 1)]


def _decode(key: str, version: bytes | None, data: bytes | None) -> Versioned | None:
    if data is None:
        return None
    try:
        number = int(version) if version is not None else None
    except ValueError:
        number = None
    if number is None:
        raise MalformedRecord(key, f"version field is {version!r}, not an integer")
    return Versioned(key, data, number)
