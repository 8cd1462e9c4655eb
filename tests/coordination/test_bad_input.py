"""Bad input gets a precise error and leaves Redis as it was; corrupt stored data is reported."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from coordination.errors import (
    CoordinationError,
    InvalidIdentifier,
    InvalidRecord,
    InvalidTransition,
    MalformedRecord,
    NotFound,
    PayloadTooLarge,
)
from coordination.keys import Keys
from coordination.run import RunState
from coordination.tasks import Lease, TaskStatus

MakeRun = Callable[..., RunState]

BAD_IDS = ["", "has space", "{brace}", "brace}", "x" * 129, "-leading-dash", "tab\there", "new\nline", "ünï"]


def _keys(client: redis.Redis) -> set[bytes]:
    return set(client.scan_iter(match="*"))


# -- unknown things -------------------------------------------------------------------------------

def test_unknown_task_is_not_found(make_run: MakeRun) -> None:
    board = make_run().board
    with pytest.raises(NotFound, match="nope"):
        board.get("nope")
    with pytest.raises(NotFound):
        board.cancel("nope")
    assert board.get_many(["nope"]) == [None]
    assert board.children("nope") == []
    assert isinstance(NotFound("x"), KeyError) and isinstance(NotFound("x"), CoordinationError)


def test_unknown_dependency_is_not_found_and_nothing_is_written(make_run: MakeRun,
                                                                 redis_client: redis.Redis) -> None:
    run = make_run()
    run.board.create("r", "real", task_id="real")
    before = _keys(redis_client)
    with pytest.raises(NotFound, match="ghost"):
        run.board.create("r", "needs a ghost", task_id="t2", depends_on=["real", "ghost"])
    assert _keys(redis_client) == before
    assert run.board.counts()[TaskStatus.PENDING] == 1


def test_self_dependency_is_refused(make_run: MakeRun) -> None:
    with pytest.raises(InvalidRecord, match="itself"):
        make_run().board.create("r", "loop", task_id="me", depends_on=["me"])


def test_dependencies_given_as_one_string_are_refused(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "dep", task_id="t-1")
    with pytest.raises(InvalidRecord, match="depends_on"):
        run.board.create("r", "x", depends_on="t-1")  # type: ignore[arg-type]


# -- identifiers ----------------------------------------------------------------------------------

def test_longest_identifier_is_accepted(make_run: MakeRun) -> None:
    longest = "a" * 128
    run = make_run()
    assert run.board.create(longest, "t", task_id=longest, parent=longest).id == longest
    assert run.board.claim(longest, longest) is not None


@pytest.mark.parametrize("bad", BAD_IDS)
def test_invalid_identifiers_are_refused_everywhere(make_run: MakeRun, redis_client: redis.Redis, bad: str) -> None:
    run = make_run()
    run.board.create("r", "ok", task_id="ok")
    before = _keys(redis_client)
    calls: list[Callable[[], object]] = [
        lambda: run.board.create("r", "t", task_id=bad),
        lambda: run.board.create(bad, "t"),
        lambda: run.board.create("r", "t", depends_on=[bad]),
        lambda: run.board.create("r", "t", parent=bad),
        lambda: run.board.get(bad),
        lambda: run.board.cancel(bad),
        lambda: run.board.claim(bad, "r"),
        lambda: run.board.claim("w", bad),
        lambda: run.board.wake_when_children_end(bad, "x"),
        lambda: run.board.children(bad),
        lambda: run.registry.register(bad, role="r", node="n"),
        lambda: run.registry.register("a", role=bad, node="n"),
        lambda: run.mailboxes.send("a", bad, "hi"),
        lambda: run.mailboxes.receive(bad),
        lambda: run.notes.append(bad, "hi"),
        lambda: Keys("swarm", bad),
        lambda: RunState(redis_client, bad),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(InvalidIdentifier):
            call()
            pytest.fail(f"call {i} accepted {bad!r}")
        assert _keys(redis_client) == before, f"call {i} wrote something"
    assert issubclass(InvalidIdentifier, ValueError)


# -- wrong field types and values -----------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("priority", "high"),
    ("priority", 10**7),
    ("priority", 1.5),
    ("title", 5),
    ("title", "t" * 1001),
    ("body", ["not", "text"]),
    ("labels", {"k": 1}),
    ("labels", ["k"]),
    ("max_attempts", 0),
    ("max_attempts", -1),
    ("max_attempts", "many"),
])
def test_wrong_field_types_are_invalid_records(make_run: MakeRun, redis_client: redis.Redis, field: str,
                                               value: object) -> None:
    run = make_run()
    kwargs: dict[str, object] = {"role": "r", "title": "t", field: value}
    with pytest.raises(InvalidRecord) as err:
        run.board.create(**kwargs)  # type: ignore[arg-type]
    assert field in str(err.value)
    assert _keys(redis_client) == set()


def test_unserializable_result_is_an_invalid_record(make_run: MakeRun) -> None:
    run = make_run()
    run.board.create("r", "t", task_id="t1")
    lease = run.board.claim("w", "r")
    assert lease is not None
    with pytest.raises(InvalidRecord):
        run.board.complete(lease, {"obj": object()})  # type: ignore[dict-item]
    assert run.board.get("t1").status is TaskStatus.CLAIMED  # nothing written; the lease still holds
    assert run.board.complete(lease, {"ok": True}).status is TaskStatus.DONE


def test_oversized_body_is_refused(make_run: MakeRun, redis_client: redis.Redis) -> None:
    run = make_run(max_record_bytes=4096)
    run.board.create("r", "fits", body="x" * 3000)
    before = _keys(redis_client)
    with pytest.raises(PayloadTooLarge) as err:
        run.board.create("r", "too big", body="x" * 5000)
    assert err.value.limit == 4096 and err.value.size > 4096
    assert _keys(redis_client) == before


def test_oversized_result_is_refused_and_the_lease_survives(make_run: MakeRun) -> None:
    run = make_run(max_record_bytes=4096)
    run.board.create("r", "t", task_id="t1")
    lease = run.board.claim("w", "r")
    assert lease is not None
    with pytest.raises(PayloadTooLarge):
        run.board.complete(lease, "r" * 10_000)
    assert run.board.complete(lease, "small").result == "small"


def test_lease_on_a_task_that_is_not_claimed(make_run: MakeRun) -> None:
    run = make_run()
    task = run.board.create("r", "t")
    with pytest.raises(InvalidTransition):
        run.board.fail(Lease(task, 1), "x")
    with pytest.raises(InvalidTransition):
        run.board.heartbeat(Lease(task, 1))


# -- corrupt data in Redis ------------------------------------------------------------------------

@pytest.mark.parametrize("garbage", [b"{not json", b'{"id": "t1"}', b"[]", b'"a string"', b"\xff\xfe"])
def test_malformed_task_record_is_reported(make_run: MakeRun, garbage: bytes) -> None:
    run = make_run()
    run.board.create("r", "healthy", task_id="fine")
    run.records.create(run.keys.task("t1"), garbage)  # a well-versioned record with bad contents
    run.redis.sadd(run.keys.status(TaskStatus.PENDING), "t1")
    with pytest.raises(MalformedRecord) as err:
        run.board.get("t1")
    assert err.value.key == run.keys.task("t1")
    with pytest.raises(MalformedRecord):
        run.board.get_many(["fine", "t1"])
    with pytest.raises(MalformedRecord):
        run.board.tasks()
    with pytest.raises(MalformedRecord):
        run.board.cancel("t1")
    with pytest.raises(MalformedRecord):
        run.board.create("r", "depends on garbage", depends_on=["t1"])
    assert run.board.get("fine").status is TaskStatus.PENDING


def test_task_key_of_the_wrong_redis_type(make_run: MakeRun) -> None:
    run = make_run()
    run.redis.set(run.keys.task("t1"), "plain string")
    with pytest.raises(MalformedRecord):
        run.board.get("t1")
    with pytest.raises(MalformedRecord):
        run.board.create("r", "same id", task_id="t1")
    assert run.redis.get(run.keys.task("t1")) == b"plain string"


def test_garbage_mailbox_entry_is_malformed_and_the_mailbox_keeps_working(make_run: MakeRun) -> None:
    boxes = make_run().mailboxes
    first = boxes.send("a", "b", "before")
    boxes.redis.xadd(boxes.keys.mailbox("b"), {"m": b"{garbage"})
    boxes.redis.xadd(boxes.keys.mailbox("b"), {"other": b"field"})
    last = boxes.send("a", "b", "after")
    with pytest.raises(MalformedRecord) as err:
        boxes.receive("b", count=10)
    assert err.value.key == boxes.keys.mailbox("b")
    seen: list[str] = []
    for _ in range(5):  # each garbage entry is reported once and dropped; real messages survive
        try:
            got = boxes.receive("b", count=10)
        except MalformedRecord:
            continue
        seen += [d.message.id for d in got]
        boxes.ack("b", *got)
        if not got:
            break
    assert seen == [first.id, last.id]
    assert boxes.pending("b") == 0
    again = boxes.send("a", "b", "still works")
    assert [d.message.id for d in boxes.receive("b")] == [again.id]


def test_malformed_registration_is_reported(make_run: MakeRun) -> None:
    run = make_run()
    run.records.create(run.keys.registration("a1"), b'{"id": "a1"}')
    with pytest.raises(MalformedRecord):
        run.registry.get("a1")
