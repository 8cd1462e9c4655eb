"""Compare-and-set histories of concurrent clients are linearizable, also when connections drop.

The checker is tested first on hand-written histories (it must reject lost updates, stale reads and
phantom values, and accept what is legal); then OS processes hammer one key of a real Redis through
RecordStore, with and without a process killing their connections, and the merged history must pass.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from coordination.connection import connect
from coordination.embedded import EmbeddedRedis
from tests.history import (
    CheckResult,
    HistoryRecorder,
    Operation,
    OpKind,
    Outcome,
    check_history,
    check_linearizable,
    check_versions,
    load_history,
)
from tests.reliability import _workers

OK, FAIL, UNKNOWN = Outcome.OK, Outcome.FAIL, Outcome.UNKNOWN


def read(p: str, start: int, end: int, value: str | None, version: int) -> Operation:
    return Operation(p, start, OpKind.READ, OK, start, end, value=value, version=version)


def cas(p: str, start: int, end: int | None, expected: int, value: str, outcome: Outcome = OK,
        version: int | None = None) -> Operation:
    if outcome is OK and version is None:
        version = expected + 1
    return Operation(p, start, OpKind.CAS, outcome, start, end, expected=expected, value=value, version=version)


def verdict(ops: list[Operation]) -> CheckResult:
    """The full check, asserting the WGL search alone agrees with it: the cheap checks are necessary
    conditions (they never reject what the search accepts), the search is the proof."""
    full = check_history(ops)
    assert check_linearizable(ops).ok is full.ok, full
    return full


# -- the checker on hand-written histories ---------------------------------------------------------

def test_sequential_history_is_accepted() -> None:
    ops = [read("a", 0, 1, None, 0), cas("a", 2, 3, 0, "x"), read("b", 4, 5, "x", 1),
           cas("b", 6, 7, 1, "y"), cas("a", 8, 9, 1, "z", FAIL, 2), read("a", 10, 11, "y", 2)]
    assert verdict(ops).ok


def test_concurrent_cas_race_with_one_winner_is_accepted() -> None:
    # Both read version 1; both CAS at once; one wins, the other is told the version moved on.
    ops = [cas("s", 0, 1, 0, "x"), read("a", 2, 3, "x", 1), read("b", 2, 3, "x", 1),
           cas("a", 4, 8, 1, "from-a", FAIL, 2), cas("b", 5, 7, 1, "from-b"), read("c", 6, 9, "from-b", 2)]
    assert verdict(ops).ok


def test_read_concurrent_with_a_write_may_see_either_side() -> None:
    base = [cas("s", 0, 1, 0, "x"), cas("w", 10, 20, 1, "y")]
    assert verdict([*base, read("r", 12, 15, "x", 1)]).ok
    assert verdict([*base, read("r", 12, 15, "y", 2)]).ok


def test_lost_update_is_rejected() -> None:
    # Two CAS from the same version both told "ok": one of the two updates was lost.
    ops = [cas("s", 0, 1, 0, "x"), cas("a", 2, 5, 1, "from-a"), cas("b", 3, 6, 1, "from-b")]
    result = verdict(ops)
    assert not result.ok
    assert any("lost update" in p for p in result.problems)
    assert not check_linearizable(ops).ok


def test_stale_read_after_a_completed_write_is_rejected() -> None:
    ops = [cas("s", 0, 1, 0, "x"), cas("w", 2, 3, 1, "y"), read("r", 4, 5, "x", 1)]
    result = verdict(ops)
    assert not result.ok
    assert any("stale" in p for p in result.problems)
    assert not check_linearizable(ops).ok


def test_phantom_value_is_rejected() -> None:
    ops = [cas("s", 0, 1, 0, "x"), read("r", 2, 3, "never-written", 1)]
    result = verdict(ops)
    assert not result.ok
    assert any("phantom" in p for p in result.problems)
    assert not check_linearizable(ops).ok


def test_write_reported_failed_but_applied_is_rejected() -> None:
    # What a client that silently resends a CAS after a lost reply produces: "conflict", yet its value is there.
    ops = [cas("s", 0, 1, 0, "x"), cas("a", 2, 5, 1, "from-a", FAIL, 2), read("r", 6, 7, "from-a", 2)]
    assert not verdict(ops).ok
    assert not check_linearizable(ops).ok


def test_reads_going_back_in_time_are_rejected() -> None:
    ops = [cas("s", 0, 1, 0, "x"), cas("w", 2, 20, 1, "y"), read("r1", 3, 4, "y", 2), read("r2", 5, 6, "x", 1)]
    assert not verdict(ops).ok
    assert not check_linearizable(ops).ok


def test_unknown_cas_may_have_taken_effect_or_not() -> None:
    base = [cas("s", 0, 1, 0, "x"), cas("a", 2, None, 1, "maybe", UNKNOWN)]
    assert verdict([*base, read("r", 10, 11, "maybe", 2)]).ok  # it did
    assert verdict([*base, read("r", 10, 11, "x", 1), cas("b", 12, 13, 1, "other")]).ok  # it did not
    assert verdict([*base, read("r", 10, 11, "x", 1), read("r", 12, 13, "maybe", 2)]).ok  # it did, late


def test_unknown_cas_cannot_take_effect_before_its_invocation() -> None:
    ops = [cas("s", 0, 1, 0, "x"), read("r", 2, 3, "late", 2), cas("a", 10, None, 1, "late", UNKNOWN)]
    assert not check_linearizable(ops).ok


def test_unknown_cas_cannot_take_effect_twice() -> None:
    ops = [cas("s", 0, 1, 0, "x"), cas("a", 2, None, 1, "maybe", UNKNOWN), read("r", 10, 11, "maybe", 2),
           cas("b", 12, 13, 2, "y"), read("r", 14, 15, "maybe", 4)]
    assert not check_linearizable(ops).ok


def test_failed_cas_while_the_register_was_at_its_version_is_rejected() -> None:
    # Passes every cheap check (nothing observed contradicts a version), only the search sees it.
    ops = [cas("s", 0, 1, 0, "x"), cas("a", 2, 3, 1, "y", FAIL, None), read("r", 4, 5, "x", 1)]
    assert check_versions(ops) == []
    assert not check_linearizable(ops).ok


def test_wide_concurrency_is_checked_quickly() -> None:
    # 40 readers and failed CASes overlapping one write: the forced-move reduction keeps this linear.
    ops = [cas("s", 0, 1, 0, "x"), cas("w", 10, 100, 1, "y")]
    for i in range(40):
        seen = ("x", 1) if i % 2 else ("y", 2)
        ops.append(read(f"r{i}", 11 + i, 60 + i, *seen))
        ops.append(cas(f"c{i}", 11 + i, 60 + i, 0, f"z{i}", FAIL, seen[1]))
    result = check_linearizable(ops)
    assert result.ok and result.explored < 10_000, result


def test_recorder_files_merge_and_an_unfinished_op_is_unknown(tmp_path: Path) -> None:
    ticks = iter(range(100))
    with HistoryRecorder(tmp_path / "a.jsonl", "a", clock=lambda: next(ticks)) as rec:
        i = rec.invoke(OpKind.READ)
        rec.complete(i, OK, value=None, version=0)
        i = rec.invoke(OpKind.CAS, expected=0, value="x")
        rec.complete(i, OK, value="x", version=1)
        rec.invoke(OpKind.CAS, expected=1, value="y")  # the process died here
    with HistoryRecorder(tmp_path / "b.jsonl", "b", clock=lambda: next(ticks)) as rec:
        i = rec.invoke(OpKind.READ)
        rec.complete(i, OK, value="y", version=2)
    ops = load_history(sorted(tmp_path.glob("*.jsonl")))
    assert [(op.name, op.outcome) for op in ops] == [("a#0", OK), ("a#1", OK), ("a#2", UNKNOWN), ("b#0", OK)]
    assert ops[2].value == "y" and ops[2].complete_ns is None
    assert ops[1].invoke_ns < ops[1].complete_ns  # type: ignore[operator]
    assert check_history(ops).ok


# -- real processes on a real Redis ---------------------------------------------------------------

@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    """A server of our own: the fault process kills every normal client connection on it."""
    with EmbeddedRedis() as srv:
        yield srv


@pytest.fixture(scope="module")
def ctx() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["redis", "pydantic", "coordination", "tests.reliability._workers"])
    return ctx


def reset(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.delete("register")


def run_swarm(ctx: Any, url: str, out: Path, *, clients: int = 8, ops: int = 150, kill_every_s: float = 0.0,
              redis_retries: int = 0) -> tuple[list[Operation], int]:
    """``clients`` processes doing ``ops`` steps each on one key, optionally with a connection killer;
    returns the merged history and the number of connections killed."""
    out.mkdir()
    results: Any = ctx.Queue()
    barrier, stop = ctx.Barrier(clients), ctx.Event()
    procs = [ctx.Process(target=_workers.report, args=(results, f"p{i}", _workers.run_client, url, "register",
                                                       f"p{i}", ops, i, out, barrier, redis_retries))
             for i in range(clients)]
    if kill_every_s:
        procs.append(ctx.Process(target=_workers.report,
                                 args=(results, "killer", _workers.kill_connections, url, stop, 7, kill_every_s)))
    for proc in procs:
        proc.start()
    replies: dict[str, Any] = {}
    try:
        for _ in range(clients):
            name, status, value = results.get(timeout=100)
            replies[name] = (status, value)
        stop.set()
        if kill_every_s:
            name, status, value = results.get(timeout=30)
            replies[name] = (status, value)
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    errors = {name: value for name, (status, value) in replies.items() if status != "ok"}
    assert not errors, errors
    kills = replies["killer"][1] if kill_every_s else 0
    return load_history(sorted(out.glob("*.jsonl"))), kills


def test_product_clients_never_resend_a_command(server: EmbeddedRedis) -> None:
    """The drop test below holds because a lost reply reaches the caller (see the last test)."""
    handle = connect(_workers.settings_for(server.url))
    conn = handle.client.connection_pool.get_connection()
    try:
        assert conn.retry.get_retries() == 0
    finally:
        handle.client.connection_pool.release(conn)
        handle.close()


def test_history_under_contention_is_linearizable(server: EmbeddedRedis, ctx: Any, tmp_path: Path) -> None:
    reset(server.url)
    history, _ = run_swarm(ctx, server.url, tmp_path / "h")
    result = check_history(history)
    assert result.ok, str(result)
    cas_ok = [op for op in history if op.kind is OpKind.CAS and op.outcome is OK]
    cas_failed = [op for op in history if op.kind is OpKind.CAS and op.outcome is FAIL]
    assert cas_ok and cas_failed  # there was contention: some CAS lost their race
    assert sorted(op.version or 0 for op in cas_ok) == list(range(1, len(cas_ok) + 1))
    with redis.Redis.from_url(server.url) as client:
        assert int(client.hget("register", "v") or 0) == len(cas_ok)


def test_history_with_dropped_connections_is_linearizable(server: EmbeddedRedis, ctx: Any,
                                                           tmp_path: Path) -> None:
    reset(server.url)
    history, kills = run_swarm(ctx, server.url, tmp_path / "h", ops=250, kill_every_s=0.003)
    result = check_history(history)
    assert result.ok, str(result)
    assert kills > 0
    assert any(op.outcome is UNKNOWN for op in history), "no reply was lost: the fault injection did not bite"


def test_checker_catches_a_client_that_resends_commands_after_a_drop(server: EmbeddedRedis, ctx: Any,
                                                                     tmp_path: Path) -> None:
    """redis-py told to retry resends a CAS whose reply was lost: a write applied but reported as a
    conflict. Our clients must not do that (connect() leaves redis-py's retries off); this shows the
    checker and the fault injection together catch it when they do."""
    deadline = time.monotonic() + 30
    for attempt in range(4):
        reset(server.url)
        history, _ = run_swarm(ctx, server.url, tmp_path / f"h{attempt}", ops=250, kill_every_s=0.002,
                               redis_retries=3)
        result = check_history(history)
        if not result.ok or time.monotonic() > deadline:
            break
    assert not result.ok, "resending after lost replies went unnoticed in 4 runs"
    assert not check_linearizable(history).ok
