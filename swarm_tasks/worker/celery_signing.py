"""Signed task messages in Celery (with ``SWARM_TASK_SIGNING_KEY``; the HMACs are in :mod:`swarm_tasks.signing`).

* The ``swarm-signed`` serializer (:func:`register_signed_serializer`): bodies in an HMAC envelope, the
  only content workers accept.
* Publishing (``before_task_publish``) adds the ``swarm_sig`` header binding the body to the task
  name, id, queue and an expiry.
* Workers run :class:`SignedConsumer` (``worker_consumer``): a message is refused before Celery looks
  at it unless its signature holds, it names a queue this worker consumes and it has not expired; and a
  message whose id already ran to its end (a key with a TTL, ``Keys.task_done``, written at
  ``task_postrun``) is refused as a replay. A message redelivered because its worker died is not a
  replay: it never ran to its end.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import redis
from celery import Celery, signals
from celery.worker.consumer import Consumer
from kombu.serialization import registry
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

from swarm_tasks.errors import MessageSignatureError
from swarm_tasks.signing import SIGNATURE_HEADER, MessageSigner, checked_key, sign, verify

log = logging.getLogger("swarm_tasks.signing")

SIGNED_SERIALIZER = "swarm-signed"
SIGNED_CONTENT_TYPE = "application/x-swarm-signed+json"
_DONE_MARGIN_S = 300  # how much longer than a message's expiry its "ran" mark is kept (clock skew)


def register_signed_serializer(key: str | bytes) -> None:
    """Register (or re-key) the ``swarm-signed`` kombu serializer. Kombu's registry is per process,
    so the last key registered is the one every app in the process signs and verifies with."""
    raw = checked_key(key)

    def encode(obj: Any) -> str:
        return sign(kombu_dumps(obj), raw)

    def decode(data: str | bytes) -> Any:
        return kombu_loads(verify(data, raw))

    registry.register(SIGNED_SERIALIZER, encode, decode, content_type=SIGNED_CONTENT_TYPE, content_encoding="utf-8")


_signer: MessageSigner | None = None


def install(key: str | bytes, *, key_prefix: str = "swarm", ttl_s: float = 86_400.0) -> MessageSigner:
    """Sign every task message this process publishes from now on, and let its workers check them."""
    global _signer  # noqa: PLW0603 - one signer per process, like kombu's serializer registry
    register_signed_serializer(key)
    _signer = MessageSigner.of(key, key_prefix=key_prefix, ttl_s=ttl_s)
    return _signer


def active_signer() -> MessageSigner | None:
    return _signer


def uninstall() -> None:
    """Stop signing in this process (an app configured without a key after one with it)."""
    global _signer  # noqa: PLW0603 - see install()
    _signer = None


@signals.before_task_publish.connect
def _seal(sender: str | None = None, body: Any = None, routing_key: str | None = None,
          headers: dict[str, Any] | None = None, **_kwargs: object) -> None:
    signer = _signer
    if signer is None or headers is None or "task" not in headers:
        return
    # The serializer runs kombu_dumps on this same body next: the MAC covers exactly what is sent.
    headers[SIGNATURE_HEADER] = signer.seal(task=str(headers["task"]), task_id=str(headers.get("id")),
                                            queue=routing_key or "", body=kombu_dumps(body),
                                            eta=headers.get("eta"))


# -- what ran: the replay guard ----------------------------------------------------------------------

class ReplayGuard:
    """Remembers message ids that ran to their end, in the broker's Redis, until they expire."""

    def __init__(self, client_factory: Callable[[], redis.Redis]) -> None:
        self._factory = client_factory
        self._client: redis.Redis | None = None
        self._guard = threading.Lock()  # one client per process and app, made once

    @property
    def client(self) -> redis.Redis:
        with self._guard:
            if self._client is None:
                self._client = self._factory()
            return self._client

    def ran(self, signer: MessageSigner, task_id: str) -> bool:
        return bool(self.client.exists(signer.done_key(task_id)))

    def mark(self, signer: MessageSigner, task_id: str, expires: float) -> None:
        ttl_ms = int((max(expires - time.time(), 0.0) + _DONE_MARGIN_S) * 1000)
        self.client.set(signer.done_key(task_id), b"1", px=ttl_ms)


_guards: weakref.WeakKeyDictionary[Celery, ReplayGuard] = weakref.WeakKeyDictionary()
_guards_lock = threading.Lock()


def replay_guard(app: Celery) -> ReplayGuard:
    """The guard of ``app`` in this process, on a client of its broker (TLS options included)."""
    with _guards_lock:
        guard = _guards.get(app)
        if guard is None:
            url = str(app.conf.broker_url)
            tls = dict(app.conf.broker_use_ssl or {}) if url.startswith("rediss://") else {}
            guard = _guards[app] = ReplayGuard(lambda: redis.Redis.from_url(url, socket_timeout=30, **tls))
        return guard


@signals.task_postrun.connect
def _remember_done(sender: Any = None, task_id: str | None = None, state: str | None = None,
                   **_kwargs: object) -> None:
    signer = _signer
    request = getattr(sender, "request", None)
    seal = getattr(request, SIGNATURE_HEADER, None) or (getattr(request, "headers", None) or {}).get(SIGNATURE_HEADER)
    if signer is None or not task_id or state == "RETRY" or not isinstance(seal, Mapping):
        return  # a retry re-sends the same id: it has not ended
    try:
        replay_guard(sender.app).mark(signer, task_id, float(seal.get("exp", 0.0)))
    except redis.RedisError as exc:  # the task ran; only its replay protection is weaker
        log.warning("could not record that task message %s ran: %s", task_id, exc)


class SignedConsumer(Consumer):
    """Celery's consumer, refusing any task message whose signature does not hold (see the module)."""

    def create_task_handler(self, promise: Any = None) -> Callable[[Any], Any]:
        handle = super().create_task_handler() if promise is None else super().create_task_handler(promise)

        def on_task_received(message: Any) -> Any:
            signer = _signer
            if signer is None:
                return handle(message)
            try:
                queues = {q.name for q in (self.task_consumer.queues if self.task_consumer else [])}
                task_id = signer.check(message.headers or {}, message.body, queues=queues,
                                       routing_key=(message.delivery_info or {}).get("routing_key"))
                if replay_guard(self.app).ran(signer, task_id):
                    raise MessageSignatureError(f"message {task_id} already ran: a replay")
            except (MessageSignatureError, redis.RedisError) as exc:
                headers = message.headers or {}
                log.error("refused task message %s (%s): %s", headers.get("id"), headers.get("task"), exc)
                message.reject_log_error(log, self.connection_errors)
                signals.task_rejected.send(sender=self, message=message, exc=exc)
                return None
            return handle(message)

        return on_task_received


__all__ = ["SIGNED_CONTENT_TYPE", "SIGNED_SERIALIZER", "ReplayGuard", "SignedConsumer", "active_signer", "install",
           "register_signed_serializer", "replay_guard", "uninstall"]
