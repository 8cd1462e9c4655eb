"""Task events (what Flower shows of the workers), published without ever stalling a worker of threads.

Celery 5.7.0 registers the worker's event connection with its event loop, so that broker heartbeats on
it are read there. With the thread pool, a pool thread whose finished task fills the task-event buffer
(24 events) publishes the batch itself and, with RabbitMQ's publisher confirms, waits on that same
socket for the broker's ack. When the event loop read the ack first, the thread waited on for the next
frame (a heartbeat, a minute or more away) holding the dispatcher's lock; the loop's own flush then
waited for that lock, and no task was taken meanwhile: 100 to 350 of 1,000 agents ended in 150 s
(tests/runtime/test_broker.py), the README's RabbitMQ block hung for three minutes in CI.

:class:`EventsFromTheLoop` runs after Celery's ``Events`` step, at every (re)connection, and changes two
things of the dispatcher it made:

* only the event loop publishes: pool threads append their events to the buffer and Celery already asks
  the loop to flush it on its next turn (``hub.call_soon``), so one thread does all reads and writes on
  that connection, as py-amqp requires of a connection;
* events go out without publisher confirms: they are monitoring, not accepted work (steps still go out
  confirmed, on other connections), and a confirm would cost the event loop a broker round trip per batch.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import bootsteps


class EventsFromTheLoop(bootsteps.StartStopStep):  # type: ignore[misc]  # Celery ships no type information
    """A consumer step: the event dispatcher publishes from the event loop only, unconfirmed."""

    requires = ("celery.worker.consumer.events:Events",)

    def start(self, c: Any) -> None:
        dispatcher = c.event_dispatcher
        if dispatcher is None or c.hub is None:  # no events, or no event loop (eventlet/gevent): as Celery does
            return
        dispatcher.buffer_limit = sys.maxsize
        unconfirmed(dispatcher)


def unconfirmed(dispatcher: Any) -> None:
    """Turn publisher confirms off for ``dispatcher``'s connection (py-amqp; other transports have none):
    its current channel, and any channel it opens later."""
    connection = getattr(dispatcher.connection, "connection", None)  # kombu's -> the transport's
    if connection is None or not getattr(connection, "confirm_publish", False):
        return
    connection.confirm_publish = False  # read when a channel is made
    producer = getattr(dispatcher, "producer", None)
    channel = getattr(producer, "channel", None)
    if channel is not None and hasattr(channel, "_basic_publish"):
        channel.basic_publish = channel._basic_publish  # what py-amqp's Channel is without confirms
