"""Notes, the progress document and the event stream, on a real Redis."""

from __future__ import annotations

import multiprocessing.context
from collections.abc import Callable

import pytest

from coordination.errors import MalformedRecord, PayloadTooLarge
from coordination.events import EventLog
from coordination.notes import Notes, ProgressDoc
from coordination.run import RunState
from coordination.tasks import TaskStatus
from tests.coordination import _workers
from tests.coordination._workers import run_in_processes

MakeRun = Callable[..., RunState]
Ctx = multiprocessing.context.BaseContext

# Approximate trimming (MAXLEN ~) removes whole stream nodes only; a node holds up to this many entries.
STREAM_NODE_ENTRIES = 100


# -- notes ----------------------------------------------------------------------------------------

def test_append_and_read_in_order(make_run: MakeRun) -> None:
    notes = make_run().notes
    ids = [notes.append("run", f"note {i}", author="a1", data={"i": i}) for i in range(5)]
    got = notes.read("run")
    assert [n.id for n in got] == ids
    assert [(n.text, n.author, n.kind, n.data, n.scope) for n in got[:2]] == [
        ("note 0", "a1", "note", {"i": 0}, "run"), ("note 1", "a1", "note", {"i": 1}, "run")]
    assert all(n.ts > 0 for n in got)


def test_read_after_and_limit(make_run: MakeRun) -> None:
    notes = make_run().notes
    ids = [notes.append("run", str(i)) for i in range(6)]
    assert [n.text for n in notes.read("run", after=ids[2])] == ["3", "4", "5"]
    assert [n.text for n in notes.read("run", after=ids[1], limit=2)] == ["2", "3"]
    assert notes.read("run", after=ids[-1]) == []


def test_scopes_are_separate(make_run: MakeRun) -> None:
    notes = make_run().notes
    notes.append("run", "for everyone")
    notes.append("agent-1", "private")
    assert [n.text for n in notes.read("agent-1")] == ["private"]
    assert [n.text for n in notes.read("run")] == ["for everyone"]
    assert notes.read("agent-2") == []


def test_latest_by_kind(make_run: MakeRun) -> None:
    notes = make_run().notes
    for i in range(450):  # more than one page of the backwards scan
        notes.append("run", f"n{i}", kind="decision" if i % 150 == 0 else "log")
    assert [n.text for n in notes.latest("run")] == ["n449"]
    assert [n.text for n in notes.latest("run", limit=3)] == ["n449", "n448", "n447"]
    assert [n.text for n in notes.latest("run", kind="decision", limit=5)] == ["n300", "n150", "n0"]
    assert notes.latest("run", kind="nothing") == []
    assert notes.latest("empty-scope") == []


def test_note_size_limit(make_run: MakeRun) -> None:
    run = make_run()
    notes = Notes(run.redis, run.keys, max_bytes=100)
    notes.append("run", "x" * 50)
    with pytest.raises(PayloadTooLarge):
        notes.append("run", "x" * 101)
    with pytest.raises(PayloadTooLarge):
        notes.append("run", "short", data={"blob": "y" * 200})
    assert len(notes.read("run")) == 1


def test_notes_stream_is_bounded(make_run: MakeRun) -> None:
    run = make_run()
    notes = Notes(run.redis, run.keys, maxlen=50)
    for i in range(600):
        notes.append("run", str(i))
    length = run.redis.xlen(run.keys.notes("run"))
    assert 50 <= length <= 50 + STREAM_NODE_ENTRIES
    assert notes.latest("run")[0].text == "599"


# -- progress -------------------------------------------------------------------------------------

def test_progress_starts_empty_and_updates(make_run: MakeRun) -> None:
    progress = make_run().progress
    assert progress.read() == (ProgressDoc(), 0)

    def edit(doc: ProgressDoc) -> ProgressDoc:
        doc.summary = "half way"
        doc.sections["plan"] = "1. build 2. test"
        return doc

    doc, version = progress.update(edit, author="lead")
    assert version == 1 and doc.updated_by == "lead" and doc.summary == "half way"
    read, read_version = progress.read()
    assert read == doc and read_version == 1


@pytest.mark.slow
def test_progress_from_concurrent_writers_loses_nothing(redis_url: str, make_run: MakeRun, mp_context: Ctx) -> None:
    run = make_run()
    writers, each = 8, 25
    barrier = mp_context.Barrier(writers)
    run_in_processes(mp_context, _workers.revise_progress,
                     [(redis_url, run.run_id, f"w{i}", each, barrier) for i in range(writers)])
    doc, version = run.progress.read()
    assert version == writers * each
    assert set(doc.sections) == {f"w{w}-{i}" for w in range(writers) for i in range(each)}


def test_corrupt_progress_is_malformed(make_run: MakeRun) -> None:
    run = make_run()
    run.records.create(run.keys.progress(), b'{"summary": 5, "surprise": true}')
    with pytest.raises(MalformedRecord):
        run.progress.read()
    with pytest.raises(MalformedRecord):
        run.progress.update(lambda d: d, author="x")


# -- events ---------------------------------------------------------------------------------------

def test_every_board_state_change_appends_an_event(make_run: MakeRun) -> None:
    run = make_run()
    board = run.board
    board.create("r", "a", task_id="a")
    board.create("r", "b", task_id="b", depends_on=["a"], parent="a")
    lease = board.claim("w1", "r")
    assert lease is not None
    lease = board.heartbeat(lease)  # not a status change: no event
    board.fail(lease, "flaky", retry=True)
    lease = board.claim("w2", "r")
    assert lease is not None
    board.release(lease)
    lease = board.claim("w3", "r")
    assert lease is not None
    board.complete(lease, "ok")
    board.cancel("b")
    events = run.events.read()
    assert [(e.type, e.subject) for e in events] == [
        ("task.pending", "a"), ("task.blocked", "b"), ("task.claimed", "a"), ("task.pending", "a"),
        ("task.claimed", "a"), ("task.pending", "a"), ("task.claimed", "a"), ("task.done", "a"),
        ("task.pending", "b"), ("task.cancelled", "b")]
    # Each event carries the version its record write produced.
    assert [e.version for e in events if e.subject == "a"] == [1, 2, 4, 5, 6, 7, 8]
    assert events[2].data["claimant"] == "w1"  # type: ignore[index]
    assert events[3].data["error"] == "flaky" and events[3].data["attempts"] == 1  # type: ignore[index]
    assert events[0].data["parent"] is None and events[1].data["parent"] == "a"  # type: ignore[index]
    assert run.board.counts()[TaskStatus.CANCELLED] == 1


def test_events_read_after_and_follow(make_run: MakeRun) -> None:
    run = make_run()
    first = run.events.emit("custom", "s1", {"x": 1})
    run.events.emit("custom", "s2")
    assert [e.subject for e in run.events.read(after=first)] == ["s2"]
    assert [e.data for e in run.events.read()] == [{"x": 1}, None]
    follow = run.events.follow(after="0-0", block_ms=100)
    assert [e.subject for e in next(follow)] == ["s1", "s2"]
    assert next(follow) == []  # nothing new within block_ms
    run.events.emit("custom", "s3")
    assert [e.subject for e in next(follow)] == ["s3"]


def test_event_stream_is_bounded(make_run: MakeRun) -> None:
    run = make_run(event_stream_maxlen=40)
    for i in range(300):
        run.board.create("r", f"t{i}")
    assert 40 <= run.events.length() <= 40 + STREAM_NODE_ENTRIES
    emitted = EventLog(run.redis, run.keys, maxlen=40)
    for i in range(300):
        emitted.emit("custom", str(i))
    assert 40 <= emitted.length() <= 40 + STREAM_NODE_ENTRIES
    assert emitted.read(count=100_000)[-1].subject == "299"
