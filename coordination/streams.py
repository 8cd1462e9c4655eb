"""Reliable delivery from a Redis Stream with a consumer group (mailboxes, wake-ups).

Entries read but not acknowledged stay pending; when their reader dies, another consumer takes them
over after ``redeliver_after_ms`` of idleness (XAUTOCLAIM), so nothing read is lost with its reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from coordination.replies import read_entries
from coordination.replies import text as _text


@dataclass(frozen=True, slots=True)
class Entry:
    """A stream entry delivered to a consumer; ``deliveries`` > 1 means it was redelivered."""

    id: str
    fields: dict[str, str]
    deliveries: int = 1


def _fields(raw: dict[bytes, bytes] | None) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in (raw or {}).items()}


class StreamGroup:
    """One consumer group on one stream."""

    def __init__(self, client: redis.Redis, stream: str, group: str, *,
                 redeliver_after_ms: int = 30_000) -> None:
        self.redis = client
        self.stream = stream
        self.group = group
        self.redeliver_after_ms = redeliver_after_ms
        self._ready = False

    def ensure(self) -> None:
        """Create the group (and the stream) if missing; starts from the stream's beginning."""
        if self._ready:
            return
        try:
            self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._ready = True

    def read(self, consumer: str, *, count: int = 10, block_ms: int | None = None) -> list[Entry]:
        """Entries for ``consumer``: first its own unacked ones, then abandoned ones, then new ones."""
        self.ensure()
        own = self._read(consumer, "0", count, None)
        if own:
            return own
        stolen = self.reclaim(consumer, count=count)
        if stolen:
            return stolen
        return self._read(consumer, ">", count, block_ms)

    def reclaim(self, consumer: str, *, count: int = 10) -> list[Entry]:
        """Take over entries idle longer than ``redeliver_after_ms`` (their reader is presumed dead)."""
        self.ensure()
        reply = self.redis.xautoclaim(self.stream, self.group, consumer, self.redeliver_after_ms,
                                      start_id="0-0", count=count)
        entries = reply[1] if reply else []
        return [Entry(_text(eid), _fields(raw), deliveries=2) for eid, raw in entries if raw is not None]

    def _read(self, consumer: str, start: str, count: int, block_ms: int | None) -> list[Entry]:
        try:
            reply = self.redis.xreadgroup(self.group, consumer, {self.stream: start}, count=count,
                                          block=block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._ready = False  # the stream was deleted under us (run cleanup); recreate
            self.ensure()
            return []
        out: list[Entry] = []
        for _stream, entries in read_entries(reply):
            for eid, raw in entries:
                if raw:  # a pending entry whose data was trimmed away comes back empty
                    out.append(Entry(_text(eid), _fields(raw), deliveries=1 if start == ">" else 2))
                elif start == "0":
                    self.ack(_text(eid))
        return out

    def ack(self, *entry_ids: str) -> int:
        """Acknowledge entries so they are never delivered again."""
        if not entry_ids:
            return 0
        return int(self.redis.xack(self.stream, self.group, *entry_ids))

    def pending_count(self) -> int:
        self.ensure()
        summary = self.redis.xpending(self.stream, self.group)
        return int(summary["pending"]) if summary else 0
