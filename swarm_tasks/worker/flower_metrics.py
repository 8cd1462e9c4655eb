"""Queue depth as the autoscaler needs it: ready *and* reserved messages per Celery queue.

A Celery worker on the Redis transport takes a message off the queue's list as soon as it reserves
it (prefetched, waiting for its countdown, or running under ``acks_late``); from then until the ack
it lives in the transport's ``unacked`` hash. A scaler that reads only ``LLEN <queue>`` therefore
sees a busy fleet as idle and scales it in. This module counts both, per queue, straight from the
broker (no event stream, so a restarted Flower is right at once), and exports them on Flower's
``/metrics`` as ``swarm_queue_messages{queue="agents",state="ready"|"reserved"}``.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from kombu.transport.redis import PRIORITY_STEPS, Channel
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, CollectorRegistry

from coordination.connection import client_options
from swarm_tasks.settings import QUEUES, SwarmSettings

log = logging.getLogger("swarm_tasks.worker.flower_metrics")

METRIC = "swarm_queue_messages"
REDIS_SCHEMES = ("redis", "rediss", "unix")
_SCAN_BATCH = 1000
_SCRAPE_TIMEOUT_S = 5.0  # a scrape must fail fast rather than hang Flower's event loop


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Messages of one queue: waiting in its list, and reserved by some worker but not yet acked."""

    ready: int = 0
    reserved: int = 0

    @property
    def total(self) -> int:
        return self.ready + self.reserved


def _lists_of(queue: str) -> list[str]:
    # A message sent with a priority goes to a sibling list "<queue>\x06\x16<step>" (kombu's layout).
    return [queue] + [f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS if step]


def _routing_key(entry: bytes) -> str | None:
    """The queue of an ``unacked`` entry, stored as JSON ``[message, exchange, routing_key]``."""
    # Only the tail is read: the message itself can be kilobytes and a scrape may see thousands.
    tail = entry[entry.rfind(b",") + 1:].strip()
    if tail.endswith(b"]"):
        try:
            key = json.loads(tail[:-1])
        except ValueError:
            key = None
        if isinstance(key, str):
            return key
    try:
        decoded = json.loads(entry)
    except ValueError:
        return None
    return decoded[-1] if isinstance(decoded, list) and decoded and isinstance(decoded[-1], str) else None


def queue_depths(client: redis.Redis, queues: Sequence[str] = QUEUES) -> dict[str, QueueDepth]:
    """Ready and reserved messages of each queue, read from the broker now."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for name in _lists_of(queue):
            pipe.llen(name)
    lengths = iter(pipe.execute())
    ready = {queue: sum(next(lengths) for _ in _lists_of(queue)) for queue in queues}
    reserved = dict.fromkeys(queues, 0)
    # HSCAN in batches: Redis never blocks on one big command, however many messages are in flight.
    for _tag, entry in client.hscan_iter(Channel.unacked_key, count=_SCAN_BATCH):
        key = _routing_key(entry)
        if key in reserved:
            reserved[key] += 1
    return {queue: QueueDepth(ready[queue], reserved[queue]) for queue in queues}


class QueueDepthCollector:
    """A Prometheus collector that reads :func:`queue_depths` on every scrape."""

    def __init__(self, client_factory: Callable[[], redis.Redis], queues: Sequence[str] = QUEUES) -> None:
        self.client_factory = client_factory
        self.queues = tuple(queues)
        self._client: redis.Redis | None = None

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Declared so registering does not call collect() (and reach Redis) at import time.
        return [self._family()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        # A Redis error propagates and fails the scrape: reporting 0 instead would tell an
        # autoscaler that a busy fleet is idle.
        if self._client is None:
            self._client = self.client_factory()
        family = self._family()
        for queue, depth in queue_depths(self._client, self.queues).items():
            family.add_metric([queue, "ready"], depth.ready)
            family.add_metric([queue, "reserved"], depth.reserved)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(METRIC, "Celery messages per queue: ready (in the list) or reserved "
                                 "(taken by a worker: prefetched, waiting for a countdown, or running; not acked yet)",
                                 labels=["queue", "state"])


def scrape_client(settings: SwarmSettings) -> redis.Redis:
    """A client on the configured broker with short timeouts, for scrapes."""
    if settings.redis_url is None:
        raise ValueError("queue metrics need SWARM_REDIS_URL (the broker the workers use)")
    url = settings.celery_broker_url(settings.redis_url.get_secret_value())
    options = client_options(settings, url)
    options.update(socket_timeout=min(_SCRAPE_TIMEOUT_S, settings.redis_socket_timeout_s),
                   socket_connect_timeout=min(_SCRAPE_TIMEOUT_S, settings.redis_connect_timeout_s))
    return redis.Redis.from_url(url, **options)


_installed: weakref.WeakKeyDictionary[CollectorRegistry, QueueDepthCollector] = weakref.WeakKeyDictionary()


def install(settings: SwarmSettings, registry: CollectorRegistry = REGISTRY) -> QueueDepthCollector | None:
    """Register the collector once per registry (Flower serves the default registry on /metrics)."""
    collector = _installed.get(registry)
    if settings.broker_url is not None and urlsplit(settings.broker_url.get_secret_value()).scheme not in REDIS_SCHEMES:
        # RabbitMQ counts ready and unacknowledged messages itself (its Prometheus plugin, KEDA's rabbitmq
        # trigger): nothing to read here, and a gauge of zeros would tell an autoscaler the fleet is idle.
        log.info("queue depth metrics are not exported: the broker is not Redis (read them from RabbitMQ)")
        return None
    if collector is None:
        collector = QueueDepthCollector(lambda: scrape_client(settings))
        registry.register(collector)  # type: ignore[arg-type]
        _installed[registry] = collector
    return collector


__all__ = ["METRIC", "QueueDepth", "QueueDepthCollector", "install", "queue_depths", "scrape_client"]
