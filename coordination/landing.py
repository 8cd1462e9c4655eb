"""Turns at landing on one shared branch: pushers queue for short leases instead of racing blind.

Many workers push to one branch. Racing, each push that finds the branch moved costs a fetch, a replay
and another push, and with 32 pushers on two cores most of the machine went to those losing attempts
(3.5-5.8 retries per landed commit, ``python -m bench git``). A turn is one slot of the shared call
limiter (:class:`~coordination.limiter.CallLimiter`, at most ``width`` in flight per branch, one by
default): a holder reads the tip, replays and pushes, and the others wait without spending CPU on
attempts that would lose meanwhile.

The turn is advice, never what keeps the branch correct: git's own ref update stays the
compare-and-set of the branch, so a pusher that is not queued (a person, another tool), a holder whose
lease lapsed (a long check, a dead process) or a waiter that gave up just races as before and, if it
loses, replays again. A lease lapses on its own, so a dead holder stalls the others for at most its
lease. Ending a turn pushes one token to a wake list (trimmed to one) that the waiters block on, so the
next one starts at once instead of polling; a waiter also asks again every ``poll_s`` in case the
holder died without waking anyone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

from coordination.keys import Keys
from coordination.limiter import CallLimiter

LEASE_S = 5.0  # far above a fetch, replay and push (~0.1 s); a longer check simply lets it lapse
POLL_S = 0.25  # a waiter asks again at least this often (a holder that died wakes nobody)
# One turn at a time, so a queued push never loses. Two (one replaying while the other pushes) paid
# for it with a losing push per landing: at 32 pushers 0.95 retries and 1.7-2.1x one pusher's CPU per
# commit, against 0 retries, 1.2-1.4x and a higher rate with one, now that a turn holds only a tip read
# (no fetch), a merge-tree, a commit written in-process and the push (`python -m bench git`, a quiet
# 2-core machine). Under heavy load from other work every process in the turn waits for a core: there
# two turns did better (load 17-23: 16 pushers 12.5x one against 5.3x with one), before a turn was
# made this short.
WIDTH = 1


class LandingTurns:
    """One pusher's way into the queue for landing on the branch called ``name``."""

    def __init__(self, client: redis.Redis, keys: Keys, name: str, *, now: Callable[[], float] = time.time,
                 lease_s: float = LEASE_S, poll_s: float = POLL_S, max_wait_s: float | None = None,
                 width: int = WIDTH) -> None:
        self.redis = client
        self.keys = keys
        self.name = f"landing:{name}"
        self.limiter = CallLimiter(client, keys, now)
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.width = width  # turns held at once: with more than one, all but one holder may lose its push
        # Past this a waiter pushes without its turn (and may race): the queue must never be slower than
        # racing, whatever happens to the holders.
        self.max_wait_s = 4 * lease_s if max_wait_s is None else max_wait_s

    @contextmanager
    def turn(self) -> Iterator[bool]:
        """Wait for this branch's turn and hold it for the block; yields False if it was not had in time
        (the block runs anyway, racing as without turns)."""
        try:
            token = self._wait()
        except redis.RedisError:  # advice only: without Redis a pusher races as it would without turns
            token = None
        try:
            yield token is not None
        finally:
            if token is not None:
                with contextlib.suppress(redis.RedisError):  # unreleased, the turn lapses with its lease
                    self._end(token)

    def _wait(self) -> str | None:
        deadline = time.monotonic() + self.max_wait_s
        wake = self.keys.landing_wake(self.name)
        while True:
            admission = self.limiter.try_acquire(self.name, max_in_flight=self.width, per_minute=None,
                                                 lease_s=self.lease_s)
            if admission.token is not None:
                return admission.token
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            # BLPOP serves blocked clients in arrival order: the queue is first come, first served
            # among those waiting at the moment a turn ends.
            self.redis.blpop([wake], timeout=max(0.01, min(self.poll_s, left)))

    def _end(self, token: str) -> None:
        wake = self.keys.landing_wake(self.name)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(self.keys.calls_in_flight(self.name), token)
        pipe.lpush(wake, "1")
        pipe.ltrim(wake, 0, 0)  # one token at most: a turn ending with nobody waiting is not remembered twice
        pipe.pexpire(wake, int(max(self.lease_s, 1.0) * 10_000))
        pipe.execute()

    def holding(self) -> int:
        """Turns held now (0 or 1; lapsed ones not counted)."""
        return self.limiter.in_flight(self.name)
