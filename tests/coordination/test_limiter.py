"""Limits shared by every process through Redis: calls in flight and per minute, and money reserved."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import redis

from coordination.budget import RESERVED_FIELD, SPENT_FIELD, Budget, Verdict
from coordination.keys import GLOBAL_SCOPE, Keys
from coordination.limiter import CallLimiter
from coordination.store import RecordStore, Write, release
from tests.coordination.conftest import Clock

KEYS = Keys("swarm", GLOBAL_SCOPE)


def test_calls_in_flight_are_capped_and_lapsed_slots_come_back(redis_client: redis.Redis, clock: Clock) -> None:
    limiter = CallLimiter(redis_client, KEYS, clock.now)
    held = [limiter.try_acquire("openai/gpt-5.2", max_in_flight=2, per_minute=None, lease_s=30) for _ in range(3)]
    assert [a.admitted for a in held] == [True, True, False] and held[2].wait_s == 0
    limiter.release("openai/gpt-5.2", held[0].token or "")
    assert limiter.try_acquire("openai/gpt-5.2", max_in_flight=2, per_minute=None, lease_s=30).admitted
    clock.advance(31)  # a process died holding its slots: they lapse with their lease
    assert limiter.in_flight("openai/gpt-5.2") == 0
    assert limiter.try_acquire("openai/gpt-5.2", max_in_flight=2, per_minute=None, lease_s=30).admitted
    assert limiter.try_acquire("other/model", max_in_flight=None, per_minute=None, lease_s=30).admitted


def test_starts_per_minute_say_how_long_to_wait(redis_client: redis.Redis, clock: Clock) -> None:
    limiter = CallLimiter(redis_client, KEYS, clock.now)
    for _ in range(3):
        assert limiter.try_acquire("m", max_in_flight=None, per_minute=3, lease_s=30).admitted
        clock.advance(10)
    refused = limiter.try_acquire("m", max_in_flight=None, per_minute=3, lease_s=30)
    assert not refused.admitted and refused.wait_s == 30.0  # the first start ages out 60 s after it
    clock.advance(30)
    assert limiter.try_acquire("m", max_in_flight=None, per_minute=3, lease_s=30).admitted


def test_concurrent_callers_never_exceed_the_cap(redis_client: redis.Redis, clock: Clock) -> None:
    limiter = CallLimiter(redis_client, KEYS, clock.now)

    def grab(_: int) -> bool:
        return limiter.try_acquire("busy", max_in_flight=5, per_minute=None, lease_s=30).admitted

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(grab, range(64))) == 5


def test_reservations_keep_concurrent_spenders_under_the_cap(redis_client: redis.Redis) -> None:
    keys = Keys("swarm", "run-1")
    totals, reservations = keys.usage("run"), keys.reservations()
    budget = Budget(redis_client, totals, reservations)
    redis_client.hset(totals, SPENT_FIELD, "0.80")
    assert budget.reserve("a", 0.10, cap=1.0).verdict is Verdict.RESERVED
    assert budget.reserve("b", 0.15, cap=1.0).verdict is Verdict.WAIT  # fits only once a's call has ended
    assert budget.reserve("a", 0.12, cap=1.0).verdict is Verdict.RESERVED  # a's new call replaces its old one
    assert budget.reserve("c", 0.30, cap=1.0, floor=0.25).verdict is Verdict.CAP_REACHED  # its prompt alone crosses
    assert float(redis_client.hget(totals, RESERVED_FIELD) or 0) == 0.12
    # The write recording a's real cost gives its reservation back, atomically.
    records = RecordStore(redis_client)
    records.update(keys.agent("a"), lambda _cur: Write(b"{}", ops=[release(reservations, totals, "a", RESERVED_FIELD)]))
    assert float(redis_client.hget(totals, RESERVED_FIELD) or 0) == 0.0 and not redis_client.hexists(reservations, "a")
    assert budget.reserve("b", 0.15, cap=1.0).verdict is Verdict.RESERVED
    # A call alone may go although its ceiling does not fit (it overshoots by at most itself) ...
    redis_client.hdel(reservations, "b")
    redis_client.hset(totals, RESERVED_FIELD, "0")
    assert budget.reserve("d", 0.50, cap=1.0, floor=0.1).verdict is Verdict.RESERVED
    # ... but not beside another one in flight.
    assert budget.reserve("e", 0.50, cap=1.0, floor=0.1).verdict is Verdict.WAIT
