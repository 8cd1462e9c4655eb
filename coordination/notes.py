"""Notes and the progress document: the memory that outlives an agent's context window.

Notes are append-only streams per scope (the run, or one agent). The progress document is one
versioned record per run, changed only by compare-and-set through :meth:`Progress.update`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from coordination import codec
from coordination.errors import PayloadTooLarge
from coordination.keys import Keys
from coordination.replies import range_entries
from coordination.store import RecordStore, Versioned, Write


@dataclass(frozen=True, slots=True)
class Note:
    """One note: who wrote it, what kind, the text and optional structured data."""

    id: str
    scope: str
    kind: str
    author: str
    text: str
    data: JsonValue
    ts: float


class Notes:
    """Append-only notes of one run, per scope (``run`` or an agent id)."""

    RUN = "run"

    def __init__(self, client: redis.Redis, keys: Keys, *, maxlen: int = 5000, max_bytes: int = 65_536) -> None:
        self.redis = client
        self.keys = keys
        self.maxlen = maxlen
        self.max_bytes = max_bytes

    def append(self, scope: str, text: str, *, kind: str = "note", author: str = "", data: JsonValue = None) -> str:
        """Add a note; returns its id."""
        encoded = json.dumps(data, separators=(",", ":"))
        size = len(text.encode()) + len(encoded)
        if size > self.max_bytes:
            raise PayloadTooLarge(f"note in {scope}", size, self.max_bytes)
        entry = self.redis.xadd(self.keys.notes(scope), {
            "kind": kind, "author": author, "text": text, "data": encoded, "ts": f"{time.time():.6f}"},
            maxlen=self.maxlen, approximate=True)
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def read(self, scope: str, *, after: str | None = None, limit: int = 100) -> list[Note]:
        """Notes oldest first, strictly after the note id ``after``."""
        start = f"({after}" if after else "-"
        entries = range_entries(self.redis.xrange(self.keys.notes(scope), start, "+", count=limit))
        return [self._note(scope, eid, f) for eid, f in entries]

    def latest(self, scope: str, *, kind: str | None = None, limit: int = 1) -> list[Note]:
        """The newest notes (of ``kind`` if given), newest first."""
        found: list[Note] = []
        end = "+"
        while len(found) < limit:
            batch = range_entries(self.redis.xrevrange(self.keys.notes(scope), end, "-", count=200))
            if not batch:
                break
            for eid, fields in batch:
                note = self._note(scope, eid, fields)
                if kind is None or note.kind == kind:
                    found.append(note)
                    if len(found) == limit:
                        break
            last = batch[-1][0].decode()
            if len(batch) < 200:
                break
            end = f"({last}"
        return found

    @staticmethod
    def _note(scope: str, eid: bytes, fields: dict[bytes, bytes]) -> Note:
        f = {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
        try:
            data: JsonValue = json.loads(f.get("data", "null"))
        except json.JSONDecodeError:
            data = None
        return Note(eid.decode(), scope, f.get("kind", "note"), f.get("author", ""), f.get("text", ""), data,
                    float(f.get("ts", "0") or 0))


class ProgressDoc(BaseModel):
    """A run's progress: a summary and named sections that any agent may revise."""

    model_config = ConfigDict(extra="forbid")

    summary: str = ""
    sections: dict[str, str] = Field(default_factory=dict)
    updated_by: str = ""
    updated_at: float = 0.0


class Progress:
    """The run's progress document, revised by compare-and-set."""

    def __init__(self, records: RecordStore, keys: Keys) -> None:
        self.records = records
        self.key = keys.progress()

    def read(self) -> tuple[ProgressDoc, int]:
        """The document and its version (an empty document at version 0 if never written)."""
        rec = self.records.get(self.key)
        if rec is None:
            return ProgressDoc(), 0
        return codec.decode(ProgressDoc, rec.data, key=self.key), rec.version

    def update(self, fn: Callable[[ProgressDoc], ProgressDoc], *, author: str) -> tuple[ProgressDoc, int]:
        """Apply ``fn`` to the current document and write it by compare-and-set (retried on conflict)."""
        result: list[ProgressDoc] = []

        def write(current: Versioned | None) -> Write:
            doc = ProgressDoc() if current is None else codec.decode(ProgressDoc, current.data, key=self.key)
            new = fn(doc.model_copy(deep=True)).model_copy(update={"updated_by": author,
                                                                    "updated_at": time.time()})
            result[:] = [new]
            return Write(codec.encode(new, limit=self.records.max_record_bytes, what="progress document"))

        version = self.records.update(self.key, write)
        assert version is not None
        return result[0], version
