"""A call limiter shared by every process: at most N calls in flight and M started per minute, per name.

Thousands of agents on many machines call the same provider; its limits are per account, not per
process. Each call asks for admission with one Lua script (no lock): it drops lapsed slots and
minute-old starts, and admits the call only if both the in-flight set and the last minute's starts
are below their caps, recording it in both atomically. A refused caller gets how long until a slot or
a start frees up, and waits (with the project's backoff jitter) before asking again. A slot is a
lease: a process that dies mid-call frees it when it lapses, so nothing stays held.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis

from coordination.keys import Keys

WINDOW_S = 60.0
UNLIMITED = "unlimited"  # the token of a call under no limit: nothing to release

# KEYS: in-flight zset, started zset. ARGV: now, max in flight (0: none), per minute (0: none), lease
# seconds, token. Reply: {1, 0} admitted, or {0, wait} refused: the seconds until the minute's oldest start
# ages out (0 when only the in-flight cap refused: a slot frees whenever a call ends).
_ADMIT = r"""
local now = tonumber(ARGV[1])
local max_inflight = tonumber(ARGV[2])
local per_minute = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local token = ARGV[5]
local wait = 0
local full = false
if max_inflight > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  -- a slot frees when a call ends (usually long before its lease lapses): no wait to predict
  full = redis.call('ZCARD', KEYS[1]) >= max_inflight
end
if per_minute > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60)
  if redis.call('ZCARD', KEYS[2]) >= per_minute then
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(first[2]) + 60 - now)
  end
end
if full or wait > 0 then return {0, tostring(wait)} end
if max_inflight > 0 then
  redis.call('ZADD', KEYS[1], now + lease, token)
  redis.call('PEXPIRE', KEYS[1], math.ceil((lease + 60) * 1000))
end
if per_minute > 0 then
  redis.call('ZADD', KEYS[2], now, token)
  redis.call('PEXPIRE', KEYS[2], 61000)
end
return {1, '0'}
"""


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to a call asking to start: a token to release, or how long to wait before asking again."""

    token: str | None
    wait_s: float  # at least this long before asking again (0: no prediction, back off and ask)

    @property
    def admitted(self) -> bool:
        return self.token is not None


class CallLimiter:
    """Admission of calls to named services (models), shared through one Redis by every worker."""

    def __init__(self, client: redis.Redis, keys: Keys, now: Callable[[], float]) -> None:
        self.redis = client
        self.keys = keys
        self.now = now
        self._admit = client.register_script(_ADMIT)

    def try_acquire(self, name: str, *, max_in_flight: int | None, per_minute: int | None,
                    lease_s: float) -> Admission:
        """Admit one call to ``name`` if it keeps both limits (None: no such limit)."""
        if not max_in_flight and not per_minute:
            return Admission(token=UNLIMITED, wait_s=0.0)
        token = uuid.uuid4().hex
        code, wait = self._admit(keys=[self.keys.calls_in_flight(name), self.keys.calls_started(name)],
                                 args=[repr(self.now()), int(max_in_flight or 0), int(per_minute or 0),
                                       repr(float(lease_s)), token])
        if int(code) == 1:
            return Admission(token=token, wait_s=0.0)
        return Admission(token=None, wait_s=max(0.0, float(wait)))

    def release(self, name: str, token: str) -> None:
        """Free the call's in-flight slot (its start still counts for the minute)."""
        if token != UNLIMITED:
            self.redis.zrem(self.keys.calls_in_flight(name), token)

    def in_flight(self, name: str) -> int:
        """Calls holding a slot now (lapsed ones not counted)."""
        return int(self.redis.zcount(self.keys.calls_in_flight(name), self.now(), "+inf"))
