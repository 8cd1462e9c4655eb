"""Signing with ``SWARM_TASK_SIGNING_KEY``, the HMACs themselves (no Celery here): a body's envelope,
a task message bound to what it is, and the records workers act on bound to who submitted them. What it
protects against is said in the README's trust model; :mod:`swarm_tasks.worker.celery_signing` puts the
message part into Celery.

* Envelope: the body of a task message with an HMAC-SHA256 of it (the ``swarm-signed`` serializer).
* :class:`MessageSigner`: a ``swarm_sig`` header with an HMAC over the task name, the message id, the
  queue, an expiry (sending time + ``SWARM_TASK_SIGNATURE_TTL_S``, after any countdown) and the body. A
  captured body re-sent under another task name or id, to another queue, or after its expiry, does not
  match.
* :class:`RecordSigner`: the submitter signs a run's immutable part (its job spec, limits, models) and
  every agent spec it stores; a worker verifies them before acting (a build's check, codemod and remote
  come from the run's spec; hooks and tools from agent specs). Write access to Redis alone cannot make
  a worker run a command of its choosing.

One key, three uses: each derives its own key, so a MAC made for one never passes as another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import JsonValue

from coordination.errors import ConfigurationError
from coordination.keys import GLOBAL_SCOPE, Keys
from swarm_tasks.errors import MessageSignatureError, RecordSignatureError

SIGNATURE_HEADER = "swarm_sig"
MIN_SIGNING_KEY_CHARS = 16
_ALG = "HMAC-SHA256"
_VERSION = 1
_ENVELOPE, _MESSAGE, _RECORD = b"swarm-tasks envelope v1", b"swarm-tasks task message v1", b"swarm-tasks record v1"


def _key_bytes(key: str | bytes) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else key


def _derive(key: bytes, purpose: bytes) -> bytes:
    return hmac.new(key, purpose, hashlib.sha256).digest()


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def checked_key(key: str | bytes) -> bytes:
    raw = _key_bytes(key)
    if len(raw) < MIN_SIGNING_KEY_CHARS:
        raise ConfigurationError(
            f"SWARM_TASK_SIGNING_KEY is too short: use at least {MIN_SIGNING_KEY_CHARS} random characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return raw


# -- the envelope of a body ------------------------------------------------------------------------

def sign(body: str, key: str | bytes) -> str:
    """The envelope of a JSON ``body``: ``{"alg", "sig", "body"}`` with sig = HMAC-SHA256(key, body)."""
    return json.dumps({"alg": _ALG, "sig": _mac(_derive(_key_bytes(key), _ENVELOPE), body), "body": body})


def open_envelope(envelope: str | bytes) -> dict[str, Any]:
    try:
        outer = json.loads(envelope.decode("utf-8") if isinstance(envelope, bytes) else envelope)
    except ValueError as exc:  # UnicodeDecodeError too
        raise MessageSignatureError("not a signed message (not JSON)") from exc
    if not (isinstance(outer, dict) and outer.get("alg") == _ALG and isinstance(outer.get("sig"), str)
            and isinstance(outer.get("body"), str)):
        raise MessageSignatureError("not a signed message (no HMAC-SHA256 envelope)")
    return outer


def verify(envelope: str | bytes, key: str | bytes) -> str:
    """The JSON body of a signed envelope; raises :class:`MessageSignatureError` unless the HMAC matches."""
    outer = open_envelope(envelope)
    if not hmac.compare_digest(outer["sig"], _mac(_derive(_key_bytes(key), _ENVELOPE), outer["body"])):
        raise MessageSignatureError("message signature does not match: tampered, or signed with another key")
    return str(outer["body"])


# -- task messages bound to their name, id, queue and expiry ----------------------------------------

def _eta_epoch(eta: object) -> float:
    if not eta:
        return 0.0
    try:
        return datetime.fromisoformat(str(eta)).timestamp()
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class MessageSigner:
    """Seals task messages at publishing and checks them at receipt (one per process, see :func:`install`)."""

    key: bytes
    key_prefix: str
    ttl_s: float

    @classmethod
    def of(cls, key: str | bytes, *, key_prefix: str = "swarm", ttl_s: float = 86_400.0) -> MessageSigner:
        return cls(_derive(checked_key(key), _MESSAGE), key_prefix, ttl_s)

    def _mac(self, task: str, task_id: str, queue: str, expires: float, body: str) -> str:
        return _mac(self.key, json.dumps([_VERSION, task, task_id, queue, expires, body], separators=(",", ":")))

    def seal(self, *, task: str, task_id: str, queue: str, body: str, eta: object = None,
             now: float | None = None) -> dict[str, object]:
        """The ``swarm_sig`` header of a message."""
        start = max(now if now is not None else time.time(), _eta_epoch(eta))
        expires = round(start + self.ttl_s, 3)
        return {"v": _VERSION, "queue": queue, "exp": expires,
                "mac": self._mac(task, task_id, queue, expires, body)}

    def check(self, headers: Mapping[str, Any], raw_body: str | bytes, *, queues: set[str], routing_key: str | None,
              now: float | None = None) -> str:
        """The message's task id if its signature holds for what it says it is, where it was delivered;
        :class:`MessageSignatureError` saying why not otherwise."""
        seal = headers.get(SIGNATURE_HEADER)
        task, task_id = headers.get("task"), headers.get("id")
        if not isinstance(seal, Mapping) or seal.get("v") != _VERSION:
            raise MessageSignatureError("message has no signature header: it was not sent by a process with "
                                        "this deployment's SWARM_TASK_SIGNING_KEY")
        if not isinstance(task, str) or not isinstance(task_id, str):
            raise MessageSignatureError("message names no task or id")
        queue, expires = seal.get("queue"), seal.get("exp")
        if not isinstance(queue, str) or not isinstance(expires, (int, float)) or not isinstance(seal.get("mac"), str):
            raise MessageSignatureError("malformed signature header")
        body = str(open_envelope(raw_body)["body"])
        if not hmac.compare_digest(str(seal["mac"]), self._mac(task, task_id, queue, float(expires), body)):
            raise MessageSignatureError("signature does not match this task name, id, queue and body: tampered, "
                                        "re-sent under another name or id, or signed with another key")
        if queue not in queues or (routing_key is not None and routing_key != queue):
            raise MessageSignatureError(f"message was signed for queue {queue!r}, not for this worker's "
                                        f"{sorted(queues)} (delivered as {routing_key!r})")
        if float(expires) < (now if now is not None else time.time()):
            raise MessageSignatureError("message signature has expired (SWARM_TASK_SIGNATURE_TTL_S)")
        return task_id

    def done_key(self, task_id: str) -> str:
        return Keys(self.key_prefix, GLOBAL_SCOPE).task_done(task_id)


# -- records workers act on ------------------------------------------------------------------------

class RecordSigner:
    """Signs and verifies records by kind and id: the MAC of one record does not pass for another."""

    def __init__(self, key: str | bytes) -> None:
        self.key = _derive(checked_key(key), _RECORD)

    @classmethod
    def from_settings(cls, settings: object) -> RecordSigner | None:
        """The signer of a deployment with ``SWARM_TASK_SIGNING_KEY``, else None (nothing is signed)."""
        value = getattr(settings, "task_signing_key", None)
        secret = value.get_secret_value() if value is not None else ""
        return cls(secret) if secret else None

    def sign(self, kind: str, ident: str, content: JsonValue | bytes) -> str:
        raw = content.decode("utf-8", "surrogateescape") if isinstance(content, bytes) else \
            json.dumps(content, sort_keys=True, separators=(",", ":"))
        return _mac(self.key, json.dumps([_VERSION, kind, ident, raw], separators=(",", ":")))

    def verify(self, kind: str, ident: str, content: JsonValue | bytes, signature: str | None) -> None:
        if not signature:
            raise RecordSignatureError(
                f"{kind} {ident!r} is not signed, and this deployment signs what workers act on "
                "(SWARM_TASK_SIGNING_KEY): it was written to Redis by something without the key; refusing to act on it")
        if not hmac.compare_digest(signature, self.sign(kind, ident, content)):
            raise RecordSignatureError(
                f"{kind} {ident!r} does not match its signature: it was changed in Redis after it was submitted "
                "(or signed with another SWARM_TASK_SIGNING_KEY); refusing to act on it")


__all__ = ["SIGNATURE_HEADER", "MessageSigner", "RecordSigner", "checked_key", "open_envelope", "sign", "verify"]
