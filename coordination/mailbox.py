"""Per-agent mailboxes on Redis Streams: send, blocking receive, ack, request/reply.

Each agent's mailbox is a stream read through a consumer group, so a message read by a worker that
then dies is redelivered to the next reader of that mailbox (see :mod:`coordination.streams`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from coordination import codec
from coordination.errors import MalformedRecord, ReplyTimeout
from coordination.events import EventLog
from coordination.ids import new_id
from coordination.keys import Keys, check_id
from coordination.replies import read_entries
from coordination.streams import StreamGroup

_GROUP = "owner"
_REPLY_TTL_S = 3600


class MessageKind(StrEnum):
    """Plain message, a request awaiting a reply, or the reply."""

    MESSAGE = "message"
    REQUEST = "request"
    REPLY = "reply"


class Message(BaseModel):
    """One message between agents."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    sender: str
    recipient: str
    kind: MessageKind = MessageKind.MESSAGE
    body: str
    correlation_id: str | None = None
    reply_to_mailbox: bool = False
    headers: dict[str, str] = Field(default_factory=dict)
    sent_at: float

    @field_validator("sender", "recipient")
    @classmethod
    def _ident(cls, value: str) -> str:
        return check_id(value, "agent id")


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message handed to a reader; ack it once handled or it will be delivered again."""

    entry_id: str
    message: Message
    deliveries: int


class Mailboxes:
    """All mailboxes of one run."""

    def __init__(self, client: redis.Redis, keys: Keys, *, max_message_bytes: int = 262_144,
                 maxlen: int = 10_000, redeliver_after_ms: int = 30_000, events: EventLog | None = None) -> None:
        self.redis = client
        self.keys = keys
        self.max_message_bytes = max_message_bytes
        self.maxlen = maxlen
        self.redeliver_after_ms = redeliver_after_ms
        self.events = events
        self._groups: dict[str, StreamGroup] = {}

    def group(self, agent: str) -> StreamGroup:
        if agent not in self._groups:
            self._groups[agent] = StreamGroup(self.redis, self.keys.mailbox(agent), _GROUP,
                                              redeliver_after_ms=self.redeliver_after_ms)
        return self._groups[agent]

    def send(self, sender: str, recipient: str, body: str, *, kind: MessageKind = MessageKind.MESSAGE,
             correlation_id: str | None = None, reply_to_mailbox: bool = False,
             headers: dict[str, str] | None = None) -> Message:
        """Put a message in ``recipient``'s mailbox."""
        message = codec.build(Message, id=new_id("m"), sender=sender, recipient=recipient, kind=kind, body=body,
                              correlation_id=correlation_id, reply_to_mailbox=reply_to_mailbox,
                              headers=headers or {}, sent_at=time.time())
        data = codec.encode(message, limit=self.max_message_bytes, what=f"message to {recipient}")
        self.group(recipient).ensure()
        self.redis.xadd(self.keys.mailbox(recipient), {"m": data}, maxlen=self.maxlen, approximate=True)
        if self.events is not None:
            self.events.emit("message.sent", message.id, {"from": sender, "to": recipient, "kind": kind.value})
        return message

    def receive(self, agent: str, *, consumer: str | None = None, count: int = 10,
                timeout_s: float | None = None) -> list[Delivery]:
        """Messages for ``agent``, waiting up to ``timeout_s`` (None: do not wait) for one to arrive."""
        block = None if timeout_s is None else max(1, int(timeout_s * 1000))
        entries = self.group(agent).read(consumer or agent, count=count, block_ms=block)
        out: list[Delivery] = []
        for entry in entries:
            raw = entry.fields.get("m", "")
            try:
                message = Message.model_validate_json(raw)
            except ValidationError:
                # Not ours to interpret: acknowledge so it cannot wedge the mailbox, and say so.
                self.group(agent).ack(entry.id)
                raise MalformedRecord(self.keys.mailbox(agent), f"entry {entry.id} is not a message") from None
            out.append(Delivery(entry.id, message, entry.deliveries))
        return out

    def ack(self, agent: str, *deliveries: Delivery) -> int:
        """Mark messages handled so they are never delivered again."""
        return self.group(agent).ack(*(d.entry_id for d in deliveries))

    def pending(self, agent: str) -> int:
        """Messages delivered to a reader of ``agent`` but not acknowledged."""
        return self.group(agent).pending_count()

    def backlog(self, agent: str) -> int:
        """Messages in ``agent``'s mailbox not yet delivered to any reader."""
        info = self.redis.xinfo_groups(self.keys.mailbox(agent)) if self.redis.exists(
            self.keys.mailbox(agent)) else []
        for group in info:
            if group.get("name") in (_GROUP, _GROUP.encode()):
                lag = group.get("lag")
                return int(lag) if lag is not None else 0
        return 0

    # -- request / reply -----------------------------------------------------------------------
    def request(self, sender: str, recipient: str, body: str, *, timeout_s: float = 30.0,
                headers: dict[str, str] | None = None) -> Message:
        """Send a request and wait for its reply (matched by correlation id); :class:`ReplyTimeout`."""
        sent = self.send(sender, recipient, body, kind=MessageKind.REQUEST, correlation_id=new_id("c"),
                         headers=headers)
        return self.wait_reply(sent, timeout_s=timeout_s)

    def wait_reply(self, request: Message, *, timeout_s: float) -> Message:
        assert request.correlation_id is not None
        key = self.keys.reply(request.correlation_id)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            reply = self.redis.xread({key: "0"}, count=1, block=max(1, int(left * 1000)))
            for _stream, entries in read_entries(reply):
                for _eid, fields in entries:
                    self.redis.delete(key)
                    return Message.model_validate_json(fields[b"m"])
        raise ReplyTimeout(f"no reply from {request.recipient} to request {request.id} within {timeout_s}s")

    def reply(self, request: Message, sender: str, body: str, *, headers: dict[str, str] | None = None) -> Message:
        """Answer ``request``: to the waiting requester, and to its mailbox if it asked for that."""
        if request.correlation_id is None:
            raise ValueError(f"message {request.id} is not a request (no correlation id)")
        message = codec.build(Message, id=new_id("m"), sender=sender, recipient=request.sender,
                              kind=MessageKind.REPLY, body=body, correlation_id=request.correlation_id,
                              headers=headers or {}, sent_at=time.time())
        data = codec.encode(message, limit=self.max_message_bytes, what=f"reply to {request.sender}")
        key = self.keys.reply(request.correlation_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(key, {"m": data}, maxlen=10)
        pipe.expire(key, _REPLY_TTL_S)
        pipe.execute()
        if request.reply_to_mailbox:
            self.redis.xadd(self.keys.mailbox(request.sender), {"m": data}, maxlen=self.maxlen, approximate=True)
        return message
