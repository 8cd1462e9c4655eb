"""Mailboxes on a real Redis: delivery, acknowledgement, redelivery after a crash, request/reply."""

from __future__ import annotations

import multiprocessing.context
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from coordination.errors import InvalidIdentifier, PayloadTooLarge, ReplyTimeout
from coordination.mailbox import Mailboxes, MessageKind
from coordination.run import RunState
from tests.coordination import _workers

MakeRun = Callable[..., RunState]
Ctx = multiprocessing.context.BaseContext


def test_send_receive_ack(make_run: MakeRun) -> None:
    boxes = make_run().mailboxes
    sent = [boxes.send("alice", "bob", f"hello {i}", headers={"i": str(i)}) for i in range(3)]
    assert boxes.backlog("bob") == 3
    got = boxes.receive("bob", count=10)
    assert [d.message for d in got] == sent
    assert all(d.deliveries == 1 for d in got)
    assert got[0].message.sender == "alice" and got[0].message.kind is MessageKind.MESSAGE
    assert boxes.backlog("bob") == 0 and boxes.pending("bob") == 3
    assert boxes.ack("bob", *got) == 3
    assert boxes.pending("bob") == 0
    assert boxes.receive("bob") == []
    assert boxes.receive("alice") == []  # nothing crossed into the sender's own box


def test_receive_respects_count(make_run: MakeRun) -> None:
    boxes = make_run().mailboxes
    for i in range(5):
        boxes.send("a", "b", str(i))
    first = boxes.receive("b", count=2)
    assert [d.message.body for d in first] == ["0", "1"]
    boxes.ack("b", *first)
    assert [d.message.body for d in boxes.receive("b", count=10)] == ["2", "3", "4"]


def test_receive_times_out_empty(make_run: MakeRun) -> None:
    boxes = make_run().mailboxes
    assert boxes.receive("nobody-writes", timeout_s=0.2) == []


def test_blocking_receive_wakes_on_a_message(make_run: MakeRun) -> None:
    run = make_run()
    sender = Mailboxes(run.redis, run.keys)
    timer = threading.Timer(0.3, lambda: sender.send("a", "b", "late"))
    timer.start()
    try:
        got = run.mailboxes.receive("b", timeout_s=60)  # returns on arrival, long before the timeout
    finally:
        timer.join()
    assert [d.message.body for d in got] == ["late"]


def test_unacked_message_comes_back_to_its_reader(make_run: MakeRun) -> None:
    boxes = make_run().mailboxes
    boxes.send("a", "b", "once")
    first = boxes.receive("b")
    again = boxes.receive("b")
    assert [d.entry_id for d in again] == [d.entry_id for d in first]
    assert again[0].deliveries == 2
    boxes.ack("b", *again)
    assert boxes.receive("b") == []


def test_other_consumer_takes_over_only_after_idle_time(make_run: MakeRun) -> None:
    run = make_run()
    patient = Mailboxes(run.redis, run.keys, redeliver_after_ms=600_000)
    patient.send("a", "b", "x")
    held = patient.receive("b", consumer="c1")
    assert len(held) == 1
    assert patient.receive("b", consumer="c2") == []  # c1 is presumed alive
    eager = Mailboxes(run.redis, run.keys, redeliver_after_ms=0)
    taken = eager.receive("b", consumer="c2")
    assert [d.entry_id for d in taken] == [held[0].entry_id] and taken[0].deliveries == 2


@pytest.mark.slow
def test_message_of_a_killed_reader_is_redelivered(redis_url: str, make_run: MakeRun, mp_context: Ctx) -> None:
    run = make_run()
    boxes = Mailboxes(run.redis, run.keys, redeliver_after_ms=300)
    sent = boxes.send("boss", "worker", "do the thing")
    out = mp_context.Queue()
    reader = mp_context.Process(target=_workers.read_and_hang,
                                args=(redis_url, run.run_id, "worker", "doomed", out), daemon=True)
    reader.start()
    try:
        read = out.get(timeout=120)
        assert [(m, b) for _e, m, b in read] == [(sent.id, "do the thing")]
        assert reader.pid is not None
        os.kill(reader.pid, signal.SIGKILL)
        reader.join(timeout=60)
        assert reader.exitcode == -signal.SIGKILL
        assert boxes.pending("worker") == 1
        got = []
        deadline = time.monotonic() + 60
        while not got and time.monotonic() < deadline:
            got = boxes.receive("worker", consumer="survivor", timeout_s=0.2)
        assert [d.message.id for d in got] == [sent.id]
        assert got[0].entry_id == read[0][0] and got[0].deliveries == 2
        boxes.ack("worker", *got)
        assert boxes.pending("worker") == 0
        assert boxes.receive("worker", consumer="survivor") == []
    finally:
        if reader.is_alive():
            reader.kill()


@pytest.mark.slow
def test_request_reply_across_processes(redis_url: str, make_run: MakeRun, mp_context: Ctx) -> None:
    run = make_run()
    server = mp_context.Process(target=_workers.answer_requests,
                                args=(redis_url, run.run_id, "oracle", 4), daemon=True)
    server.start()
    try:
        first = run.mailboxes.request("asker", "oracle", "ping", timeout_s=60)
        assert first.kind is MessageKind.REPLY and first.body == "PING"
        assert first.sender == "oracle" and first.recipient == "asker"
        assert first.headers["pid"] == str(server.pid)
        # Concurrent requests each get their own answer: replies are matched by correlation id.
        bodies = ["alpha", "beta", "gamma"]
        with ThreadPoolExecutor(3) as pool:
            replies = list(pool.map(lambda b: run.mailboxes.request("asker", "oracle", b, timeout_s=60), bodies))
        assert [r.body for r in replies] == ["ALPHA", "BETA", "GAMMA"]
        assert len({r.correlation_id for r in replies}) == 3
        server.join(timeout=120)
        assert server.exitcode == 0
    finally:
        if server.is_alive():
            server.kill()


def test_request_without_answer_times_out(make_run: MakeRun) -> None:
    boxes = make_run().mailboxes
    with pytest.raises(ReplyTimeout) as err:
        boxes.request("asker", "silent", "anyone?", timeout_s=0.3)
    assert isinstance(err.value, TimeoutError)
    assert "silent" in str(err.value)
    # The request itself was delivered and is still there to be answered.
    assert [d.message.body for d in boxes.receive("silent")] == ["anyone?"]


def test_reply_matches_request_and_can_copy_to_mailbox(make_run: MakeRun) -> None:
    boxes = make_run().mailboxes
    request = boxes.send("asker", "oracle", "q", kind=MessageKind.REQUEST, correlation_id="c-1",
                         reply_to_mailbox=True)
    delivered = boxes.receive("oracle")[0].message
    assert delivered == request
    answer = boxes.reply(delivered, "oracle", "a")
    assert answer.correlation_id == "c-1" and answer.recipient == "asker"
    assert boxes.wait_reply(request, timeout_s=5) == answer
    assert [d.message for d in boxes.receive("asker")] == [answer]  # the copy in the mailbox


def test_reply_to_plain_message_is_refused(make_run: MakeRun) -> None:
    boxes = make_run().mailboxes
    plain = boxes.send("a", "b", "no question here")
    with pytest.raises(ValueError, match="not a request"):
        boxes.reply(plain, "b", "answer")


def test_message_size_limit(make_run: MakeRun) -> None:
    boxes = make_run(max_message_bytes=1000).mailboxes
    boxes.send("a", "b", "x" * 500)
    with pytest.raises(PayloadTooLarge):
        boxes.send("a", "b", "x" * 2000)
    assert [len(d.message.body) for d in boxes.receive("b")] == [500]


def test_sending_appends_an_event(make_run: MakeRun) -> None:
    run = make_run()
    message = run.mailboxes.send("a", "b", "hi")
    events = run.events.read()
    assert [(e.type, e.subject, e.data) for e in events] == [
        ("message.sent", message.id, {"from": "a", "to": "b", "kind": "message"})]


def test_bad_agent_ids_are_refused(make_run: MakeRun, redis_client: redis.Redis) -> None:
    boxes = make_run().mailboxes
    for bad in ("", "has space", "{tag}", "x" * 200):
        with pytest.raises(InvalidIdentifier):
            boxes.send("a", bad, "hi")
        with pytest.raises(InvalidIdentifier):
            boxes.send(bad, "b", "hi")
        with pytest.raises(InvalidIdentifier):
            boxes.receive(bad)
    assert list(redis_client.scan_iter(match="*")) == []
