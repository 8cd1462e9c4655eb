"""The one backoff of the project: exponential, capped, jittered, with a floor a server may impose.

Compare-and-set retries (:class:`coordination.store.RetryPolicy`), model calls (the gateway, which
adds a provider's ``Retry-After`` as the floor) and anything else that waits before trying again use
it, so every retry in the swarm spreads out the same way instead of thousands of clients coming back
at one instant.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits of ``base_s * factor**attempt``, capped at ``cap_s``, jittered.

    ``jitter="full"``: uniform in [0, ceiling] (spreads contending writers best); ``"equal"``: uniform in
    [ceiling/2, ceiling] (never retries almost at once, for calls to an overloaded service).
    """

    base_s: float = 0.001
    cap_s: float = 0.05
    factor: float = 2.0
    jitter: Literal["full", "equal"] = "full"

    def ceiling(self, attempt: int) -> float:
        return min(self.cap_s, self.base_s * self.factor ** min(max(attempt, 0), 60))

    def delay(self, attempt: int, rng: random.Random | None = None, floor_s: float | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (0 for the first retry). ``floor_s``: the server said
        not before then; the wait is at least that plus up to a tenth more, so clients told the same
        instant do not all return at it."""
        draw = (rng or random).uniform
        top = self.ceiling(attempt)
        wait = draw(0.0, top) if self.jitter == "full" else draw(top / 2, top)
        if floor_s is not None and floor_s > 0:
            wait = max(wait, floor_s + draw(0.0, floor_s / 10))
        return wait

    def pause(self, attempt: int, rng: random.Random | None = None) -> None:
        """Sleep for :meth:`delay` (threads; async callers ``await asyncio.sleep(delay(...))``)."""
        time.sleep(self.delay(attempt, rng))
