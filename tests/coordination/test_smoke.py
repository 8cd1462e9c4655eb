from coordination.errors import VersionConflict
import pytest


def test_cas_roundtrip(make_store):
    store = make_store()
    v1 = store.create("k", b"one")
    assert store.get("k").version == v1 == 1
    assert store.cas("k", 1, b"two") == 2
    with pytest.raises(VersionConflict) as err:
        store.cas("k", 1, b"three")
    assert (err.value.expected, err.value.actual) == (1, 2)


def test_board_roundtrip(make_run):
    run = make_run()
    task = run.board.create("work", "hello")
    lease = run.board.claim("w1", "work")
    assert lease.task.id == task.id
    assert run.board.complete(lease, {"ok": True}).status == "done"
