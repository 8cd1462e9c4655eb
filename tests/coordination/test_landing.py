"""Turns at landing on a branch (coordination/landing.py): at most ``width`` held at once across
processes, handed over when a turn ends, never held past a dead holder's lease, and given up (the
pusher races as before) rather than waited for forever."""

from __future__ import annotations

import multiprocessing
import time
import uuid

import redis
from pydantic import SecretStr

from coordination.connection import make_client
from coordination.keys import GLOBAL_SCOPE, Keys
from coordination.landing import LandingTurns
from coordination.settings import CoordinationSettings


def _connect(url: str) -> redis.Redis:
    return make_client(CoordinationSettings(redis_url=SecretStr(url)), url)  # a cluster's URL too


def _keys() -> Keys:
    return Keys(f"landing-{uuid.uuid4().hex[:8]}", GLOBAL_SCOPE)


def _hold(url: str, prefix: str, width: int, log: str, rounds: int) -> None:
    """A pusher process: take a turn, note in Redis how many hold one, hold it briefly, let go."""
    client = _connect(url)
    turns = LandingTurns(client, Keys(prefix, GLOBAL_SCOPE), "repo#main", width=width, max_wait_s=60)
    for _ in range(rounds):
        with turns.turn() as had:
            assert had
            inside = client.incr(f"{log}:inside")
            client.rpush(f"{log}:seen", inside)
            time.sleep(0.01)
            client.decr(f"{log}:inside")


def _run_holders(url: str, width: int) -> list[int]:
    keys, log = _keys(), f"{{log}}-{uuid.uuid4().hex[:8]}"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hold, args=(url, keys.prefix, width, log, 5)) for _ in range(6)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    client = _connect(url)
    return [int(x) for x in client.lrange(f"{log}:seen", 0, -1)]


def test_one_turn_at_a_time_across_processes(redis_url: str) -> None:
    seen = _run_holders(redis_url, width=1)
    assert len(seen) == 30 and max(seen) == 1  # every turn was had, never two at once


def test_width_two_lets_two_hold_and_never_three(redis_url: str) -> None:
    seen = _run_holders(redis_url, width=2)
    assert len(seen) == 30 and max(seen) <= 2


def test_a_dead_holder_stalls_the_others_only_for_its_lease(redis_client: redis.Redis) -> None:
    keys = _keys()
    dead = LandingTurns(redis_client, keys, "repo#main", width=1, lease_s=0.5)
    assert dead._wait() is not None  # taken and never given back: its process died
    waiter = LandingTurns(redis_client, keys, "repo#main", width=1, lease_s=0.5, poll_s=0.05, max_wait_s=30)
    assert waiter.holding() == 1
    with waiter.turn() as had:
        assert had  # the lapsed lease freed the turn; nobody woke the waiter, its own poll found it
        assert waiter.holding() == 1
    assert waiter.holding() == 0


def test_a_waiter_gives_up_and_races_rather_than_wait_forever(redis_client: redis.Redis) -> None:
    keys = _keys()
    holder = LandingTurns(redis_client, keys, "repo#main", width=1, lease_s=60)
    patient = LandingTurns(redis_client, keys, "repo#main", width=1, lease_s=60, poll_s=0.05, max_wait_s=0.2)
    with holder.turn() as had:
        assert had
        with patient.turn() as second:
            assert second is False  # not had: the block runs anyway, racing as without turns
        assert holder.holding() == 1  # the one who gave up did not free someone else's turn
    assert holder.holding() == 0


def test_other_branches_have_their_own_turns(redis_client: redis.Redis) -> None:
    keys = _keys()
    one = LandingTurns(redis_client, keys, "repo#main", width=1, max_wait_s=0.1)
    other = LandingTurns(redis_client, keys, "repo#release", width=1, max_wait_s=0.1)
    with one.turn() as a, other.turn() as b:
        assert a and b


def test_without_redis_a_pusher_races_instead_of_failing() -> None:
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    turns = LandingTurns(unreachable, _keys(), "repo#main", width=1)
    with turns.turn() as had:
        assert had is False  # the push goes ahead, racing: git's ref update keeps the branch correct
