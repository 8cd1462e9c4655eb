"""The RecordStore contract, on a real Redis and on fakeredis (``any_client``)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import redis

from coordination import store as ops
from coordination.errors import (
    AlreadyExists,
    ConflictRetriesExhausted,
    MalformedRecord,
    PayloadTooLarge,
    VersionConflict,
)
from coordination.store import RecordStore, RetryPolicy, Versioned, Write

MakeStore = Callable[..., RecordStore]


# -- create / get ---------------------------------------------------------------------------------

def test_create_if_absent_then_get(make_store: MakeStore) -> None:
    store = make_store()
    assert store.get("k") is None
    assert store.version("k") == 0
    assert store.create("k", b"one") == 1
    assert store.get("k") == Versioned("k", b"one", 1)
    assert store.version("k") == 1


def test_create_on_live_record_raises_already_exists(make_store: MakeStore) -> None:
    store = make_store()
    store.create("k", b"one")
    store.cas("k", 1, b"two")
    with pytest.raises(AlreadyExists) as err:
        store.create("k", b"again")
    assert isinstance(err.value, VersionConflict)
    assert (err.value.key, err.value.expected, err.value.actual, err.value.exists) == ("k", 0, 2, True)
    assert store.get("k") == Versioned("k", b"two", 2)


def test_get_many_mixes_present_and_absent(make_store: MakeStore) -> None:
    store = make_store()
    store.create("a", b"A")
    store.create("c", b"C")
    store.cas("c", 1, b"C2")
    assert store.get_many([]) == []
    assert store.get_many(["a", "b", "c"]) == [Versioned("a", b"A", 1), None, Versioned("c", b"C2", 2)]


def test_binary_data_roundtrips_exactly(make_store: MakeStore) -> None:
    store = make_store()
    blob = bytes(range(256)) * 4
    store.create("bin", blob)
    got = store.get("bin")
    assert got is not None and got.data == blob


# -- compare-and-set ------------------------------------------------------------------------------

def test_cas_success_advances_version(make_store: MakeStore) -> None:
    store = make_store()
    store.create("k", b"v1")
    assert store.cas("k", 1, b"v2") == 2
    assert store.cas("k", 2, b"v3") == 3
    assert store.get("k") == Versioned("k", b"v3", 3)


@pytest.mark.parametrize("stale", [0, 1, 3, 99])
def test_cas_with_wrong_version_conflicts_and_writes_nothing(make_store: MakeStore, stale: int) -> None:
    store = make_store()
    store.create("k", b"v1")
    store.cas("k", 1, b"v2")
    with pytest.raises(VersionConflict) as err:
        store.cas("k", stale, b"lost")
    assert (err.value.key, err.value.expected, err.value.actual, err.value.exists) == ("k", stale, 2, True)
    assert not isinstance(err.value, AlreadyExists)
    assert store.get("k") == Versioned("k", b"v2", 2)


def test_cas_on_absent_record_conflicts(make_store: MakeStore) -> None:
    store = make_store()
    with pytest.raises(VersionConflict) as err:
        store.cas("nothing", 0, b"x")
    assert (err.value.expected, err.value.actual, err.value.exists) == (0, 0, False)
    assert store.get("nothing") is None


# -- delete and tombstones (no ABA) ---------------------------------------------------------------

def test_delete_if_version_leaves_tombstone_and_versions_continue(make_store: MakeStore) -> None:
    store = make_store()
    store.create("k", b"a")
    store.cas("k", 1, b"b")
    assert store.delete_if_version("k", 2) == 3
    assert store.get("k") is None
    assert store.version("k") == 3  # the tombstone remembers
    assert store.get_many(["k"]) == [None]
    assert store.create("k", b"reborn") == 4
    assert store.get("k") == Versioned("k", b"reborn", 4)


def test_delete_with_wrong_version_conflicts(make_store: MakeStore) -> None:
    store = make_store()
    store.create("k", b"a")
    with pytest.raises(VersionConflict) as err:
        store.delete_if_version("k", 7)
    assert (err.value.expected, err.value.actual) == (7, 1)
    assert store.get("k") == Versioned("k", b"a", 1)


def test_delete_twice_conflicts_as_absent(make_store: MakeStore) -> None:
    store = make_store()
    store.create("k", b"a")
    store.delete_if_version("k", 1)
    with pytest.raises(VersionConflict) as err:
        store.delete_if_version("k", 2)  # the tombstone's own version is not a live record
    assert err.value.exists is False
    assert err.value.actual == 2


def test_aba_old_version_never_matches_again(make_store: MakeStore) -> None:
    """A holder that read version 1 must not succeed after delete + re-create brought the record back."""
    store = make_store()
    store.create("k", b"first life")
    held = store.get("k")
    assert held is not None and held.version == 1
    store.delete_if_version("k", 1)
    store.create("k", b"second life")
    store.cas("k", 3, b"second life, changed")
    for stale in (held.version, 2, 3):
        with pytest.raises(VersionConflict):
            store.cas("k", stale, b"stale write")
        with pytest.raises(VersionConflict):
            store.delete_if_version("k", stale)
    assert store.get("k") == Versioned("k", b"second life, changed", 4)


# -- update(fn) -----------------------------------------------------------------------------------

def _counter(current: Versioned | None) -> Write:
    n = 0 if current is None else json.loads(current.data)["n"]
    return Write(json.dumps({"n": n + 1}).encode())


def test_update_creates_then_increments(make_store: MakeStore) -> None:
    store = make_store()
    assert store.update("c", _counter) == 1
    assert store.update("c", _counter) == 2
    got = store.get("c")
    assert got is not None and json.loads(got.data) == {"n": 2}


def test_update_recreates_after_delete_without_restarting_versions(make_store: MakeStore) -> None:
    store = make_store()
    store.update("c", _counter)
    store.delete_if_version("c", 1)
    assert store.update("c", _counter) == 3
    got = store.get("c")
    assert got is not None and json.loads(got.data) == {"n": 1}


def test_update_returns_none_when_fn_declines(make_store: MakeStore) -> None:
    store = make_store()
    store.create("k", b"keep")
    seen: list[Versioned | None] = []

    def decline(current: Versioned | None) -> Write | None:
        seen.append(current)
        return None

    assert store.update("k", decline) is None
    assert seen == [Versioned("k", b"keep", 1)]
    assert store.get("k") == Versioned("k", b"keep", 1)
    assert store.update("absent", decline) is None
    assert store.get("absent") is None


def test_update_retries_after_a_concurrent_write(make_store: MakeStore) -> None:
    store = make_store()
    store.create("c", json.dumps({"n": 0}).encode())
    calls: list[int] = []

    def racing(current: Versioned | None) -> Write:
        assert current is not None
        calls.append(current.version)
        if len(calls) == 1:  # someone else writes between our read and our write
            store.cas("c", current.version, json.dumps({"n": 10}).encode())
        return _counter(current)

    assert store.update("c", racing) == 3
    assert calls == [1, 2]
    got = store.get("c")
    assert got is not None and json.loads(got.data) == {"n": 11}


def test_update_gives_up_when_fn_always_loses(make_store: MakeStore) -> None:
    store = make_store(retry=RetryPolicy(max_attempts=5, base_s=0.0001, cap_s=0.001))
    store.create("c", b"0")
    attempts: list[int] = []

    def always_loses(current: Versioned | None) -> Write:
        assert current is not None
        attempts.append(current.version)
        store.cas("c", current.version, b"interloper")  # a concurrent writer wins every time
        return Write(b"mine")

    with pytest.raises(ConflictRetriesExhausted) as err:
        store.update("c", always_loses)
    assert isinstance(err.value, VersionConflict)
    assert err.value.attempts == 5
    assert len(attempts) == 5
    assert (err.value.expected, err.value.actual) == (5, 6)
    got = store.get("c")
    assert got is not None and got.data == b"interloper" and got.version == 6


def test_update_losing_a_create_race_retries_as_cas(make_store: MakeStore) -> None:
    store = make_store()
    calls: list[Versioned | None] = []

    def fn(current: Versioned | None) -> Write:
        calls.append(current)
        if current is None:
            store.create("c", json.dumps({"n": 5}).encode())  # another creator got there first
        return _counter(current)

    assert store.update("c", fn) == 2
    assert calls[0] is None and calls[1] is not None
    got = store.get("c")
    assert got is not None and json.loads(got.data) == {"n": 6}


# -- guards ---------------------------------------------------------------------------------------

def test_guard_at_current_version_lets_write_through(make_store: MakeStore) -> None:
    store = make_store()
    store.create("g", b"guard")
    store.create("k", b"a")
    assert store.cas("k", 1, b"b", guards=[("g", 1)]) == 2
    assert store.create("k2", b"x", guards=[("g", 1)]) == 1


def test_moved_guard_refuses_write(make_store: MakeStore) -> None:
    store = make_store()
    store.create("g", b"guard")
    store.create("k", b"a")
    store.cas("g", 1, b"guard moved")
    with pytest.raises(VersionConflict) as err:
        store.cas("k", 1, b"b", guards=[("g", 1)])
    assert (err.value.key, err.value.expected, err.value.actual) == ("g", 1, 2)
    with pytest.raises(VersionConflict) as err2:
        store.create("k2", b"x", guards=[("g", 1)])
    assert err2.value.key == "g" and not isinstance(err2.value, AlreadyExists)
    assert store.get("k") == Versioned("k", b"a", 1)
    assert store.get("k2") is None


def test_guard_on_deleted_record_refuses_write(make_store: MakeStore) -> None:
    store = make_store()
    store.create("g", b"guard")
    store.delete_if_version("g", 1)
    store.create("k", b"a")
    with pytest.raises(VersionConflict) as err:
        store.cas("k", 1, b"b", guards=[("g", 1)])
    assert err.value.key == "g" and err.value.exists is False


def test_guard_zero_means_must_be_absent(make_store: MakeStore) -> None:
    store = make_store()
    store.create("k", b"a")
    assert store.cas("k", 1, b"b", guards=[("g", 0)]) == 2
    store.create("g", b"now present")
    with pytest.raises(VersionConflict) as err:
        store.cas("k", 2, b"c", guards=[("g", 0)])
    assert (err.value.key, err.value.expected, err.value.actual, err.value.exists) == ("g", 0, 1, True)
    store.delete_if_version("g", 1)
    assert store.cas("k", 2, b"c", guards=[("g", 0)]) == 3  # a tombstone counts as absent


def test_several_guards_all_must_hold(make_store: MakeStore) -> None:
    store = make_store()
    for key in ("g1", "g2", "g3"):
        store.create(key, b"g")
    store.create("k", b"a")
    store.cas("g3", 1, b"moved")
    with pytest.raises(VersionConflict) as err:
        store.cas("k", 1, b"b", guards=[("g1", 1), ("g2", 1), ("g3", 1)])
    assert err.value.key == "g3"
    assert store.cas("k", 1, b"b", guards=[("g1", 1), ("g2", 1), ("g3", 2)]) == 2


def test_update_retries_when_a_guard_moves(make_store: MakeStore) -> None:
    store = make_store()
    store.create("g", b"guard")
    calls: list[int] = []

    def fn(current: Versioned | None) -> Write:
        guard = store.get("g")
        assert guard is not None
        calls.append(guard.version)
        if len(calls) == 1:
            store.cas("g", guard.version, b"moved")
        return Write(b"x", guards=[("g", guard.version)])

    assert store.update("k", fn) == 1
    assert calls == [1, 2]


# -- ops ride along with the write ----------------------------------------------------------------

def _all_ops() -> list[ops.Op]:
    return [ops.zadd("z", 2.5, "m"), ops.sadd("s", "m"), ops.hset("h", "f", "v"), ops.hincrby("hi", "n", 3),
            ops.hincrbyfloat("hf", "x", 0.5), ops.rpush("l", "a", b"b"), ops.set_value("str", "val"),
            ops.xadd("x", {"kind": "made", "v": ops.VERSION_PLACEHOLDER}, 100)]


def test_ops_applied_with_the_write(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    version = store.create("k", b"a", ops=_all_ops())
    assert version == 1
    assert any_client.zrange("z", 0, -1, withscores=True) == [(b"m", 2.5)]
    assert any_client.smembers("s") == {b"m"}
    assert any_client.hgetall("h") == {b"f": b"v"}
    assert any_client.hget("hi", "n") == b"3"
    assert float(any_client.hget("hf", "x") or 0) == 0.5
    assert any_client.lrange("l", 0, -1) == [b"a", b"b"]
    assert any_client.get("str") == b"val"
    entries = any_client.xrange("x")
    assert [fields for _id, fields in entries] == [{b"kind": b"made", b"v": b"1"}]  # version filled in


def test_removal_ops(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    store.create("k", b"a", ops=_all_ops())
    store.cas("k", 1, b"b", ops=[ops.zrem("z", "m"), ops.srem("s", "m"), ops.hdel("h", "f"), ops.delete("l"),
                                 ops.pexpire("str", 60_000)])
    assert any_client.zcard("z") == 0
    assert any_client.scard("s") == 0
    assert any_client.hlen("h") == 0
    assert any_client.exists("l") == 0
    assert 0 < any_client.pttl("str") <= 60_000


@pytest.mark.parametrize("write", ["create", "cas", "delete", "guard"])
def test_ops_not_applied_when_the_write_loses(make_store: MakeStore, any_client: redis.Redis, write: str) -> None:
    store = make_store()
    store.create("k", b"a")
    store.create("g", b"g")
    store.cas("g", 1, b"moved")
    before = set(any_client.keys("*"))
    with pytest.raises(VersionConflict):
        if write == "create":
            store.create("k", b"b", ops=_all_ops())
        elif write == "cas":
            store.cas("k", 5, b"b", ops=_all_ops())
        elif write == "delete":
            store.delete_if_version("k", 5, ops=_all_ops())
        else:
            store.cas("k", 1, b"b", ops=_all_ops(), guards=[("g", 1)])
    assert set(any_client.keys("*")) == before
    assert store.get("k") == Versioned("k", b"a", 1)


def test_delete_applies_its_ops(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    store.create("k", b"a", ops=[ops.sadd("idx", "k")])
    store.delete_if_version("k", 1, ops=[ops.srem("idx", "k"), ops.xadd("x", {"gone": ops.VERSION_PLACEHOLDER}, 10)])
    assert any_client.scard("idx") == 0
    assert [f for _i, f in any_client.xrange("x")] == [{b"gone": b"2"}]


def test_op_on_wrong_redis_type_refuses_the_whole_write(make_store: MakeStore, any_client: redis.Redis) -> None:
    """An op that Redis would reject must not leave the record written and earlier ops applied."""
    store = make_store()
    store.create("k", b"a")
    any_client.set("z", "a string, not a sorted set")
    with pytest.raises(MalformedRecord) as err:
        store.cas("k", 1, b"b", ops=[ops.sadd("s", "m"), ops.zadd("z", 1, "m")])
    assert err.value.key == "z"
    assert store.get("k") == Versioned("k", b"a", 1)
    assert any_client.exists("s") == 0


def test_many_ops_and_repeated_keys(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    many = [ops.sadd("s", f"m{i}") for i in range(200)] + [ops.hincrby("h", "n", 1) for _ in range(50)]
    store.create("k", b"a", ops=many)
    assert any_client.scard("s") == 200
    assert any_client.hget("h", "n") == b"50"


# -- CHILD_END / WAKE_WHEN_DONE -------------------------------------------------------------------

def _wake_entries(client: redis.Redis) -> list[tuple[str, str]]:
    return [(f[b"parent"].decode(), f[b"payload"].decode()) for _i, f in client.xrange("wake")]


def test_wake_when_done_fires_at_once_without_open_children(make_store: MakeStore,
                                                            any_client: redis.Redis) -> None:
    store = make_store()
    store.create("w", b"1", ops=[ops.wake_when_done("open", "P", "waits", "wake", 100, "go")])
    assert _wake_entries(any_client) == [("P", "go")]
    assert any_client.hget("waits", "P") is None


def test_child_end_wakes_once_when_last_child_ends(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    store.create("c1", b"", ops=[ops.hincrby("open", "P", 1)])
    store.create("c2", b"", ops=[ops.hincrby("open", "P", 1)])
    store.create("w", b"", ops=[ops.wake_when_done("open", "P", "waits", "wake", 100, "payload")])
    assert _wake_entries(any_client) == []
    assert any_client.hget("waits", "P") == b"payload"
    store.cas("c1", 1, b"done", ops=[ops.child_end("open", "P", "waits", "wake", 100)])
    assert _wake_entries(any_client) == []
    assert any_client.hget("open", "P") == b"1"
    store.cas("c2", 1, b"done", ops=[ops.child_end("open", "P", "waits", "wake", 100)])
    assert _wake_entries(any_client) == [("P", "payload")]
    assert any_client.hget("waits", "P") is None and any_client.hget("open", "P") is None
    # A later child ending (with nobody waiting) posts nothing more.
    store.create("c3", b"", ops=[ops.hincrby("open", "P", 1)])
    store.cas("c3", 1, b"done", ops=[ops.child_end("open", "P", "waits", "wake", 100)])
    assert _wake_entries(any_client) == [("P", "payload")]


def test_child_end_not_applied_when_the_write_loses(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    store.create("c1", b"", ops=[ops.hincrby("open", "P", 1)])
    store.create("w", b"", ops=[ops.wake_when_done("open", "P", "waits", "wake", 100, "x")])
    with pytest.raises(VersionConflict):
        store.cas("c1", 9, b"done", ops=[ops.child_end("open", "P", "waits", "wake", 100)])
    assert any_client.hget("open", "P") == b"1"
    assert _wake_entries(any_client) == []


def test_wake_ops_of_different_parents_are_independent(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    store.create("a", b"", ops=[ops.hincrby("open", "A", 1)])
    store.create("b", b"", ops=[ops.hincrby("open", "B", 1)])
    store.create("wa", b"", ops=[ops.wake_when_done("open", "A", "waits", "wake", 100, "wake A")])
    store.create("wb", b"", ops=[ops.wake_when_done("open", "B", "waits", "wake", 100, "wake B")])
    store.cas("b", 1, b"", ops=[ops.child_end("open", "B", "waits", "wake", 100)])
    assert _wake_entries(any_client) == [("B", "wake B")]
    store.cas("a", 1, b"", ops=[ops.child_end("open", "A", "waits", "wake", 100)])
    assert _wake_entries(any_client) == [("B", "wake B"), ("A", "wake A")]


# -- limits and malformed records -----------------------------------------------------------------

def test_payload_too_large(make_store: MakeStore) -> None:
    store = make_store(max_record_bytes=100)
    assert store.create("k", b"x" * 100) == 1
    with pytest.raises(PayloadTooLarge) as err:
        store.cas("k", 1, b"x" * 101)
    assert (err.value.size, err.value.limit) == (101, 100)
    with pytest.raises(PayloadTooLarge):
        store.create("other", b"y" * 101)
    with pytest.raises(PayloadTooLarge):
        store.update("k", lambda _cur: Write(b"z" * 500))
    assert store.get("k") == Versioned("k", b"x" * 100, 1)
    assert store.get("other") is None


@pytest.mark.parametrize("kind", ["string", "list", "set", "zset", "stream"])
def test_wrong_redis_type_is_malformed(make_store: MakeStore, any_client: redis.Redis, kind: str) -> None:
    store = make_store()
    {"string": lambda: any_client.set("k", "plain"), "list": lambda: any_client.rpush("k", "a"),
     "set": lambda: any_client.sadd("k", "a"), "zset": lambda: any_client.zadd("k", {"a": 1}),
     "stream": lambda: any_client.xadd("k", {"a": "b"})}[kind]()
    for call in (lambda: store.get("k"), lambda: store.get_many(["k"]), lambda: store.create("k", b"x"),
                 lambda: store.cas("k", 1, b"x"), lambda: store.delete_if_version("k", 1),
                 lambda: store.update("k", lambda _c: Write(b"x"))):
        with pytest.raises(MalformedRecord) as err:
            call()
        assert err.value.key == "k"
    assert any_client.type("k").decode() == kind  # nothing was overwritten


def test_wrong_type_guard_is_malformed(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    store.create("k", b"a")
    any_client.set("g", "plain")
    with pytest.raises(MalformedRecord) as err:
        store.cas("k", 1, b"b", guards=[("g", 1)])
    assert err.value.key == "g"
    assert store.get("k") == Versioned("k", b"a", 1)


@pytest.mark.parametrize("bad_version", [b"abc", b"", b"1x"])
def test_non_integer_version_is_malformed(make_store: MakeStore, any_client: redis.Redis,
                                          bad_version: bytes) -> None:
    store = make_store()
    any_client.hset("k", mapping={"v": bad_version, "d": b"data"})
    with pytest.raises(MalformedRecord):
        store.get("k")
    with pytest.raises(MalformedRecord):
        store.get_many(["ok", "k"])
    with pytest.raises(MalformedRecord):
        store.cas("k", 1, b"x")
    with pytest.raises(MalformedRecord):
        store.create("k", b"x")
    assert any_client.hget("k", "d") == b"data"


def test_data_without_version_is_malformed_for_reads_and_writes(make_store: MakeStore,
                                                                any_client: redis.Redis) -> None:
    store = make_store()
    any_client.hset("k", "d", b"orphan data")
    with pytest.raises(MalformedRecord):
        store.get("k")
    with pytest.raises(MalformedRecord):
        store.create("k", b"x")  # must not silently write over what get() calls corrupt
    assert any_client.hgetall("k") == {b"d": b"orphan data"}


def test_server_clock_is_close_to_local(make_store: MakeStore) -> None:
    import time
    store = make_store()
    # The server is on this machine, so the offset it measures should be tiny (generous bound: load).
    assert abs(store.now() - time.time()) < 5.0
