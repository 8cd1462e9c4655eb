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
    CoordinationError,
    CrossSlotWrite,
    MalformedRecord,
    PayloadTooLarge,
    VersionConflict,
)
from coordination.store import Limit, RecordStore, RetryPolicy, Versioned, Write

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


# Keys of one write share a hash tag ({t}): one write may not span Redis Cluster slots.

# -- guards ---------------------------------------------------------------------------------------

def test_guard_at_current_version_lets_write_through(make_store: MakeStore) -> None:
    store = make_store()
    store.create("{t}g", b"guard")
    store.create("{t}k", b"a")
    assert store.cas("{t}k", 1, b"b", guards=[("{t}g", 1)]) == 2
    assert store.create("{t}k2", b"x", guards=[("{t}g", 1)]) == 1


def test_moved_guard_refuses_write(make_store: MakeStore) -> None:
    store = make_store()
    store.create("{t}g", b"guard")
    store.create("{t}k", b"a")
    store.cas("{t}g", 1, b"guard moved")
    with pytest.raises(VersionConflict) as err:
        store.cas("{t}k", 1, b"b", guards=[("{t}g", 1)])
    assert (err.value.key, err.value.expected, err.value.actual) == ("{t}g", 1, 2)
    with pytest.raises(VersionConflict) as err2:
        store.create("{t}k2", b"x", guards=[("{t}g", 1)])
    assert err2.value.key == "{t}g" and not isinstance(err2.value, AlreadyExists)
    assert store.get("{t}k") == Versioned("{t}k", b"a", 1)
    assert store.get("{t}k2") is None


def test_guard_on_deleted_record_refuses_write(make_store: MakeStore) -> None:
    store = make_store()
    store.create("{t}g", b"guard")
    store.delete_if_version("{t}g", 1)
    store.create("{t}k", b"a")
    with pytest.raises(VersionConflict) as err:
        store.cas("{t}k", 1, b"b", guards=[("{t}g", 1)])
    assert err.value.key == "{t}g" and err.value.exists is False


def test_guard_zero_means_must_be_absent(make_store: MakeStore) -> None:
    store = make_store()
    store.create("{t}k", b"a")
    assert store.cas("{t}k", 1, b"b", guards=[("{t}g", 0)]) == 2
    store.create("{t}g", b"now present")
    with pytest.raises(VersionConflict) as err:
        store.cas("{t}k", 2, b"c", guards=[("{t}g", 0)])
    assert (err.value.key, err.value.expected, err.value.actual, err.value.exists) == ("{t}g", 0, 1, True)
    store.delete_if_version("{t}g", 1)
    assert store.cas("{t}k", 2, b"c", guards=[("{t}g", 0)]) == 3  # a tombstone counts as absent


def test_several_guards_all_must_hold(make_store: MakeStore) -> None:
    store = make_store()
    for key in ("{t}g1", "{t}g2", "{t}g3"):
        store.create(key, b"g")
    store.create("{t}k", b"a")
    store.cas("{t}g3", 1, b"moved")
    with pytest.raises(VersionConflict) as err:
        store.cas("{t}k", 1, b"b", guards=[("{t}g1", 1), ("{t}g2", 1), ("{t}g3", 1)])
    assert err.value.key == "{t}g3"
    assert store.cas("{t}k", 1, b"b", guards=[("{t}g1", 1), ("{t}g2", 1), ("{t}g3", 2)]) == 2


def test_update_retries_when_a_guard_moves(make_store: MakeStore) -> None:
    store = make_store()
    store.create("{t}g", b"guard")
    calls: list[int] = []

    def fn(current: Versioned | None) -> Write:
        guard = store.get("{t}g")
        assert guard is not None
        calls.append(guard.version)
        if len(calls) == 1:
            store.cas("{t}g", guard.version, b"moved")
        return Write(b"x", guards=[("{t}g", guard.version)])

    assert store.update("{t}k", fn) == 1
    assert calls == [1, 2]


# -- ops ride along with the write ----------------------------------------------------------------

def _all_ops() -> list[ops.Op]:
    return [ops.zadd("{t}z", 2.5, "m"), ops.sadd("{t}s", "m"), ops.hset("{t}h", "f", "v"),
            ops.hincrby("{t}hi", "n", 3), ops.hincrbyfloat("{t}hf", "x", 0.5), ops.rpush("{t}l", "a", b"b"),
            ops.set_value("{t}str", "val"),
            ops.xadd("{t}x", {"kind": "made", "v": ops.VERSION_PLACEHOLDER}, 100)]


def test_ops_applied_with_the_write(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    version = store.create("{t}k", b"a", ops=_all_ops())
    assert version == 1
    assert any_client.zrange("{t}z", 0, -1, withscores=True) == [(b"m", 2.5)]
    assert any_client.smembers("{t}s") == {b"m"}
    assert any_client.hgetall("{t}h") == {b"f": b"v"}
    assert any_client.hget("{t}hi", "n") == b"3"
    assert float(any_client.hget("{t}hf", "x") or 0) == 0.5
    assert any_client.lrange("{t}l", 0, -1) == [b"a", b"b"]
    assert any_client.get("{t}str") == b"val"
    entries = any_client.xrange("{t}x")
    assert [fields for _id, fields in entries] == [{b"kind": b"made", b"v": b"1"}]  # version filled in


def test_removal_ops(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    store.create("{t}k", b"a", ops=_all_ops())
    store.cas("{t}k", 1, b"b", ops=[ops.zrem("{t}z", "m"), ops.srem("{t}s", "m"), ops.hdel("{t}h", "f"),
                                    ops.delete("{t}l"), ops.pexpire("{t}str", 60_000)])
    assert any_client.zcard("{t}z") == 0
    assert any_client.scard("{t}s") == 0
    assert any_client.hlen("{t}h") == 0
    assert any_client.exists("{t}l") == 0
    assert 0 < any_client.pttl("{t}str") <= 60_000


@pytest.mark.parametrize("write", ["create", "cas", "delete", "guard"])
def test_ops_not_applied_when_the_write_loses(make_store: MakeStore, any_client: redis.Redis, write: str) -> None:
    store = make_store()
    store.create("{t}k", b"a")
    store.create("{t}g", b"g")
    store.cas("{t}g", 1, b"moved")
    before = set(any_client.scan_iter(match="*"))
    with pytest.raises(VersionConflict):
        if write == "create":
            store.create("{t}k", b"b", ops=_all_ops())
        elif write == "cas":
            store.cas("{t}k", 5, b"b", ops=_all_ops())
        elif write == "delete":
            store.delete_if_version("{t}k", 5, ops=_all_ops())
        else:
            store.cas("{t}k", 1, b"b", ops=_all_ops(), guards=[("{t}g", 1)])
    assert set(any_client.scan_iter(match="*")) == before
    assert store.get("{t}k") == Versioned("{t}k", b"a", 1)


def test_delete_applies_its_ops(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    store.create("{t}k", b"a", ops=[ops.sadd("{t}idx", "k")])
    store.delete_if_version("{t}k", 1, ops=[ops.srem("{t}idx", "k"),
                                            ops.xadd("{t}x", {"gone": ops.VERSION_PLACEHOLDER}, 10)])
    assert any_client.scard("{t}idx") == 0
    assert [f for _i, f in any_client.xrange("{t}x")] == [{b"gone": b"2"}]


def test_op_on_wrong_redis_type_refuses_the_whole_write(make_store: MakeStore, any_client: redis.Redis) -> None:
    """An op that Redis would reject must not leave the record written and earlier ops applied."""
    store = make_store()
    store.create("{t}k", b"a")
    any_client.set("{t}z", "a string, not a sorted set")
    with pytest.raises(MalformedRecord) as err:
        store.cas("{t}k", 1, b"b", ops=[ops.sadd("{t}s", "m"), ops.zadd("{t}z", 1, "m")])
    assert err.value.key == "{t}z"
    assert store.get("{t}k") == Versioned("{t}k", b"a", 1)
    assert any_client.exists("{t}s") == 0


def test_many_ops_and_repeated_keys(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    many = [ops.sadd("{t}s", f"m{i}") for i in range(200)] + [ops.hincrby("{t}h", "n", 1) for _ in range(50)]
    store.create("{t}k", b"a", ops=many)
    assert any_client.scard("{t}s") == 200
    assert any_client.hget("{t}h", "n") == b"50"


# -- CHILD_END / WAKE_WHEN_DONE -------------------------------------------------------------------

def _wake_entries(client: redis.Redis) -> list[tuple[str, str]]:
    return [(f[b"parent"].decode(), f[b"payload"].decode()) for _i, f in client.xrange("{t}wake")]


def test_wake_when_done_fires_at_once_without_open_children(make_store: MakeStore,
                                                            any_client: redis.Redis) -> None:
    store = make_store()
    store.create("{t}w", b"1", ops=[ops.wake_when_done("{t}open", "P", "{t}waits", "{t}wake", 100, "go")])
    assert _wake_entries(any_client) == [("P", "go")]
    assert any_client.hget("{t}waits", "P") is None


def test_child_end_wakes_once_when_last_child_ends(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    store.create("{t}c1", b"", ops=[ops.hincrby("{t}open", "P", 1)])
    store.create("{t}c2", b"", ops=[ops.hincrby("{t}open", "P", 1)])
    store.create("{t}w", b"", ops=[ops.wake_when_done("{t}open", "P", "{t}waits", "{t}wake", 100, "payload")])
    assert _wake_entries(any_client) == []
    assert any_client.hget("{t}waits", "P") == b"payload"
    store.cas("{t}c1", 1, b"done", ops=[ops.child_end("{t}open", "P", "{t}waits", "{t}wake", 100)])
    assert _wake_entries(any_client) == []
    assert any_client.hget("{t}open", "P") == b"1"
    store.cas("{t}c2", 1, b"done", ops=[ops.child_end("{t}open", "P", "{t}waits", "{t}wake", 100)])
    assert _wake_entries(any_client) == [("P", "payload")]
    assert any_client.hget("{t}waits", "P") is None and any_client.hget("{t}open", "P") is None
    # A later child ending (with nobody waiting) posts nothing more.
    store.create("{t}c3", b"", ops=[ops.hincrby("{t}open", "P", 1)])
    store.cas("{t}c3", 1, b"done", ops=[ops.child_end("{t}open", "P", "{t}waits", "{t}wake", 100)])
    assert _wake_entries(any_client) == [("P", "payload")]


def test_child_end_not_applied_when_the_write_loses(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    store.create("{t}c1", b"", ops=[ops.hincrby("{t}open", "P", 1)])
    store.create("{t}w", b"", ops=[ops.wake_when_done("{t}open", "P", "{t}waits", "{t}wake", 100, "x")])
    with pytest.raises(VersionConflict):
        store.cas("{t}c1", 9, b"done", ops=[ops.child_end("{t}open", "P", "{t}waits", "{t}wake", 100)])
    assert any_client.hget("{t}open", "P") == b"1"
    assert _wake_entries(any_client) == []


def test_wake_ops_of_different_parents_are_independent(make_store: MakeStore, any_client: redis.Redis) -> None:
    store = make_store()
    store.create("{t}a", b"", ops=[ops.hincrby("{t}open", "A", 1)])
    store.create("{t}b", b"", ops=[ops.hincrby("{t}open", "B", 1)])
    store.create("{t}wa", b"", ops=[ops.wake_when_done("{t}open", "A", "{t}waits", "{t}wake", 100, "wake A")])
    store.create("{t}wb", b"", ops=[ops.wake_when_done("{t}open", "B", "{t}waits", "{t}wake", 100, "wake B")])
    store.cas("{t}b", 1, b"", ops=[ops.child_end("{t}open", "B", "{t}waits", "{t}wake", 100)])
    assert _wake_entries(any_client) == [("B", "wake B")]
    store.cas("{t}a", 1, b"", ops=[ops.child_end("{t}open", "A", "{t}waits", "{t}wake", 100)])
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
    store.create("{t}k", b"a")
    any_client.set("{t}g", "plain")
    with pytest.raises(MalformedRecord) as err:
        store.cas("{t}k", 1, b"b", guards=[("{t}g", 1)])
    assert err.value.key == "{t}g"
    assert store.get("{t}k") == Versioned("{t}k", b"a", 1)


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


def test_server_clock_ignores_the_local_wall_clock(make_store: MakeStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker whose clock is minutes off, or is stepped mid-run, judges leases as the server does."""
    import time
    store = make_store()
    before = store.now()
    monkeypatch.setattr(time, "time", lambda: 0.0)  # the host's clock jumps back to 1970
    after = store.now()
    assert before <= after < before + 5.0


def test_write_spanning_two_slots_is_refused_and_writes_nothing(make_store: MakeStore,
                                                               any_client: redis.Redis) -> None:
    """Refused on every server, not only on a cluster (where Redis would answer CROSSSLOT)."""
    store = make_store()
    store.create("{a}k", b"a")
    for write in (lambda: store.cas("{a}k", 1, b"b", guards=[("{b}g", 0)]),
                  lambda: store.cas("{a}k", 1, b"b", ops=[ops.sadd("{b}s", "m")]),
                  lambda: store.create("{a}k2", b"x", limits=[Limit("{b}h", "n", 5)])):
        with pytest.raises(CrossSlotWrite) as err:
            write()
        assert isinstance(err.value, CoordinationError) and "{b}" in str(err.value)
    assert store.get("{a}k") == Versioned("{a}k", b"a", 1)
    assert any_client.exists("{b}s", "{a}k2") == 0
