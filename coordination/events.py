"""The bounded per-run event stream: every state change, for monitoring and the live view."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from pydantic import JsonValue

from coordination.keys import Keys
from coordination.replies import range_entries, read_entries
from coordination.store import VERSION_PLACEHOLDER, Op, xadd


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a run's event stream."""

    id: str
    type: str
    subject: str
    ts: float
    version: int | None
    data: JsonValue

    @classmethod
    def from_entry(cls, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Event:
        get = {k.decode(): v.decode() for k, v in fields.items()}
        raw_version = get.get("version", "")
        try:
            data: JsonValue = json.loads(get.get("data", "null"))
        except json.JSONDecodeError:
            data = get.get("data")
        return cls(
            id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            type=get.get("type", "unknown"),
            subject=get.get("subject", ""),
            ts=float(get.get("ts", "0") or 0),
            version=int(raw_version) if raw_version.isdigit() else None,
            data=data,
        )


class EventLog:
    """Append and read the events of one run."""

    def __init__(self, client: redis.Redis, keys: Keys, *, maxlen: int = 20_000) -> None:
        self.redis = client
        self.keys = keys
        self.maxlen = maxlen

    def op(self, type_: str, subject: str, data: JsonValue = None, *, versioned: bool = True) -> Op:
        """An op that appends this event atomically with a record write (version filled in by Lua)."""
        fields = {"type": type_, "subject": subject, "ts": f"{time.time():.6f}",
                  "data": json.dumps(data, separators=(",", ":"))}
        if versioned:
            fields["version"] = VERSION_PLACEHOLDER
        return xadd(self.keys.events(), fields, self.maxlen)

    def emit(self, type_: str, subject: str, data: JsonValue = None) -> str:
        """Append an event that is not tied to a record write."""
        entry = self.redis.xadd(self.keys.events(), {
            "type": type_, "subject": subject, "ts": f"{time.time():.6f}",
            "data": json.dumps(data, separators=(",", ":"))}, maxlen=self.maxlen, approximate=True)
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def read(self, after: str = "0-0", count: int = 1000) -> list[Event]:
        """Events strictly after the entry id ``after``, oldest first."""
        entries = self.redis.xrange(self.keys.events(), min=f"({after}" if after != "0-0" else "-",
                                    count=count)
        return [Event.from_entry(eid, fields) for eid, fields in range_entries(entries)]

    def follow(self, after: str = "$", block_ms: int = 1000, count: int = 500) -> Iterator[list[Event]]:
        """Yield batches of new events as they arrive (an empty batch when ``block_ms`` passes)."""
        last = after
        while True:
            reply = self.redis.xread({self.keys.events(): last}, block=block_ms, count=count)
            batch: list[Event] = []
            for _stream, entries in read_entries(reply):
                for eid, fields in entries:
                    batch.append(Event.from_entry(eid, fields))
            if batch:
                last = batch[-1].id
            yield batch

    def length(self) -> int:
        return int(self.redis.xlen(self.keys.events()))
