"""A workaround for one kombu bug that stops workers during a broker outage.

When the Redis broker goes away while a worker holds unacknowledged messages (a long agent step),
Celery closes the connection; afterwards kombu still reaches for the closed channel's broker
connection: to restore the unacked messages while closing, and to acknowledge a step that finishes
after the reconnect. The channel's ``connection`` (or its ``client``) is already None there, so
``Channel._connparams`` raises ``AttributeError``, which neither Celery's ``ignore_errors`` nor
``Message.ack_log_error`` expects: the worker logs "Unrecoverable error" and exits (the family of
celery/kombu#582 and #970; kombu 5.7.0).

Measured by tests/reliability/test_faults.py: a 3 s outage during a build stopped every worker.
The guard turns that case into the connection error it is, which kombu and Celery already handle
(log it, reconnect). A message whose ack was lost stays in the broker's unacked set and comes back
after the visibility timeout; agent steps are safe to run twice, and our sweeper re-sends any step
whose turn lease lapsed long before that.
"""

from __future__ import annotations

from typing import Any

_GUARD = "_swarm_guarded"


def guard_closed_channel() -> None:
    """Make kombu's Redis channel raise a connection error, not AttributeError, once it is closed."""
    from kombu.transport import redis as kombu_redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    original = kombu_redis.Channel._connparams
    if getattr(original, _GUARD, False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        connection = getattr(self, "connection", None)
        if connection is None or getattr(connection, "client", None) is None:
            raise RedisConnectionError("the broker channel is closed (its connection was lost)")
        return original(self, asynchronous=asynchronous)

    setattr(_connparams, _GUARD, True)
    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]  # the patch itself
