"""Two changes to kombu's Redis transport: a workaround for a bug that stops workers during a broker
outage, and one client per connection pool instead of one per command.

**The closed channel.**

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

**One client per pool.** kombu builds a new ``redis.Redis`` around its channel's connection pool for every
synchronous command batch (``conn_or_acquire``: each publish, ack, unacked-index update), ~50 us of
constructor each (redis-py 8) and several per task: a worker's CPU per no-op task went from 1.21 ms to
0.98 ms (3,000 ``swarm.ping`` on 16 threads). A client over a pool is thread-safe (each command
checks a connection out of the pool), so :func:`reuse_pool_clients` keeps one per channel and pool.
"""

from __future__ import annotations

from typing import Any

_GUARD = "_swarm_guarded"
_CLIENT = "_swarm_pool_client"


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


def reuse_pool_clients() -> None:
    """Make kombu's Redis channel build its synchronous client once per connection pool."""
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.Channel._create_client
    if getattr(original, _GUARD, False):
        return

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:  # the event loop's own client is already made once (Channel.client)
            return original(self, asynchronous=True)
        pool = self.pool  # a new one after the channel is reset: a new client with it
        made = self.__dict__.get(_CLIENT)
        if made is None or made[0] is not pool:
            made = (pool, original(self, asynchronous=False))
            self.__dict__[_CLIENT] = made
        return made[1]

    setattr(_create_client, _GUARD, True)
    kombu_redis.Channel._create_client = _create_client  # type: ignore[method-assign]  # the patch itself
