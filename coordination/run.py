"""The shared state of one swarm run, wired from one Redis client and one settings object."""

from __future__ import annotations

import redis

from coordination.board import TaskBoard
from coordination.events import EventLog
from coordination.keys import GLOBAL_SCOPE, Keys
from coordination.mailbox import Mailboxes
from coordination.notes import Notes, Progress
from coordination.registry import Registry
from coordination.settings import CoordinationSettings
from coordination.store import RecordStore, RetryPolicy


def record_store(client: redis.Redis, settings: CoordinationSettings) -> RecordStore:
    """A :class:`RecordStore` with the configured size limit and retry policy."""
    return RecordStore(client, max_record_bytes=settings.max_record_bytes,
                       retry=RetryPolicy(settings.cas_max_attempts, settings.cas_backoff_base_s,
                                         settings.cas_backoff_cap_s))


class RunState:
    """Board, registry, mailboxes, notes, progress and events of one run. Cheap to build."""

    def __init__(self, client: redis.Redis, run_id: str, settings: CoordinationSettings | None = None,
                 *, records: RecordStore | None = None) -> None:
        self.settings = settings or CoordinationSettings()
        self.redis = client
        self.run_id = run_id
        self.keys = Keys(self.settings.key_prefix, run_id)
        self.records = records or record_store(client, self.settings)
        self.events = EventLog(client, self.keys, maxlen=self.settings.event_stream_maxlen)
        self.board = TaskBoard(self.records, self.keys, self.events, lease_s=self.settings.lease_s,
                               max_attempts=self.settings.max_attempts)
        self.registry = Registry(self.records, self.keys, self.events)
        self.mailboxes = Mailboxes(client, self.keys, max_message_bytes=self.settings.max_message_bytes,
                                   events=self.events)
        self.notes = Notes(client, self.keys, maxlen=self.settings.notes_stream_maxlen)
        self.progress = Progress(self.records, self.keys)

    def purge(self) -> int:
        """Delete every key of this run; returns how many were deleted."""
        deleted = 0
        batch: list[bytes] = []
        for key in self.redis.scan_iter(match=self.keys.pattern(), count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(self.redis.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(self.redis.delete(*batch))
        return deleted


def global_registry(client: redis.Redis, settings: CoordinationSettings | None = None) -> Registry:
    """The registry of nodes and workers, shared by every run."""
    settings = settings or CoordinationSettings()
    keys = Keys(settings.key_prefix, GLOBAL_SCOPE)
    records = record_store(client, settings)
    return Registry(records, keys, EventLog(client, keys, maxlen=settings.event_stream_maxlen))
