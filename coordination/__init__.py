"""Shared coordination state of a swarm in Redis: versioned records written by compare-and-set.

This package knows nothing of Celery or LLMs. Start from :func:`connect` and :class:`RunState`.
"""

from coordination.board import TaskBoard, Wakeup
from coordination.connection import RedisHandle, connect, redact_url
from coordination.embedded import EmbeddedRedis
from coordination.errors import (
    AlreadyExists,
    ConfigurationError,
    ConflictRetriesExhausted,
    CoordinationError,
    CrossSlotWrite,
    EmbeddedRedisError,
    InvalidIdentifier,
    InvalidRecord,
    InvalidTransition,
    LeaseLost,
    LimitReached,
    MalformedRecord,
    NotFound,
    PayloadTooLarge,
    RedisUnreachable,
    ReplyTimeout,
    VersionConflict,
)
from coordination.events import Event, EventLog
from coordination.keys import Keys
from coordination.mailbox import Delivery, Mailboxes, Message, MessageKind
from coordination.notes import Note, Notes, Progress, ProgressDoc
from coordination.registry import Kind, Registration, Registry
from coordination.run import RunState, global_registry, record_store
from coordination.settings import CoordinationSettings
from coordination.store import Limit, RecordStore, RetryPolicy, Versioned, Write
from coordination.tasks import Lease, SweepReport, Task, TaskStatus

__all__ = [
    "AlreadyExists",
    "ConfigurationError",
    "ConflictRetriesExhausted",
    "CoordinationError",
    "CoordinationSettings",
    "CrossSlotWrite",
    "Delivery",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "Event",
    "EventLog",
    "InvalidIdentifier",
    "InvalidRecord",
    "InvalidTransition",
    "Keys",
    "Kind",
    "Lease",
    "LeaseLost",
    "Limit",
    "LimitReached",
    "Mailboxes",
    "MalformedRecord",
    "Message",
    "MessageKind",
    "NotFound",
    "Note",
    "Notes",
    "PayloadTooLarge",
    "Progress",
    "ProgressDoc",
    "RecordStore",
    "RedisHandle",
    "RedisUnreachable",
    "Registration",
    "Registry",
    "ReplyTimeout",
    "RetryPolicy",
    "RunState",
    "SweepReport",
    "Task",
    "TaskBoard",
    "TaskStatus",
    "VersionConflict",
    "Versioned",
    "Wakeup",
    "Write",
    "connect",
    "global_registry",
    "record_store",
    "redact_url",
]
