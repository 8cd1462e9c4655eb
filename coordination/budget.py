"""Money set aside for calls in flight, so agents running at once cannot spend past a cap together.

Each agent checks the run's spend before its model call; a hundred agents checking at once all see
room and all spend, and the run overshoots its cap by a hundred calls. So before a call its holder
reserves the most the call can cost, in one Lua script: admitted only if what was spent, plus what
others have reserved, plus this call's ceiling stays within the cap, or if no other call is in flight
(then the run overshoots by at most that one call, as a single agent would). A call whose prompt alone
would cross the cap is refused for good. The reservation is given back
(``store.release``, an op riding on the write that records the call's real cost) when the call
ends; a holder that crashes holds at most one, replaced by its own next reservation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import redis

SPENT_FIELD = "cost_usd"
RESERVED_FIELD = "reserved_usd"

# KEYS: totals hash (spent and reserved), reservations hash. ARGV: holder, amount (the call's ceiling), cap,
# spent field, reserved field, floor (what the call surely costs). Reply: {code, spent, others}: 1 reserved;
# 0 even the floor would cross the cap; 2 it fits once the calls of others in flight have ended. A call
# alone is admitted even if its ceiling would not fit: it overshoots by at most its own cost.
_RESERVE = r"""
local spent = tonumber(redis.call('HGET', KEYS[1], ARGV[4]) or '0')
local total = tonumber(redis.call('HGET', KEYS[1], ARGV[5]) or '0')
local old = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local others = math.max(0, total - old)
if others < 1e-12 then others = 0 end
local amount = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local floor = tonumber(ARGV[6])
if spent >= cap or spent + floor > cap then return {0, tostring(spent), tostring(others)} end
if others > 0 and spent + others + amount > cap then return {2, tostring(spent), tostring(others)} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBYFLOAT', KEYS[1], ARGV[5], amount - old)
return {1, tostring(spent), tostring(others)}
"""


class Verdict(StrEnum):
    """What a reservation request got."""

    RESERVED = "reserved"
    CAP_REACHED = "cap_reached"  # what was spent plus what this call surely costs is over the cap
    WAIT = "wait"  # fits once calls of others in flight have ended


@dataclass(frozen=True, slots=True)
class Reservation:
    verdict: Verdict
    spent: float
    others: float  # reserved by other holders


class Budget:
    """Reservations against one cap: ``totals`` holds the spent and reserved sums, ``reservations`` each
    holder's amount."""

    def __init__(self, client: redis.Redis, totals: str, reservations: str) -> None:
        self.totals = totals
        self.reservations = reservations
        self._reserve = client.register_script(_RESERVE)

    def reserve(self, holder: str, amount: float, cap: float, floor: float = 0.0) -> Reservation:
        """Set ``amount`` (the most the holder's call can cost) aside against ``cap``; ``floor`` is what the
        call costs at least (its prompt)."""
        code, spent, others = self._reserve(keys=[self.totals, self.reservations],
                                            args=[holder, repr(float(amount)), repr(float(cap)), SPENT_FIELD,
                                                  RESERVED_FIELD, repr(float(floor))])
        verdict = {1: Verdict.RESERVED, 0: Verdict.CAP_REACHED}.get(int(code), Verdict.WAIT)
        return Reservation(verdict, float(spent), float(others))
