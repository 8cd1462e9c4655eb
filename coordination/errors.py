"""Exceptions of the coordination package: one root, a shallow tree."""

from __future__ import annotations


class CoordinationError(Exception):
    """Root of every error raised by the coordination package."""


class ConfigurationError(CoordinationError):
    """The Redis configuration is unusable (bad URL, missing binary, bad TLS files)."""


class RedisUnreachable(ConfigurationError):
    """Redis did not answer at the configured address (refused, timed out, unknown host): nothing was done."""


class EmbeddedRedisError(CoordinationError):
    """The embedded Redis server could not be started or did not answer."""


class InvalidIdentifier(CoordinationError, ValueError):
    """A run, task, agent or key identifier has characters or a length we refuse."""


class PayloadTooLarge(CoordinationError, ValueError):
    """An encoded record or message is larger than the configured limit."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes")
        self.what = what
        self.size = size
        self.limit = limit


class MalformedRecord(CoordinationError):
    """A value stored in Redis is not what its schema says (bad JSON, wrong type, wrong Redis type)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"malformed record at {key!r}: {reason}")
        self.key = key
        self.reason = reason


class InvalidRecord(CoordinationError, ValueError):
    """A record offered for writing fails its schema (wrong field types, bad values)."""


class VersionConflict(CoordinationError):
    """A versioned write lost: the record was not at the version the writer named."""

    def __init__(self, key: str, expected: int, actual: int, *, exists: bool = True) -> None:
        state = f"at version {actual}" if exists else f"absent (last version {actual})"
        super().__init__(f"version conflict on {key!r}: expected {expected}, record is {state}")
        self.key = key
        self.expected = expected
        self.actual = actual
        self.exists = exists


class AlreadyExists(VersionConflict):
    """A create-if-absent found the record already present."""


class ConflictRetriesExhausted(VersionConflict):
    """An update kept losing its compare-and-set until the retry budget ran out."""

    def __init__(self, key: str, expected: int, actual: int, attempts: int) -> None:
        super().__init__(key, expected, actual)
        self.attempts = attempts
        self.args = (f"gave up on {key!r} after {attempts} conflicting attempts "
                     f"(last expected {expected}, found {actual})",)


class LeaseLost(VersionConflict):
    """A holder wrote with a fencing version that is no longer current: its claim is gone."""

    def __init__(self, key: str, expected: int, actual: int, *, exists: bool = True) -> None:
        super().__init__(key, expected, actual, exists=exists)
        self.args = (f"lease lost on {key!r}: held version {expected}, record is now at version {actual} "
                     "(the lease expired and was swept, or the task was cancelled)",)


class LimitReached(CoordinationError):
    """An admission limit (a counter that must stay below a cap) stopped a write."""

    def __init__(self, key: str, field: str, cap: int, value: int) -> None:
        super().__init__(f"limit reached: {field} at {key!r} is {value}, cap {cap}")
        self.key = key
        self.field = field
        self.cap = cap
        self.value = value


class CrossSlotWrite(CoordinationError, ValueError):
    """One atomic write named keys of different Redis Cluster slots (they must share a hash tag)."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(f"one write may only touch keys of one hash tag (one cluster slot); got {keys!r}")
        self.keys = keys


class NotFound(CoordinationError, KeyError):
    """A record (task, agent, run, message) that was named does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class InvalidTransition(CoordinationError):
    """A state change that the record's current status does not allow (e.g. completing a done task)."""


class ReplyTimeout(CoordinationError, TimeoutError):
    """A request sent to a mailbox got no reply within its timeout."""
